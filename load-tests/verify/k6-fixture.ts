/**
 * `npm run bench:verify -- --k6-fixture`: once the registry (in this process), the floor server and
 * the verifier are up, serves the k6 scripts of load-tests/k6 what they cannot make themselves, on
 * 127.0.0.1 only:
 *
 * - `GET /fixture`: the verifier's and the floor's URLs, the service provider's Authorization
 *   header, the agent request to ask about, and per agent a root token with the agent's key pair
 *   as JWKs (k6 signs a fresh DPoP proof per request with it);
 * - `POST /revocation/subject`: a fresh approved grant, a root token on it and its agent's keys;
 * - `POST /revocation/revoke` `{ "grant_id" }` (a grant `/revocation/subject` made): revokes it
 *   through GrantsService and answers when the call started and when it returned (epoch ms).
 *
 * What it hands out belongs to this run's throwaway database and is gone when the run stops.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { GrantsService } from '../../apps/registry/src/modules/grants/grants.service.js';
import { approvedGrant, type BenchAgent, enrolAgent, fetchToken } from '../support/registry.js';
import { AGENT_REQUEST, BENCH_GRANT, type TokenHolder } from './setup.js';

export interface K6FixtureOptions {
  app: NestFastifyApplication;
  issuer: string;
  holders: TokenHolder[];
  /** The service provider's `Authorization` header to the verifier. */
  authorization: string;
  floorUrl: string;
  verifierUrl: string;
  /** How long to serve before stopping by itself. */
  holdS: number;
}

function agentView(agent: BenchAgent, token: string): object {
  return { token, private_jwk: agent.privateJwk, public_jwk: agent.publicJwk };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => done(Buffer.concat(chunks).toString()));
    req.on('error', fail);
  });
}

function answer(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** Serves until `holdS` has passed; resolves then (a signal stops the whole run before). */
export async function serveK6Fixture(options: K6FixtureOptions): Promise<void> {
  const revoker = await enrolAgent(options.app, 'bench-revoker', BENCH_GRANT);
  const grants = options.app.get(GrantsService);
  const revocable = new Set<string>();
  const fixture = {
    verifier_url: options.verifierUrl,
    floor_url: options.floorUrl,
    authorization: options.authorization,
    request: AGENT_REQUEST,
    agents: options.holders.map((h) => agentView(h.agent, h.token)),
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method === 'GET' && req.url === '/fixture') return answer(res, 200, fixture);
    if (req.method === 'POST' && req.url === '/revocation/subject') {
      const grantId = await approvedGrant(options.app, revoker.clientId, revoker.owner, BENCH_GRANT);
      revocable.add(grantId);
      return answer(res, 200, { grant_id: grantId, ...agentView(revoker, await fetchToken(options.issuer, revoker, grantId)) });
    }
    if (req.method === 'POST' && req.url === '/revocation/revoke') {
      let grantId: unknown;
      try {
        ({ grant_id: grantId } = JSON.parse(await readBody(req)) as { grant_id?: unknown });
      } catch {
        grantId = undefined;
      }
      if (typeof grantId !== 'string' || !revocable.delete(grantId)) return answer(res, 400, { error: 'grant_id must name a grant /revocation/subject made, once' });
      const startedAt = Date.now();
      await grants.revoke(grantId, revoker.owner, 'k6 revocation scenario');
      return answer(res, 200, { started_at_ms: startedAt, committed_at_ms: Date.now() });
    }
    return answer(res, 404, { error: 'not found' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => answer(res, 500, { error: error instanceof Error ? error.message : String(error) }));
  });
  const port = Number(process.env.BENCH_K6_FIXTURE_PORT ?? 0);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => done());
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  console.log(`k6 fixture  ${url} (for ${options.holdS} s; Ctrl-C stops it and everything it started)`);
  console.log('');
  console.log(`  WRIT_FIXTURE_URL=${url} k6 run load-tests/k6/verify-throughput.ts`);
  console.log(`  WRIT_FIXTURE_URL=${url} k6 run load-tests/k6/verify-steady.ts`);
  console.log(`  WRIT_FIXTURE_URL=${url} k6 run load-tests/k6/revocation.ts`);
  await new Promise((done) => setTimeout(done, options.holdS * 1000));
  await new Promise<void>((done) => server.close(() => done()));
}
