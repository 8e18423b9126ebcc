import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { addCheckpoint, TEXT_TYPE, type WitnessAnswer } from './add-checkpoint.js';
import { CheckpointStore } from './checkpoint-store.js';
import type { WitnessConfig } from './config.js';
import { TrustedLogs } from './trusted-logs.js';
import { openWitnessKey } from './witness-key.js';

/**
 * The largest add-checkpoint body: an old size line, 63 proof lines of 45 bytes and a checkpoint
 * note with its signatures fit in a few KiB; 64 KiB leaves room for many signatures, no more.
 */
export const MAX_BODY_BYTES = 64 * 1024;
/** A request slower than this (headers and body) is cut: a witness must not be held open. */
const REQUEST_TIMEOUT_MS = 10_000;
const HEADERS_TIMEOUT_MS = 5_000;

const CHECKPOINT_PREFIX = '/checkpoint/';

export interface WitnessServerOptions {
  config: WitnessConfig;
  /** Milliseconds since the epoch: the cosignatures' time. `Date.now` by default. */
  now?: () => number;
  /** Where refusals that are evidence of misbehaviour and unexpected errors are reported; stderr by default. */
  warn?: (line: string) => void;
}

export interface WitnessServer {
  /** The key name of its cosignatures. */
  name: string;
  /** Its cosigner vkey (type 0x04): what a log or monitor is configured with. */
  vkey: string;
  /** The logs it witnesses; `npm start` adds its registry's log here once it has opened. */
  logs: TrustedLogs;
  /** Listens on the configured host and port; answers the base URL (the tlog-witness prefix). */
  listen(): Promise<string>;
  close(): Promise<void>;
}

/**
 * The witness (C2SP tlog-witness): `POST /add-checkpoint`, `GET /checkpoint/<origin>` (the latest
 * checkpoint it cosigned for that log, with its cosignature, for monitors and for the registry's
 * `audit verify`) and `GET /healthz`. Plain node:http: three routes, text bodies, and every byte
 * of the body bounded before it is read.
 */
export async function createWitnessServer(options: WitnessServerOptions): Promise<WitnessServer> {
  const { config } = options;
  const key = await openWitnessKey({ dataDir: config.dataDir, name: config.name });
  const store = CheckpointStore.open({ dataDir: config.dataDir });
  const logs = new TrustedLogs(config.logs);
  const warn = options.warn ?? ((line: string) => console.warn(`witness: ${line}`));
  const context = { logs, store, key, now: options.now ?? Date.now, warn };

  const route = async (request: IncomingMessage, response: ServerResponse): Promise<WitnessAnswer> => {
    const path = (request.url ?? '/').split('?', 1)[0]!;
    if (path === '/add-checkpoint') {
      if (request.method !== 'POST') return methodNotAllowed(response, 'POST');
      const body = await readBody(request);
      if (body === undefined) {
        response.setHeader('connection', 'close');
        return text(413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
      }
      return addCheckpoint(body, context);
    }
    if (path.startsWith(CHECKPOINT_PREFIX)) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(response, 'GET, HEAD');
      return latestCheckpoint(path.slice(CHECKPOINT_PREFIX.length), { logs, store });
    }
    if (path === '/healthz') {
      if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(response, 'GET, HEAD');
      return text(200, 'ok');
    }
    return text(404, 'not found');
  };

  const server: Server = createServer((request, response) => {
    route(request, response)
      .catch((error: unknown) => {
        // The detail goes to the log only; the client learns nothing of the witness's insides.
        warn(`unexpected error on ${request.method ?? '?'} ${(request.url ?? '').slice(0, 200)}: ${error instanceof Error ? error.message : String(error)}`);
        return text(500, 'server_error');
      })
      .then((answer) => send(request, response, answer))
      .catch(() => response.destroy());
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;

  return {
    name: key.name,
    vkey: key.vkey,
    logs,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          const { port } = server.address() as AddressInfo;
          resolve(`http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`);
        });
      }),
    close: () =>
      new Promise((resolve, reject) => {
        if (!server.listening) return resolve();
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
      }),
  };
}

/**
 * `GET /checkpoint/<origin>`: the latest checkpoint cosigned for the log (URL-encoded origin, or
 * its slashes as they are), as the log signed it with this witness's cosignature line appended: a
 * note any signed-note verifier reads with the log's and the witness's keys.
 */
function latestCheckpoint(encoded: string, options: { logs: TrustedLogs; store: CheckpointStore }): WitnessAnswer {
  let origin: string;
  try {
    origin = decodeURIComponent(encoded);
  } catch {
    return text(400, 'the origin is not URL-encoded text');
  }
  if (options.logs.keysOf(origin) === undefined) return text(404, 'this witness does not witness that origin');
  const latest = options.store.latest(origin);
  if (latest === undefined) return text(404, 'this witness has cosigned no checkpoint of that log yet');
  return { status: 200, contentType: TEXT_TYPE, body: `${latest.note}${latest.cosignature}` };
}

/**
 * The request body, or undefined once it is larger than {@link MAX_BODY_BYTES} (announced or
 * sent): nothing more is kept, the rest is read and dropped until the 413 has gone out and the
 * connection closes (or the request timeout cuts it).
 */
function readBody(request: IncomingMessage): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const announced = Number(request.headers['content-length'] ?? 0);
    if (announced > MAX_BODY_BYTES) {
      request.resume();
      return resolve(undefined);
    }
    const chunks: Buffer[] = [];
    let length = 0;
    let over = false;
    request.on('data', (chunk: Buffer) => {
      if (over) return;
      length += chunk.length;
      if (length <= MAX_BODY_BYTES) return void chunks.push(chunk);
      over = true;
      chunks.length = 0;
      resolve(undefined);
    });
    request.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks, length));
    });
    request.on('error', reject);
  });
}

function text(status: number, message: string): WitnessAnswer {
  return { status, contentType: TEXT_TYPE, body: `${message}\n` };
}

function methodNotAllowed(response: ServerResponse, allow: string): WitnessAnswer {
  response.setHeader('allow', allow);
  return text(405, 'method not allowed');
}

function send(request: IncomingMessage, response: ServerResponse, answer: WitnessAnswer): void {
  const body = Buffer.from(answer.body, 'utf8');
  response.writeHead(answer.status, { 'content-type': answer.contentType, 'content-length': body.length, 'cache-control': 'no-store' });
  response.end(request.method === 'HEAD' ? undefined : body);
}
