/**
 * Revocation-to-deny: REVOCATIONS times (30), one VU takes a fresh grant and token from the fixture,
 * sends verify requests back to back until it has WARM allowed answers, asks the fixture to revoke
 * the grant (through the registry's GrantsService) and keeps sending; the time from the start of
 * the revoke call (the fixture's clock, the same machine's) to the first `revoked` answer is the
 * `revocation_to_deny` trend. Passes when its p99 is under 100 ms and every revocation was seen.
 *
 *   WRIT_FIXTURE_URL=http://127.0.0.1:<port> k6 run load-tests/k6/revocation.ts
 *
 * Options (environment): REVOCATIONS (30), WARM (20), P99_MS (100), TIMEOUT_MS (5000).
 */
import { check } from 'k6';
import http, { type RefinedResponse, type ResponseType } from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import { decision, type Fixture, fixtureUrl, loadFixture, numberOption, ProofSigner, type RevocationSubject, verifyBody, verifyParams } from './shared.ts';

const WARM = numberOption('WARM', 20);
const TIMEOUT_MS = numberOption('TIMEOUT_MS', 5000);

export const options: Options = {
  scenarios: {
    revocation: { executor: 'per-vu-iterations', vus: 1, iterations: numberOption('REVOCATIONS', 30), maxDuration: '10m' },
  },
  thresholds: {
    revocation_to_deny: [`p(99)<${numberOption('P99_MS', 100)}`],
    revocation_not_seen: ['count==0'],
    checks: ['rate==1'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
};

const toDeny = new Trend('revocation_to_deny', true);
const notSeen = new Counter('revocation_not_seen');

export function setup(): Fixture {
  return loadFixture();
}

export default async function (fixture: Fixture): Promise<void> {
  const made = http.post(`${fixtureUrl()}/revocation/subject`);
  if (!check(made, { 'fresh grant and token': (r) => r.status === 200 })) return;
  const subject = made.json() as unknown as RevocationSubject;
  const signer = new ProofSigner(subject);
  const url = `${fixture.verifier_url}/v1/verify`;
  const verify = async (): Promise<string> => decision(await http.asyncRequest('POST', url, await verifyBody(fixture, subject.token, signer), verifyParams(fixture)));

  for (let i = 0; i < WARM; i++) {
    if (!check(await verify(), { 'allowed before the revocation': (o) => o === 'allow' })) return;
  }
  let revoked: RefinedResponse<ResponseType | undefined> | undefined;
  const revoking = http
    .asyncRequest('POST', `${fixtureUrl()}/revocation/revoke`, JSON.stringify({ grant_id: subject.grant_id }), { headers: { 'content-type': 'application/json' } })
    .then((res) => {
      revoked = res;
    });
  const giveUpAt = Date.now() + TIMEOUT_MS;
  let deniedAt: number | undefined;
  let outcome = 'allow';
  while (Date.now() < giveUpAt) {
    outcome = await verify();
    if (outcome !== 'allow') {
      deniedAt = Date.now();
      break;
    }
  }
  await revoking;
  check(outcome, { 'denied as revoked': (o) => o === 'revoked' });
  if (deniedAt === undefined || outcome !== 'revoked' || revoked?.status !== 200) {
    notSeen.add(1);
    return;
  }
  const { started_at_ms: startedAt } = revoked.json() as { started_at_ms: number };
  toDeny.add(deniedAt - startedAt);
}
