import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from '../../../registry/test/support/redis.js';

const run = promisify(execFile);

/** Every redis-server these helpers started, killed when the process exits whatever happens. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) {
    child.kill('SIGKILL');
    child.kill('SIGCONT');
  }
});

export { freePort };

/** A redis-server this test started. */
export interface RedisServer {
  port: number;
  url: string;
  /** Kills it (SIGKILL: no goodbye to the clients) and waits for it to be gone. */
  kill(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open, nothing is answered until {@link resume}. */
  freeze(): void;
  /** Lets a frozen server run again (SIGCONT): it then executes what it received meanwhile. */
  resume(): void;
}

/** Starts `redis-server` on `port` (a free one by default) with `extra` arguments and waits until it answers PING. */
export async function startRedisServer(port?: number, extra: string[] = [], dir?: string): Promise<RedisServer> {
  if (port !== undefined) return startOn(port, extra, dir);
  // A free port may be taken before redis-server binds it: try others.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(await freePort(), extra, dir);
    } catch (error) {
      if (!(error instanceof ServerExited) || attempt >= 5) throw error;
    }
  }
}

/** Whether `redis-server` runs here; asked once. */
let installed: boolean | undefined;

async function startOn(p: number, extra: string[], dir: string | undefined): Promise<RedisServer> {
  installed ??= spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!installed) throw new Error('these tests start redis-server on loopback ports: install it (apt-get install -y redis-server)');
  const child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(dir ? ['--dir', dir] : []), ...extra], { stdio: 'ignore' });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => children.delete(child));
  await waitFor(async () => {
    // Fatal at once (a port taken meanwhile, for example): callers pick other ports and retry.
    if (child.exitCode !== null) throw new ServerExited(`redis-server on port ${p} exited with ${child.exitCode}`);
    const probe = new Redis({ port: p, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } finally {
      probe.disconnect();
    }
  }, `redis-server on port ${p}`);
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    kill: async () => {
      // A frozen server must run again to die of SIGKILL promptly on every kernel.
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        child.kill('SIGCONT');
      }
      await exited;
    },
    freeze: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
  };
}

/** A Redis Cluster of masters without replicas on loopback ports, started for a test file. */
export interface RedisClusterHandle {
  nodes: { host: string; port: number }[];
  stop(): Promise<void>;
}

/**
 * Starts `masters` cluster-enabled redis-servers (each with an explicit cluster bus port, since
 * port + 10000 may not exist), joins them with `redis-cli --cluster create`, and waits until every
 * node reports `cluster_state:ok`. `stop()` kills them and removes their folder.
 */
export async function startRedisCluster(masters = 3): Promise<RedisClusterHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-redis-cluster-'));
  const servers: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      // A port found free may be taken before redis-server binds it (other suites start servers
      // too): a node that exits at once is started again on other ports.
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        const busPort = await freePort();
        if (busPort === port) continue;
        try {
          servers.push(
            await startRedisServer(
              port,
              ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-port', String(busPort), '--cluster-node-timeout', '2000'],
              dir,
            ),
          );
          break;
        } catch (error) {
          if (!(error instanceof ServerExited) || attempt >= 5) throw error;
        }
      }
    }
    await run('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 });
    await waitFor(async () => {
      const states = await Promise.all(
        servers.map(async (s) => {
          const { stdout } = await run('redis-cli', ['-p', String(s.port), 'cluster', 'info']);
          return /cluster_state:ok/.test(stdout);
        }),
      );
      return states.every(Boolean);
    }, 'cluster_state:ok on every node');
    return { nodes: servers.map((s) => ({ host: '127.0.0.1', port: s.port })), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The redis-server being waited for is gone: waiting longer cannot help. */
class ServerExited extends Error {}

/** Polls `check` every 50 ms until it resolves true, failing after 15 s, or at once if the server exited. */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await check().catch((error: unknown) => {
      if (error instanceof ServerExited) throw error;
      return false;
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
