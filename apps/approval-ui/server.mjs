// The approval UI's production server and its build step, for `npm run start:ui`, `npm start` and
// the tests. Plain JavaScript (ESM), so Node runs it as it is and other packages can import it.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const appDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(appDir, '../..');
const coreDir = path.join(repoRoot, 'libs/core');
const distDir = path.join(appDir, '.next');
const hashFile = path.join(distDir, 'writ-source-hash');
// Outside .next, which `next build` empties when it starts.
const lockDir = path.join(appDir, '.next-build-lock');
const require = createRequire(import.meta.url);

/** What `next build` reads from the app: its sources (tests aside) and its configuration. */
const APP_BUILD_INPUTS = ['src', 'public', 'next.config.mjs', 'package.json', 'tsconfig.json'];

function isTestFile(file) {
  return /\.(spec|test)\.tsx?$/.test(file);
}

/** Every file under `dir` (or `dir` itself when it is a file), relative to `base`; none if missing. */
async function listFiles(dir, base) {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (error.code === 'ENOTDIR') return [path.relative(base, dir)];
    return [];
  }
  const files = [];
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await listFiles(full, base)));
    else if (entry.isFile()) files.push(path.relative(base, full));
  }
  return files;
}

/**
 * A hash of everything the build reads that can change here: the app's sources and config,
 * libs/core's sources, and the versions of Next and React.
 */
export async function approvalUiSourceHash() {
  const hash = createHash('sha256');
  const add = async (base, label, inputs) => {
    const files = [];
    for (const input of inputs) files.push(...(await listFiles(path.join(base, input), base)));
    for (const file of files.filter((f) => !isTestFile(f)).sort()) {
      hash.update(`${label}/${file.split(path.sep).join('/')}\0`);
      hash.update(await readFile(path.join(base, file)));
      hash.update('\0');
    }
  };
  await add(appDir, 'apps/approval-ui', APP_BUILD_INPUTS);
  await add(coreDir, 'libs/core', ['src']);
  hash.update(await readFile(path.join(coreDir, 'package.json')));
  for (const pkg of ['next', 'react', 'react-dom', '@simplewebauthn/browser']) {
    // Read from node_modules: not every package exports its package.json.
    const manifest = await readFile(path.join(repoRoot, 'node_modules', pkg, 'package.json'), 'utf8').catch(() => '{}');
    hash.update(`${pkg}@${JSON.parse(manifest).version ?? 'unknown'}\0`);
  }
  return hash.digest('hex');
}

/** Runs `next build`, handing each line of its output to `log`; resolves with the whole output. */
function runNextBuild(log) {
  const nextBin = path.join(path.dirname(require.resolve('next/package.json')), 'dist/bin/next');
  // libs/core imports `./x.js` for `x.ts`, which only webpack's extensionAlias resolves (see next.config.mjs).
  const args = [nextBin, 'build', '--webpack', appDir];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', NODE_ENV: 'production' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let pending = '';
    const onData = (chunk) => {
      const text = chunk.toString();
      output += text;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') log(`approval-ui build: ${line}`);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (pending.trim() !== '') log(`approval-ui build: ${pending}`);
      if (code === 0) resolve(output);
      else reject(new Error(`next build failed (${signal ?? `exit code ${code}`}):\n${output}`));
    });
  });
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/**
 * Runs `fn` holding the build lock (a directory: mkdir is atomic), so that two processes (test
 * workers, `npm start` and a test) never run `next build` into the same .next at once. A lock
 * left by a process that died is taken over.
 */
async function withBuildLock(fn, log) {
  let told = false;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(path.join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const pid = Number(await readFile(path.join(lockDir, 'pid'), 'utf8').catch(() => ''));
      const age = await stat(lockDir).then((s) => Date.now() - s.mtimeMs, () => 0);
      // No pid yet is a lock being taken right now, unless it has been so for long.
      if ((pid > 0 && !isAlive(pid)) || (!(pid > 0) && age > 30_000)) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!told) log('approval-ui: waiting for the build another process is running…');
      told = true;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

async function isUpToDate(sourceHash) {
  const previous = existsSync(hashFile) ? (await readFile(hashFile, 'utf8')).trim() : undefined;
  return { previous, upToDate: previous === sourceHash && existsSync(path.join(distDir, 'BUILD_ID')) };
}

let building;

/**
 * Builds the approval UI for production (`next build`) unless the last successful build was made
 * from the same sources (hash in `.next/writ-source-hash`). Prints progress through `log`; throws
 * with the build's output when it fails. Calls in one process share one build, and processes
 * take turns (a lock directory).
 *
 * @param {{ log?: (line: string) => void, force?: boolean }} [options]
 * @returns {Promise<{ built: boolean, ms: number }>}
 */
export function ensureApprovalUiBuilt({ log = console.log, force = false } = {}) {
  building ??= (async () => {
    const started = Date.now();
    if (!force && (await isUpToDate(await approvalUiSourceHash())).upToDate) {
      log('approval-ui: the production build is up to date');
      return { built: false, ms: Date.now() - started };
    }
    return withBuildLock(async () => {
      // Hashed again under the lock: the sources may have changed, or another process built them.
      const sourceHash = await approvalUiSourceHash();
      const { previous, upToDate } = await isUpToDate(sourceHash);
      if (!force && upToDate) {
        log('approval-ui: the production build is up to date');
        return { built: false, ms: Date.now() - started };
      }
      log(`approval-ui: building for production (${previous === undefined ? 'no build yet' : 'sources changed'})…`);
      await rm(hashFile, { force: true });
      await runNextBuild(log);
      await mkdir(distDir, { recursive: true });
      await writeFile(hashFile, `${sourceHash}\n`);
      const ms = Date.now() - started;
      log(`approval-ui: built in ${(ms / 1000).toFixed(1)} s`);
      return { built: true, ms };
    }, log);
  })().finally(() => {
    building = undefined;
  });
  return building;
}

/**
 * `X-Forwarded-For` with the browser's address (this connection's peer) appended, as a proxy
 * does: the `/api` proxy passes it on, and the registry believes the last hop only because it
 * comes from an address it trusts (WRIT_TRUSTED_PROXIES), so it can limit sign-ups and ceremonies
 * per browser address (ADR 0020). What the browser itself sent stays in front, untrusted.
 *
 * @param {import('node:http').IncomingMessage} req
 */
function forwardedFor(req) {
  const sent = req.headers['x-forwarded-for'];
  const earlier = (Array.isArray(sent) ? sent.join(', ') : (sent ?? '')).trim();
  const peer = req.socket.remoteAddress ?? 'unknown';
  return earlier === '' ? peer : `${earlier}, ${peer}`;
}

/**
 * Serves the production build of the approval UI (run `ensureApprovalUiBuilt` first) on
 * `http://host:port`; `/api/*` is proxied to the registry at `registryUrl`. Port 0 picks a free port.
 *
 * @param {{ port?: number, host?: string, registryUrl?: string }} [options]
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export async function startApprovalUi({ port = 3000, host = 'localhost', registryUrl } = {}) {
  if (registryUrl !== undefined) process.env.WRIT_REGISTRY_URL = registryUrl;
  process.env.NEXT_TELEMETRY_DISABLED = '1';
  if (!existsSync(path.join(distDir, 'BUILD_ID'))) {
    throw new Error('the approval UI has no production build: run ensureApprovalUiBuilt() (npm run build:ui) first');
  }
  const { default: next } = await import('next');

  // Listen first, so port 0 becomes a real port before Next is told which one it runs on; requests
  // that arrive before Next is ready wait for it.
  let ready;
  const server = createServer((req, res) => {
    req.headers['x-forwarded-for'] = forwardedFor(req);
    ready.then(
      (handle) => handle(req, res),
      () => {
        res.statusCode = 503;
        res.end();
      },
    );
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const actualPort = typeof address === 'object' && address !== null ? address.port : port;
  const app = next({ dev: false, dir: appDir, hostname: host, port: actualPort, httpServer: server, webpack: true });
  ready = app.prepare().then(() => app.getRequestHandler());
  try {
    await ready;
  } catch (error) {
    server.close();
    throw error;
  }
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${actualPort}`,
    async close() {
      // Open event streams (the inbox) would keep server.close() waiting for ever.
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve()));
      await app.close();
    },
  };
}

// `node apps/approval-ui/server.mjs build [--force]` or `node apps/approval-ui/server.mjs start`.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [command = 'start', ...flags] = process.argv.slice(2);
  try {
    if (command === 'build') {
      await ensureApprovalUiBuilt({ force: flags.includes('--force') });
    } else if (command === 'start') {
      await ensureApprovalUiBuilt();
      const port = Number(process.env.UI_PORT ?? 3000);
      const ui = await startApprovalUi({
        port,
        host: process.env.UI_HOST ?? 'localhost',
        registryUrl: process.env.WRIT_REGISTRY_URL,
      });
      console.log(`approval-ui: listening on ${ui.url} (registry ${process.env.WRIT_REGISTRY_URL ?? 'http://127.0.0.1:4000'})`);
      const stop = () => {
        ui.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    } else {
      console.error(`usage: node apps/approval-ui/server.mjs [build [--force] | start]`);
      process.exitCode = 2;
    }
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  }
}
