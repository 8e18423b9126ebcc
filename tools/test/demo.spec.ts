import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_PATH } from '../../apps/approval-ui/e2e/support/browser.js';
import { createPostgresDatabase } from '../../apps/registry/test/support/databases.js';
import { freePort } from '../../apps/registry/test/support/redis.js';
import { headlessHuman, type Human } from '../../apps/demo/src/human.js';
import { cli } from '../../apps/registry/test/support/cli.js';
import { expectServing, expectStoppedCleanly, npmRun, npmStart, type Run, waitFor } from './support.js';


/** Every line the demo must print, each with the decision it checked (✓: as expected). */
const OUTCOMES = [
  /planner +grant grt_\S+ +approved +✓/,
  /flight agent +delegated: flight:book flight:search payment:transact +issued +✓/,
  /hotel agent +delegated: hotel:book hotel:search payment:transact +issued +✓/,
  /notification agent +delegated: notification:write +issued +✓/,
  /flight agent +flight: book TP1234 +allow +✓/,
  /hotel agent +hotel: book Alfama Inn +allow +✓/,
  /payment agent +delegated: payment:transact +issued +✓/,
  /payment agent +payment: 420 EUR to TAP \(flight\) +allow +✓/,
  /payment agent +payment: 560 EUR to Alfama Inn \(hotel\) +approval_required +✓/,
  /payment agent +step-up su_\S+ +approved +✓/,
  /payment agent +payment: 560 EUR to Alfama Inn, retried +allow +✓/,
  /notification agent +notification: "Your trip is booked" +allow +✓/,
  /payment agent \(replayed\) +the 420 EUR request sent again, same proof +invalid_dpop_proof +✓/,
  /intruder \(no key\) +payment: 90 EUR with the stolen token +invalid_dpop_proof +✓/,
  /payment agent +payment: 50 EUR seat upgrade \(total 1030\) +budget_exceeded +✓/,
  /notification agent +notification: "Here is your receipt" +revoked +✓/,
  /hotel agent +hotel: book a second night +revoked +✓/,
  /anyone +re-verify the hash chain \(\d+ events\) +verified +✓/,
];

/**
 * `npm start`, checked to serve what it should (`expectServing`), then `npm run demo` against it,
 * as the README says; then Ctrl-C, checked to stop everything cleanly, or with `kill: true` kill -9
 * of the whole `npm start` the moment the demo has exited (the caller starts it again). Returns
 * the demo's output, npm start's and the ports. `person` plays the person of the default mode from
 * what the demo prints; without it the demo runs headless. These are the tests of `npm start`
 * itself too: on embedded storage (the demo with a person) and on PostgreSQL and Redis (the
 * headless demo, when they are set).
 */
async function demoAgainstNpmStart(
  env: Record<string, string>,
  person?: (demo: Run, uiUrl: string) => Promise<void>,
  options: { kill?: boolean } = {},
): Promise<{ output: string; startOutput: string; ports: { UI_PORT: string; REGISTRY_PORT: string; VERIFIER_PORT: string } }> {
  const ports = { UI_PORT: String(await freePort()), REGISTRY_PORT: String(await freePort()), VERIFIER_PORT: String(await freePort()) };
  const writ = npmStart({ ...env, ...ports });
  let witness: string | undefined;
  let output: string;
  try {
    await waitFor(writ, 'Ctrl-C stops them all.', 180_000);
    witness = await expectServing(writ, ports);
    const demo = npmRun(['run', 'demo', ...(person ? [] : ['--', '--headless'])], { ...env, ...ports });
    if (person) await person(demo, `http://localhost:${ports.UI_PORT}`);
    const { code } = await demo.exited;
    if (options.kill) process.kill(-writ.child.pid!, 'SIGKILL');
    expect(code, demo.output()).toBe(0);
    output = demo.output();
  } finally {
    if (writ.child.exitCode === null && writ.child.signalCode === null) process.kill(-writ.child.pid!, 'SIGINT');
    await writ.exited;
  }
  if (!options.kill) await expectStoppedCleanly(writ, ports, witness);
  return { output, startOutput: writ.output(), ports };
}

/**
 * The demo's decisions at the verifier (each of its calls, searches included), by the outcome its
 * event records: `replayed` is the proof sent again (the service provider was told
 * invalid_dpop_proof), `revoked:txn` the two calls after the person revoked the transaction.
 */
const DEMO_DECISIONS = { allow: 7, approval_required: 1, budget_exceeded: 1, invalid_dpop_proof: 1, replayed: 1, 'revoked:txn': 2 };

/**
 * After kill -9 of `npm start` (issue 19, goal 4): started again on the same data folder, the
 * decisions it had answered but not yet moved into the chain (those in its journal, the table it
 * writes before each answer) reach the chain, each once; the witness, started again too, cosigns
 * a checkpoint of the new head, which it does only with a consistency proof from the checkpoint it
 * cosigned before the kill; then `audit verify` finds the chain intact and extending that cosigned
 * checkpoint.
 */
async function expectEverythingAfterKill(env: Record<string, string>, ports: { UI_PORT: string; REGISTRY_PORT: string; VERIFIER_PORT: string }, dataDir: string): Promise<void> {
  const writ = npmStart({ ...env, ...ports });
  const registry = `http://127.0.0.1:${ports.REGISTRY_PORT}`;
  const witnessNote = join(dataDir, 'witnessed-checkpoint.txt');
  let witness: string | undefined;
  try {
    await waitFor(writ, 'Ctrl-C stops them all.', 180_000);
    witness = await expectServing(writ, ports);
    // The journal drained into the chain, and a checkpoint of the head taken and cosigned.
    const sizeOf = (note: string) => Number(note.split('\n')[1]);
    await expect
      .poll(
        async () => {
          const ready = (await (await fetch(`${registry}/readyz`)).json()) as { verifier_events: { queueDepth: number | null } | null };
          if (ready.verifier_events?.queueDepth !== 0) return 'the journal is not drained yet';
          const head = await (await fetch(`${registry}/audit/checkpoint`)).text();
          const res = await fetch(`${witness}/checkpoint/127.0.0.1:${ports.REGISTRY_PORT}/audit`);
          const witnessed = res.status === 200 ? await res.text() : '';
          if (witnessed === '' || sizeOf(witnessed) !== sizeOf(head)) return `the witness is at ${witnessed === '' ? 'nothing' : sizeOf(witnessed)}, the log's checkpoint at ${sizeOf(head)}`;
          writeFileSync(witnessNote, witnessed);
          return 'cosigned';
        },
        { timeout: 60_000, interval: 250 },
      )
      .toBe('cosigned');
  } finally {
    if (writ.child.exitCode === null && writ.child.signalCode === null) process.kill(-writ.child.pid!, 'SIGINT');
    await writ.exited;
  }
  await expectStoppedCleanly(writ, ports, witness);
  // The CLI on npm start's data folder, with its issuer (where it listened: the log's origin).
  const cliEnv = { ...env, WRIT_ISSUER: registry };
  // --full: every event re-hashed, not only those after the last head verified before the kill.
  const verified = await cli(['audit', 'verify', '--full', '--checkpoint', witnessNote], cliEnv);
  expect(verified.stdout, verified.stderr).toMatch(/^chain intact: \d+ events/);
  expect(verified.stdout).toContain(`--checkpoint ${witnessNote}`);
  expect(verified.stdout).toContain('the log extends it');
  expect(verified.code).toBe(0);
  const file = join(dataDir, 'chain.jsonl');
  expect((await cli(['audit', 'export', '--out', file], cliEnv)).code).toBe(0);
  const decisions: Record<string, number> = {};
  for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
    const event = JSON.parse(line) as { type: string; data: { outcome?: string } };
    if (!event.type.startsWith('verification.')) continue;
    const outcome = event.type === 'verification.allowed' ? 'allow' : (event.data.outcome ?? event.type);
    decisions[outcome] = (decisions[outcome] ?? 0) + 1;
  }
  expect(decisions).toEqual(DEMO_DECISIONS);
}

function expectEveryOutcome(output: string): void {
  for (const outcome of OUTCOMES) expect(output).toMatch(outcome);
  expect(output).not.toContain('✗');
  expect(output).toMatch(/Every decision was the expected one \(\d+ checks\), and the audit chain of \d+ events verifies\./);
  expect(output).toMatch(/the transaction in the approval UI: http:\/\/localhost:\d+\/transactions\/txn_\S+/);
}

describe('npm start, and npm run demo against it', () => {
  beforeAll(() => {
    if (CHROMIUM_PATH === undefined) throw new Error('the headless demo drives Chromium: apt-get install -y chromium, or set CHROMIUM_PATH');
  });

  it('npm start on embedded storage serves all four, with keys made on first run; the demo waits for a person who signs up, approves and revokes in the browser from the links it prints; after kill -9 of npm start, nothing it decided is lost, and Ctrl-C stops it cleanly', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'writ-demo-'));
    let human: Human | undefined;
    /** A person at a browser: reads each link the demo prints, and does what it asks. */
    const person = async (demo: Run, uiUrl: string): Promise<void> => {
      await waitFor(demo, `Open ${uiUrl}/signup in your browser`, 60_000);
      human = await headlessHuman(uiUrl, 'Person at a browser');
      let handled = 0;
      while (demo.child.exitCode === null) {
        const asks = [...demo.output().matchAll(/→ (approve the request|approve the payment|now revoke the transaction)[^\n]*?: (\S+)/g)];
        for (const [, what, link] of asks.slice(handled)) {
          const id = new URL(link!).pathname.split('/').pop()!;
          if (what === 'approve the request') await human.grantRequested(id);
          else if (what === 'approve the payment') await human.stepUpRequested(id);
          else {
            await human.revokeTransaction(id);
            demo.child.stdin!.write('\n');
          }
          handled += 1;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(handled).toBe(3);
    };
    const env = { WRIT_DATA_DIR: dataDir, DATABASE_URL: '', REDIS_URL: '' };
    try {
      // Then kill -9 of npm start right after the demo's last decisions (issue 19, goal 4).
      const { output, startOutput, ports } = await demoAgainstNpmStart(env, person, { kill: true });
      expectEveryOutcome(output);
      expect(output).toContain('Welcome, Person at a browser.');
      // npm start on embedded storage, its keys made on this first run in the data folder; the
      // witness's own key in its own private folder.
      expect(startOutput).toContain('embedded PGlite');
      expect(startOutput).toContain('in-process verifier store');
      expect(readdirSync(join(dataDir, 'keys')).some((name) => name.endsWith('.json'))).toBe(true);
      expect(statSync(join(dataDir, 'witness')).mode & 0o777).toBe(0o700);
      expect(statSync(join(dataDir, 'witness', 'witness-key.pem')).mode & 0o777).toBe(0o600);
      await human?.close();
      human = undefined;
      await expectEverythingAfterKill(env, ports, dataDir);
    } finally {
      await human?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  // The headless demo runs once: against PostgreSQL and Redis when they are set (as in CI), else on
  // embedded storage. The demo with a person, above, always runs on embedded storage, checking the
  // same outcomes. Both check npm start itself: what it serves, and a clean stop on Ctrl-C.
  const realServers = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);

  it(`npm start on ${realServers ? 'PostgreSQL and Redis' : 'embedded storage'} serves all four; the headless demo books the trip, stops every attack and verifies the audit chain; Ctrl-C stops everything cleanly`, async () => {
    const db = realServers ? await createPostgresDatabase(process.env.DATABASE_URL!, 'writ_demo_') : undefined;
    const dataDir = mkdtempSync(join(tmpdir(), 'writ-demo-'));
    const storage: Record<string, string> = db
      ? { DATABASE_URL: (db.target as { url: string }).url, REDIS_URL: process.env.REDIS_URL!, WRIT_REDIS_PREFIX: `writ-demo-${randomBytes(4).toString('hex')}:` }
      : { DATABASE_URL: '', REDIS_URL: '' };
    try {
      const { output, startOutput } = await demoAgainstNpmStart({ WRIT_DATA_DIR: dataDir, ...storage });
      expectEveryOutcome(output);
      if (db) {
        expect(startOutput).toContain('PostgreSQL 127.0.0.1:5432');
        expect(startOutput).toContain('Redis 127.0.0.1:6379');
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
      await db?.drop();
    }
  });
});
