/**
 * Steady load, open loop: RATE verify requests per second (1,000) for DURATION against the verifier,
 * started on the clock by the `constant-arrival-rate` executor whether or not earlier ones were
 * answered, each with a DPoP proof signed on the spot. A lead-in of LEAD at the same rate comes
 * first (its own scenario): its answers are checked like the others, but the p99 threshold is on
 * the `steady` scenario's requests only, as the Node harness times only its measured window.
 * Passes when that p99 is under 5 ms, every answer is an allow, and k6 never had to skip a
 * scheduled request for want of a free VU (`dropped_iterations`, which would hide a stall).
 *
 *   WRIT_FIXTURE_URL=http://127.0.0.1:<port> k6 run load-tests/k6/verify-steady.ts
 *
 * Options (environment): RATE (1000), DURATION (15s), LEAD (1s), P99_MS (5), TARGET (verifier | floor).
 */
import { check } from 'k6';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import type { Options } from 'k6/options';
import { decision, durationOption, type Fixture, loadFixture, numberOption, signersFor, verifyBody, verifyParams } from './shared.ts';

const RATE = numberOption('RATE', 1000);
const LEAD = durationOption('LEAD', '1s');

/** One open-loop scenario at RATE: enough VUs for the rate at a few ms each; more are started if answers slow down. */
const atRate = { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', preAllocatedVUs: Math.max(10, Math.ceil(RATE / 50)), maxVUs: Math.max(50, Math.ceil(RATE / 5)) } as const;

export const options: Options = {
  scenarios: {
    lead: { ...atRate, duration: LEAD },
    steady: { ...atRate, duration: durationOption('DURATION', '15s'), startTime: LEAD },
  },
  thresholds: {
    'http_req_duration{scenario:steady}': [`p(99)<${numberOption('P99_MS', 5)}`],
    checks: ['rate==1'],
    dropped_iterations: ['count==0'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
};

const denied = new Counter('verify_not_allowed');
const vu: { signers?: ReturnType<typeof signersFor> } = {};

export function setup(): Fixture {
  return loadFixture();
}

export default async function (fixture: Fixture): Promise<void> {
  const signers = signersFor(fixture, vu);
  const i = (__VU + __ITER) % fixture.agents.length;
  const body = await verifyBody(fixture, fixture.agents[i]!.token, signers[i]!);
  const url = `${__ENV.TARGET === 'floor' ? fixture.floor_url : fixture.verifier_url}/v1/verify`;
  const res = await http.asyncRequest('POST', url, body, verifyParams(fixture));
  const outcome = decision(res);
  if (!check(outcome, { allowed: (o) => o === 'allow' })) denied.add(1, { outcome });
}
