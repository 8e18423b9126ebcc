/**
 * Throughput, closed loop: VUS virtual users send verify requests back to back for DURATION, first
 * to the floor server (bare Fastify: one ES256 verification, one Redis round trip), then, after a
 * pause, to the verifier with all its checks. Every request carries a DPoP proof signed on the spot
 * with Web Crypto. Prints req/s and latency of each and the ratio verifier/floor of req/s, and
 * fails if any answer is not an allow.
 *
 *   WRIT_FIXTURE_URL=http://127.0.0.1:<port> k6 run load-tests/k6/verify-throughput.ts
 *
 * Options (environment): VUS (32), DURATION (20s), RATIO_GOAL (0.8, reported only).
 */
import { check } from 'k6';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import type { Options } from 'k6/options';
import { decision, durationOption, type Fixture, loadFixture, numberOption, signersFor, verifyBody, verifyParams } from './shared.ts';

const VUS = numberOption('VUS', 32);
const DURATION = durationOption('DURATION', '20s');
/** Between the two scenarios: the floor's last requests drain before the verifier's first. */
const PAUSE_S = 5;

function seconds(duration: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(duration);
  if (!match) throw new Error(`DURATION ${duration}: use a number with ms, s, m or h`);
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2] as 'ms' | 's' | 'm' | 'h'];
}

const durationS = seconds(DURATION);

export const options: Options = {
  scenarios: {
    floor: { executor: 'constant-vus', vus: VUS, duration: DURATION, env: { TARGET: 'floor' }, tags: { target: 'floor' } },
    verifier: { executor: 'constant-vus', vus: VUS, duration: DURATION, startTime: `${durationS + PAUSE_S}s`, env: { TARGET: 'verifier' }, tags: { target: 'verifier' } },
  },
  thresholds: {
    // Listed so that the summary has them per target.
    'http_reqs{target:floor}': ['count>0'],
    'http_reqs{target:verifier}': ['count>0'],
    'http_req_duration{target:floor}': ['max>=0'],
    'http_req_duration{target:verifier}': ['max>=0'],
    // Every answer an allow: a denial means the setup is wrong, not that the server is slow.
    checks: ['rate==1'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
};

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
  const count = (target: string): number => data.metrics[`http_reqs{target:${target}}`]?.values.count ?? 0;
  const ms = (target: string, stat: string): string => (data.metrics[`http_req_duration{target:${target}}`]?.values[stat] ?? NaN).toFixed(2);
  const line = (target: string): string =>
    `${target.padEnd(9)} ${(count(target) / durationS).toFixed(0).padStart(7)} req/s   p50 ${ms(target, 'p(50)')}  p90 ${ms(target, 'p(90)')}  p99 ${ms(target, 'p(99)')}  max ${ms(target, 'max')} ms`;
  const ratio = count('verifier') / count('floor');
  const goal = numberOption('RATIO_GOAL', 0.8);
  const notAllowed = data.metrics.verify_not_allowed?.values.count ?? 0;
  const text = [
    `closed loop, ${VUS} VUs, ${DURATION} each`,
    line('floor'),
    line('verifier'),
    `ratio verifier/floor of req/s: ${ratio.toFixed(2)} (goal >= ${goal}: ${ratio >= goal ? 'met' : 'missed'})`,
    `answers other than allow: ${notAllowed}`,
    '',
  ].join('\n');
  return { stdout: text };
}
