import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPostgresDatabase } from '../../apps/registry/test/support/databases.js';
import { freePort } from '../../apps/registry/test/support/redis.js';
import { npmStart, waitFor } from './support.js';

/** Starts, checks that the four services answer, then Ctrl-C: a clean exit. */
async function startAndStop(env: Record<string, string>): Promise<string> {
  const [ui, registry, verifier] = [await freePort(), await freePort(), await freePort()];
  const run = npmStart({ ...env, UI_PORT: String(ui), REGISTRY_PORT: String(registry), VERIFIER_PORT: String(verifier) });
  let witnessUrl: string | undefined;
  try {
    await waitFor(run, 'Ctrl-C stops them all.', 180_000);
    expect(run.output()).toContain(`approval UI  http://localhost:${ui}`);
    expect(run.output()).toContain(`registry     http://127.0.0.1:${registry}`);
    expect(run.output()).toContain(`verifier     http://127.0.0.1:${verifier}`);
    expect((await fetch(`http://localhost:${ui}/signin`)).status).toBe(200);
    const metadata = (await (await fetch(`http://127.0.0.1:${registry}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };
    expect(metadata.issuer).toBe(`http://127.0.0.1:${registry}`);
    // The UI reaches the registry through its proxy: no session yet.
    expect(await (await fetch(`http://localhost:${ui}/api/auth/session`)).json()).toEqual({ error: 'login_required', error_description: 'sign in with your passkey first' });
    // The verifier is up and refuses a caller without a service credential.
    const body = JSON.stringify({ token: 'x', dpop: 'y', method: 'GET', url: 'https://flights.example/a', action: 'read' });
    const refused = await fetch(`http://127.0.0.1:${verifier}/v1/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect({ status: refused.status, body: await refused.json() }).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    // The witness is up on a port of its own and witnesses the registry's audit log (origin: the
    // issuer's host and /audit), whether or not it has cosigned a checkpoint yet.
    witnessUrl = /\n {2}witness {6}(http:\/\/127\.0\.0\.1:\d+) {3}cosigns the audit log's checkpoints, as writ\.local\/witness\+[0-9a-f]{8}\+\S+\n/.exec(run.output())?.[1];
    expect(witnessUrl, 'the witness line').toBeDefined();
    expect(await (await fetch(`${witnessUrl}/healthz`)).text()).toBe('ok\n');
    const latest = await fetch(`${witnessUrl}/checkpoint/127.0.0.1:${registry}/audit`);
    expect([200, 404]).toContain(latest.status);
    expect(await latest.text()).not.toBe('this witness does not witness that origin\n');
  } finally {
    if (run.child.exitCode === null) process.kill(-run.child.pid!, "SIGINT");
    else console.log(run.output());
  }
  // npm itself takes the terminal's SIGINT too; what matters is that Writ stopped cleanly.
  const { code, signal } = await run.exited;
  expect(code === 0 || signal === 'SIGINT', `npm exited with code ${code}, signal ${signal}`).toBe(true);
  await waitFor(run, 'writ: stopped', 10_000).catch(() => undefined);
  expect(run.output()).toContain('writ: SIGINT: stopping');
  expect(run.output()).toContain('writ: stopped');
  // Nothing is left listening.
  await expect(fetch(`http://127.0.0.1:${registry}/.well-known/oauth-authorization-server`)).rejects.toThrow();
  await expect(fetch(`http://localhost:${ui}/signin`)).rejects.toThrow();
  await expect(fetch(`${witnessUrl}/healthz`)).rejects.toThrow();
  return run.output();
}

describe('npm start', () => {
  it('runs the registry, the verifier, the approval UI and the witness on embedded storage, makes keys on first run, and stops on Ctrl-C', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'writ-start-'));
    try {
      const output = await startAndStop({ WRIT_DATA_DIR: dataDir, DATABASE_URL: '', REDIS_URL: '' });
      expect(output).toContain('embedded PGlite');
      expect(output).toContain('in-process verifier store');
      expect(output).toMatch(/ready in \d+\.\d s/);
      // The signing key was made on this first run, in the data folder.
      expect(readdirSync(join(dataDir, 'keys')).some((name) => name.endsWith('.json'))).toBe(true);
      // The witness's own key, in its own private folder.
      expect(statSync(join(dataDir, 'witness')).mode & 0o777).toBe(0o700);
      expect(statSync(join(dataDir, 'witness', 'witness-key.pem')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it.runIf(process.env.DATABASE_URL && process.env.REDIS_URL)('runs on PostgreSQL and Redis when DATABASE_URL and REDIS_URL are set', async () => {
    const db = await createPostgresDatabase(process.env.DATABASE_URL!, 'writ_start_');
    const dataDir = mkdtempSync(join(tmpdir(), 'writ-start-'));
    try {
      const output = await startAndStop({
        WRIT_DATA_DIR: dataDir,
        DATABASE_URL: (db.target as { url: string }).url,
        REDIS_URL: process.env.REDIS_URL!,
        WRIT_REDIS_PREFIX: `writ-start-${randomBytes(4).toString('hex')}:`,
      });
      expect(output).toContain('PostgreSQL 127.0.0.1:5432');
      expect(output).toContain('Redis 127.0.0.1:6379');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
      await db.drop();
    }
  });
});
