/**
 * Child processes of a benchmark (the registry, the verifier, the floor server): started from the
 * repository root, considered up once a line of their standard output matches, always stopped
 * at the end (SIGTERM, then SIGKILL after a grace period), and only those this process started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface Started {
  name: string;
  child: ChildProcess;
  /** Leads a process group of its own: stopping signals the whole group. */
  group: boolean;
  /** The match of `ready` on the line that said the process is up. */
  ready: RegExpMatchArray;
}

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string | undefined>;
  /** Matched against standard output; the process is up once a line matches. */
  ready: RegExp;
  timeoutMs?: number;
  /**
   * Start it in a process group of its own and signal the whole group when stopping (for
   * `npm run ...`, whose shell and node would otherwise outlive it).
   */
  group?: boolean;
}

const running = new Set<Started>();

/** Starts a process and resolves once its standard output has matched `ready`. */
export function startProcess(options: StartOptions): Promise<Started> {
  const child = spawn(options.command, options.args, {
    cwd: ROOT,
    env: options.env,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: options.group === true,
  });
  const started: Started = { name: options.name, child, group: options.group === true, ready: [] as unknown as RegExpMatchArray };
  running.add(started);
  child.once('exit', () => running.delete(started));
  return new Promise((done, fail) => {
    let seen = '';
    let up = false;
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      void stopProcess(started);
      fail(new Error(`${options.name} did not start within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(new Error(`${options.name} could not be started: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!up) fail(new Error(`${options.name} exited (${signal ?? `code ${code}`}) before it was up`));
    });
    // Keep reading after it is up: a full pipe would block the child on its next log line.
    child.stdout.on('data', (chunk: Buffer) => {
      if (up) return;
      seen = (seen + chunk.toString()).slice(-4096);
      const match = seen.match(options.ready);
      if (match) {
        up = true;
        clearTimeout(timer);
        started.ready = match;
        done(started);
      }
    });
  });
}

/** SIGTERM (to its group when started with `group`), then SIGKILL after `graceMs`; resolves once it has exited. */
export async function stopProcess(started: Started, graceMs = 10_000): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const signal = (name: NodeJS.Signals): void => {
    try {
      if (started.group) process.kill(-child.pid!, name);
      else child.kill(name);
    } catch {
      // already gone
    }
  };
  const deadline = Date.now() + graceMs;
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  // The leader of a group (npm) may exit before the process it ran has finished closing.
  while (started.group && groupAlive(child.pid)) {
    if (Date.now() >= deadline) {
      signal('SIGKILL');
      break;
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  running.delete(started);
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops every process started here that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((started) => stopProcess(started)));
}
