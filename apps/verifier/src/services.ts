import { hash } from 'node:crypto';
import { InvalidClient, TemporarilyUnavailable } from '@writ/core';

/** A service provider, as the registry describes it. */
export interface ServiceIdentity {
  id: string;
  /** Normalised URI: the verifier honours capabilities only for URLs under it. */
  uri: string;
}

const TTL_MS = 60_000;
const MAX_ENTRIES = 10_000;
const FETCH_TIMEOUT_MS = 2_000;
/**
 * How long after its confirmation expired a credential still names its caller in the record of a
 * denial while the registry cannot be reached (issue 19): never to allow anything.
 */
const NAMED_WHILE_UNREACHABLE_MS = 24 * 3600_000;

/**
 * The registry cannot be reached to confirm a credential it confirmed before (its 60 s are over):
 * the request is denied (503) like any other that cannot be checked, but the caller is known, so
 * the denial can be recorded under its name (issue 19, "registry down longer than 60 s").
 */
export class CredentialUnconfirmed extends TemporarilyUnavailable {
  constructor(
    /** Who the registry last said this credential belongs to. */
    readonly lastKnown: ServiceIdentity,
    cause: unknown,
  ) {
    super('the registry cannot be reached to check the service credential', { cause });
  }
}

/**
 * Who presents a credential: asked of the registry (`GET /services/me` with the provider's own
 * `Authorization` header) once, then remembered for 60 s by the header's SHA-256 (never the
 * header itself). A refusal is not remembered (and forgets what was); an unreachable registry is
 * `temporarily_unavailable` (deny), {@link CredentialUnconfirmed} when the registry confirmed the
 * credential in the last day.
 */
export class ServiceDirectory {
  private readonly known = new Map<string, { service: ServiceIdentity; untilMs: number }>();
  private readonly inflight = new Map<string, Promise<ServiceIdentity>>();

  constructor(
    private readonly registryUrl: string,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly now: () => number = Date.now,
  ) {}

  resolve(authorization: string | undefined): Promise<ServiceIdentity> {
    if (authorization === undefined || authorization === '') {
      return Promise.reject(new InvalidClient('service credentials are missing: use HTTP Basic with the service id and credential'));
    }
    const id = hash('sha256', authorization, 'base64url');
    const hit = this.known.get(id);
    if (hit !== undefined && hit.untilMs > this.now()) return Promise.resolve(hit.service);
    let pending = this.inflight.get(id);
    if (pending === undefined) {
      pending = this.ask(authorization).then(
        (service) => {
          this.known.delete(id);
          if (this.known.size >= MAX_ENTRIES) this.known.delete(this.known.keys().next().value!);
          this.known.set(id, { service, untilMs: this.now() + TTL_MS });
          return service;
        },
        (error: unknown) => {
          const last = this.known.get(id);
          if (error instanceof TemporarilyUnavailable && last !== undefined && this.now() - last.untilMs < NAMED_WHILE_UNREACHABLE_MS) {
            throw new CredentialUnconfirmed(last.service, error);
          }
          if (error instanceof InvalidClient) this.known.delete(id);
          throw error;
        },
      );
      pending.finally(() => this.inflight.delete(id)).catch(() => undefined);
      this.inflight.set(id, pending);
    }
    return pending;
  }

  private async ask(authorization: string): Promise<ServiceIdentity> {
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.registryUrl}/services/me`, {
        headers: { authorization, accept: 'application/json' },
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
    } catch (error) {
      throw new TemporarilyUnavailable('the registry cannot be reached to check the service credential', { cause: error });
    }
    if (res.status === 401 || res.status === 400) {
      await res.body?.cancel();
      throw new InvalidClient('unknown service or wrong credential');
    }
    const body = res.ok ? ((await res.json().catch(() => undefined)) as Partial<ServiceIdentity> | undefined) : undefined;
    if (typeof body?.id !== 'string' || typeof body.uri !== 'string') {
      throw new TemporarilyUnavailable('the registry could not check the service credential');
    }
    return { id: body.id, uri: body.uri };
  }
}
