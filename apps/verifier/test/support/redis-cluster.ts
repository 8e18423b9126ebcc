import { type ChildProcess, execFile, spawn } from 'node:child_process';
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
  for (const child of children) child.kill('SIGKILL');
});

export { freePort };

/** A redis-server this test started. */
export interface RedisServer {
  port: number;
  url: string;
  /** Kills it (SIGKILL: no goodbye to the clients) and waits for it to be gone. */
  kill(): Promise<void>;
}

/** Starts `redis-server` on `port` (a free one by default) with `extra` arguments and waits until it answers PING. */
export async function startRedisServer(port?: number, extra: string[] = [], dir?: string): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(dir ? ['--dir', dir] : []), ...extra], { stdio: 'ignore' });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => children.delete(child));
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${p} exited with ${child.exitCode}`);
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
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
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
      const port = await freePort();
      const busPort = await freePort();
      servers.push(
        await startRedisServer(
          port,
          ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-port', String(busPort), '--cluster-node-timeout', '2000'],
          dir,
        ),
      );
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

/** Polls `check` every 50 ms until it resolves true, failing after 15 s. */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await check().catch(() => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
