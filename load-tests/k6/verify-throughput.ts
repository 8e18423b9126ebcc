/**
 * Throughput, closed loop: VUS virtual users send verify requests back to back, in ROUNDS rounds of
 * DURATION against each server in turn (the floor server, bare Fastify doing one ES256
 * verification and one Redis round trip; and the verifier with all its checks), the order swapped
 * every round, with a short pause between runs so that one server's last requests drain before the
 * other's first. Short rounds side by side, as `npm run bench:verify` takes them: on a shared
 * machine the speed drifts, and runs next to each other in time see the same machine. Every
 * request carries a DPoP proof signed on the spot with Web Crypto. Prints req/s and latency of each
 * server, the ratio verifier/floor of req/s over all rounds and round by round, and fails if any
 * answer is not an allow.
 *
 *   WRIT_FIXTURE_URL=http://127.0.0.1:<port> k6 run load-tests/k6/verify-throughput.ts
 *
 * Options (environment): VUS (32), ROUNDS (6), DURATION (4s), RATIO_GOAL (0.8, reported only).
 */
import { check } from 'k6';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import type { Options, Scenario } from 'k6/options';
import { decision, durationOption, type Fixture, loadFixture, numberOption, signersFor, verifyBody, verifyParams } from './shared.ts';

const VUS = numberOption('VUS', 32);
const ROUNDS = numberOption('ROUNDS', 6);
const DURATION = durationOption('DURATION', '4s');
/** Between two runs: one server's last requests drain before the other's first. */
const PAUSE_S = 2;

function seconds(duration: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(duration);
  if (!match) throw new Error(`DURATION ${duration}: use a number with ms, s, m or h`);
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2] as 'ms' | 's' | 'm' | 'h'];
}

const durationS = seconds(DURATION);
const TARGETS = ['floor', 'verifier'] as const;
type Target = (typeof TARGETS)[number];

/** Round r (1-based): the floor first in odd rounds, the verifier first in even ones. */
function order(round: number): readonly Target[] {
  return round % 2 === 1 ? TARGETS : [...TARGETS].reverse();
}

const scenarios: Record<string, Scenario> = {};
const thresholds: Record<string, string[]> = {
  // Every answer an allow: a denial means the setup is wrong, not that the server is slow.
  checks: ['rate==1'],
};
for (let round = 1; round <= ROUNDS; round++) {
  order(round).forEach((target, i) => {
    const slot = (round - 1) * 2 + i;
    const tags = { target, round: String(round) };
    scenarios[`${target}_${round}`] = { executor: 'constant-vus', vus: VUS, duration: DURATION, startTime: `${slot * (durationS + PAUSE_S)}s`, env: { TARGET: target }, tags };
    // Listed so that the summary has each run's count.
    thresholds[`http_reqs{target:${target},round:${round}}`] = ['count>0'];
  });
}
for (const target of TARGETS) {
  thresholds[`http_reqs{target:${target}}`] = ['count>0'];
  thresholds[`http_req_duration{target:${target}}`] = ['max>=0'];
}

export const options: Options = { scenarios, thresholds, summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'] };

const denied = new Counter('verify_not_allowed');
const vu: { signers?: ReturnType<typeof signersFor> } = {};

export function setup(): Fixture {
  return loadFixture();
}

export default async function (fixture: Fixture): Promise<void> {
  const target = __ENV.TARGET === 'floor' ? 'floor' : 'verifier';
  const signers = signersFor(fixture, vu);
  const i = (__VU + __ITER) % fixture.agents.length;
  const body = await verifyBody(fixture, fixture.agents[i]!.token, signers[i]!);
  const res = await http.asyncRequest('POST', `${target === 'floor' ? fixture.floor_url : fixture.verifier_url}/v1/verify`, body, verifyParams(fixture));
  const outcome = decision(res);
  if (!check(outcome, { allowed: (o) => o === 'allow' })) denied.add(1, { outcome });
}

interface SummaryData {
  metrics: Record<string, { values: Record<string, number> } | undefined>;
}

export function handleSummary(data: SummaryData): Record<string, string> {
  const count = (selector: string): number => data.metrics[`http_reqs{${selector}}`]?.values.count ?? 0;
  const ms = (target: string, stat: string): string => (data.metrics[`http_req_duration{target:${target}}`]?.values[stat] ?? NaN).toFixed(2);
  const totalS = ROUNDS * durationS;
  const line = (target: string): string =>
    `${target.padEnd(9)} ${(count(`target:${target}`) / totalS).toFixed(0).padStart(7)} req/s   p50 ${ms(target, 'p(50)')}  p90 ${ms(target, 'p(90)')}  p99 ${ms(target, 'p(99)')}  max ${ms(target, 'max')} ms`;
  const ratio = count('target:verifier') / count('target:floor');
  const rounds = Array.from({ length: ROUNDS }, (_, i) => count(`target:verifier,round:${i + 1}`) / count(`target:floor,round:${i + 1}`));
  const goal = numberOption('RATIO_GOAL', 0.8);
  const notAllowed = data.metrics.verify_not_allowed?.values.count ?? 0;
  const text = [
    `closed loop, ${VUS} VUs, ${ROUNDS} rounds of ${DURATION} on each server, alternating`,
    line('floor'),
    line('verifier'),
    `ratio verifier/floor of req/s: ${ratio.toFixed(2)} over all rounds (goal >= ${goal}: ${ratio >= goal ? 'met' : 'missed'}); round by round ${rounds.map((r) => r.toFixed(2)).join(' ')}`,
    `answers other than allow: ${notAllowed}`,
    '',
  ].join('\n');
  return { stdout: text };
}
