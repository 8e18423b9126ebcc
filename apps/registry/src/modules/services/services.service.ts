import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthorizationDetailSchema, type Clock, identifierText, InvalidRequest, locationCovers, normaliseLocation, randomId } from '@writ/core';
import { z } from 'zod';
import type { AuditService } from '../audit/audit.service.js';
import { describeIssue } from '../validation.js';
import type { ServiceEntity } from './service.entity.js';
import type { ServicesRepository } from './services.repository.js';

/** What an operator registers: the same token rules as the capabilities agents will request. */
export const ServiceRegistrationSchema = z.strictObject({
  uri: identifierText(z.string().min(1).max(2048)),
  display_name: identifierText(z.string().trim().min(1).max(200)),
  catalogue: z
    .array(z.strictObject({ type: AuthorizationDetailSchema.shape.type, actions: AuthorizationDetailSchema.shape.actions }))
    .min(1)
    .max(64)
    .refine((entries) => new Set(entries.map((e) => e.type)).size === entries.length, 'each type is listed once'),
});

export type ServiceRegistration = z.infer<typeof ServiceRegistrationSchema>;

/** SHA-256 of a credential, hex: what is stored and compared. */
function credentialHash(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Compared against when the service is unknown, so timing does not reveal which ids exist. */
const UNKNOWN_SERVICE_HASH = credentialHash(randomBytes(32).toString('base64url'));

export interface ServicesServiceOptions {
  repository: ServicesRepository;
  audit: AuditService;
  clock: Clock;
}

/** Service providers: their URI, name, catalogue of capability types, and verifier-call credential. */
export class ServicesService {
  private readonly repository: ServicesRepository;
  private readonly audit: AuditService;
  private readonly clock: Clock;

  constructor(options: ServicesServiceOptions) {
    this.repository = options.repository;
    this.audit = options.audit;
    this.clock = options.clock;
  }

  /**
   * Registers a service and returns its credential: 256 random bits, base64url, shown this once
   * (only its SHA-256 is stored). Appends `service.registered` in the same transaction.
   *
   * A service's URI may neither be under another service's URI nor have one under it: the
   * verifier answers a service provider for the URLs under its URI, so nested services would each
   * answer for the other's requests (issue 16, finding 8; docs/architecture.md "Services").
   *
   * @throws InvalidRequest on a malformed body, a non-http(s) URI, a URI already registered, or one
   *   that overlaps a registered service's URI.
   */
  async register(body: unknown, actor = 'operator'): Promise<{ service: ServiceEntity; credential: string }> {
    const parsed = ServiceRegistrationSchema.safeParse(body);
    if (!parsed.success) throw new InvalidRequest(describeIssue(parsed.error, body).text);
    const uri = normaliseLocation(parsed.data.uri);
    if (uri === undefined) throw new InvalidRequest('uri must be an absolute http(s) URI');
    const credential = randomBytes(32).toString('base64url');
    const service = await this.repository.transaction(async (tx) => {
      await this.repository.lockRegistrations(tx);
      // Services are few (one per provider), so every registered URI is compared here.
      const registered = await this.repository.registeredUris(tx);
      if (registered.some((other) => other.uri === uri)) throw new InvalidRequest(`a service is already registered at ${uri}`);
      const overlapping = registered.find((other) => locationCovers(other.uri, uri) || locationCovers(uri, other.uri));
      if (overlapping !== undefined) {
        const how = locationCovers(overlapping.uri, uri) ? 'is under' : 'contains';
        throw new InvalidRequest(`${uri} ${how} the URI of registered service ${overlapping.id} (${overlapping.uri}): service URIs may not overlap`);
      }
      const row: ServiceEntity = {
        id: `svc_${randomId()}`,
        uri,
        display_name: parsed.data.display_name,
        catalogue: parsed.data.catalogue,
        credential_hash: credentialHash(credential).toString('hex'),
        created_at: new Date(this.clock.now()),
      };
      await this.repository.insert(row, tx);
      await this.audit.append(
        {
          type: 'service.registered',
          actor,
          subject: row.id,
          data: { service_id: row.id, uri, display_name: row.display_name, catalogue: row.catalogue },
        },
        tx,
      );
      return row;
    });
    return { service, credential };
  }

  /** The service with this id, or registered at this URI (compared after normalisation). */
  async find(idOrUri: string): Promise<ServiceEntity | null> {
    if (idOrUri.startsWith('svc_')) return this.repository.findById(idOrUri);
    const uri = normaliseLocation(idOrUri);
    return uri === undefined ? null : this.repository.findByUri(uri);
  }

  /** Whether `secret` is this service's credential; constant-time, and as slow for unknown ids. */
  async verifyCredential(serviceId: string, secret: string): Promise<boolean> {
    const service = await this.repository.findById(serviceId);
    const expected = service ? Buffer.from(service.credential_hash.trim(), 'hex') : UNKNOWN_SERVICE_HASH;
    return timingSafeEqual(credentialHash(secret), expected) && service !== null;
  }
}
