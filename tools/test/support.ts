import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { expect } from 'vitest';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `npm start` in its own process group, as a terminal runs it (Ctrl-C reaches the whole group). */
export function npmStart(env: Record<string, string>): Run {
  return npmRun(['start'], env);
}

/** `npm <args>` in its own process group, its output collected, its input writable (`child.stdin`). */
export function npmRun(args: string[], env: Record<string, string>): Run {
  const child = spawn('npm', args, { cwd: ROOT, env: { ...process.env, ...env }, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.once('exit', (code, signal) => done({ code, signal })));
  return { child, output: () => output, exited };
}

export async function waitFor(run: Run, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!run.output().includes(text)) {
    if (run.child.exitCode !== null) throw new Error(`npm start exited (${run.child.exitCode}) before '${text}':\n${run.output()}`);
    if (Date.now() > deadline) throw new Error(`no '${text}' within ${timeoutMs} ms:\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}


/**
 * What `npm start` must serve once it has printed "Ctrl-C stops them all.": its four URLs, the
 * UI's sign-in page and its proxy to the registry, the registry's metadata with its issuer, the
 * verifier refusing a caller without a service credential, and the witness on a port of its own,
 * witnessing the registry's audit log (origin: the issuer's host and /audit). Resolves with the
 * witness's URL.
 */
export async function expectServing(run: Run, ports: { UI_PORT: string; REGISTRY_PORT: string; VERIFIER_PORT: string }): Promise<string> {
  const [ui, registry, verifier] = [ports.UI_PORT, ports.REGISTRY_PORT, ports.VERIFIER_PORT];
  const output = run.output();
  expect(output).toContain(`approval UI  http://localhost:${ui}`);
  expect(output).toContain(`registry     http://127.0.0.1:${registry}`);
  expect(output).toContain(`verifier     http://127.0.0.1:${verifier}`);
  expect(output).toMatch(/ready in \d+\.\d s/);
  expect((await fetch(`http://localhost:${ui}/signin`)).status).toBe(200);
  const metadata = (await (await fetch(`http://127.0.0.1:${registry}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };
  expect(metadata.issuer).toBe(`http://127.0.0.1:${registry}`);
  // The UI reaches the registry through its proxy: no session yet.
  expect(await (await fetch(`http://localhost:${ui}/api/auth/session`)).json()).toEqual({ error: 'login_required', error_description: 'sign in with your passkey first' });
  const body = JSON.stringify({ token: 'x', dpop: 'y', method: 'GET', url: 'https://flights.example/a', action: 'read' });
  const refused = await fetch(`http://127.0.0.1:${verifier}/v1/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  expect({ status: refused.status, body: await refused.json() }).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  // Whether or not the witness has cosigned a checkpoint yet.
  const witness = /\n {2}witness {6}(http:\/\/127\.0\.0\.1:\d+) {3}cosigns the audit log's checkpoints, as writ\.local\/witness\+[0-9a-f]{8}\+\S+\n/.exec(output)?.[1];
  expect(witness, `the witness line in:\n${output}`).toBeDefined();
  expect(await (await fetch(`${witness}/healthz`)).text()).toBe('ok\n');
  const latest = await fetch(`${witness}/checkpoint/127.0.0.1:${registry}/audit`);
  expect([200, 404]).toContain(latest.status);
  expect(await latest.text()).not.toBe('this witness does not witness that origin\n');
  return witness!;
}

/** After Ctrl-C (SIGINT to the group) and its exit: a clean stop, and nothing left listening. */
export async function expectStoppedCleanly(run: Run, ports: { UI_PORT: string; REGISTRY_PORT: string }, witness: string): Promise<void> {
  // npm itself takes the terminal's SIGINT too; what matters is that Writ stopped cleanly.
  const { code, signal } = await run.exited;
  expect(code === 0 || signal === 'SIGINT', `npm exited with code ${code}, signal ${signal}`).toBe(true);
  await waitFor(run, 'writ: stopped', 10_000).catch(() => undefined);
  expect(run.output()).toContain('writ: SIGINT: stopping');
  expect(run.output()).toContain('writ: stopped');
  await expect(fetch(`http://127.0.0.1:${ports.REGISTRY_PORT}/.well-known/oauth-authorization-server`)).rejects.toThrow();
  await expect(fetch(`http://localhost:${ports.UI_PORT}/signin`)).rejects.toThrow();
  await expect(fetch(`${witness}/healthz`)).rejects.toThrow();
}
