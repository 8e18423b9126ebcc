import { createServer, get, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureApprovalUiBuilt, startApprovalUi, type RunningApprovalUi } from '../server.mjs';

// A stand-in for the registry: a session answer with two cookies, and an event stream that stays open.
let registry: Server;
let ui: RunningApprovalUi;
let eventStreamClosed: Promise<void>;
/** Every request the stand-in registry received, as `METHOD path`, as soon as it began. */
const registrySaw: string[] = [];

beforeAll(async () => {
  let closed!: () => void;
  eventStreamClosed = new Promise((resolve) => {
    closed = resolve;
  });
  registry = createServer((req, res) => {
    registrySaw.push(`${req.method} ${req.url}`);
    if (req.url === '/me/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write('event: grant\ndata: {"grant_id":"grt_1","status":"pending","version":1}\n\n');
      res.on('close', () => closed());
      return;
    }
    res.writeHead(200, [
      ['content-type', 'application/json'],
      ['set-cookie', 'writ_session=s1; Path=/; HttpOnly; SameSite=Strict'],
      ['set-cookie', 'other=1; Path=/'],
    ]);
    res.end(JSON.stringify({ human: { id: 'usr_1', name: 'Ada' }, csrf_token: 'csrf1', sawHost: req.headers.host, sawForwardedFor: req.headers['x-forwarded-for'] }));
  });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  const registryUrl = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
  await ensureApprovalUiBuilt();
  ui = await startApprovalUi({ port: 0, host: '127.0.0.1', registryUrl });
}, 300_000);

afterAll(async () => {
  await ui?.close();
  registry?.closeAllConnections();
  await new Promise((resolve) => registry?.close(resolve));
});

describe('the built approval UI', () => {
  it.each([
    ['/signin', 'Sign in'],
    ['/signup', 'Create your account'],
    ['/', 'Requests waiting for you'],
    ['/grants', 'Your grants'],
    ['/agents', 'Your agents'],
    ['/account', 'Your account'],
  ])('serves %s as HTML with its heading', async (path, heading) => {
    const answer = await fetch(`${ui.url}${path}`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    expect(answer.headers.get('x-powered-by')).toBeNull();
    expect(answer.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(await answer.text()).toContain(`<h1>${heading}</h1>`);
  });

  it('proxies /api to the registry with every set-cookie, and without the browser-facing host', async () => {
    const answer = await fetch(`${ui.url}/api/auth/session`);
    expect(answer.status).toBe(200);
    expect(answer.headers.getSetCookie()).toEqual(['writ_session=s1; Path=/; HttpOnly; SameSite=Strict', 'other=1; Path=/']);
    const body = (await answer.json()) as { sawHost: string };
    expect(body.sawHost).toBe(new URL(`http://127.0.0.1:${(registry.address() as AddressInfo).port}`).host);
  });

  it('streams the event stream uncompressed, and closes it upstream when the browser leaves', async () => {
    const first = await new Promise<{ encoding: string | undefined; text: string }>((resolve, reject) => {
      const request = get(`${ui.url}/api/me/events`, { headers: { 'accept-encoding': 'gzip, br' } }, (response) => {
        response.once('data', (chunk: Buffer) => {
          resolve({ encoding: response.headers['content-encoding'], text: chunk.toString() });
          request.destroy();
        });
      });
      request.on('error', reject);
    });
    expect(first.encoding).toBeUndefined();
    expect(first.text).toContain('event: grant');
    await eventStreamClosed;
  });

  it('tells the registry the browser address last in X-Forwarded-For, after whatever the browser claimed', async () => {
    const answer = await fetch(`${ui.url}/api/auth/session`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    expect(((await answer.json()) as { sawForwardedFor: string }).sawForwardedFor).toBe('203.0.113.9, 127.0.0.1');
  });

  it('refuses a 40 MiB body by its Content-Length with 413 before reading it, and the registry never sees it', async () => {
    const before = registrySaw.length;
    // Only the first KiB is sent: an answer can only come if the proxy did not wait for the rest.
    const answer = await sendPartly('/api/auth/register/options', { 'content-type': 'application/json', 'content-length': String(40 * 1024 * 1024) }, [Buffer.alloc(1024, 0x20)]);
    expect(answer.status).toBe(413);
    expect(answer.body).toEqual({ error: 'invalid_request', error_description: 'the request body is larger than 65536 bytes' });
    expect(registrySaw.slice(before)).toEqual([]);
  });

  it('refuses a chunked body once it passes 64 KiB, without waiting for its end, and the registry never sees it', async () => {
    const before = registrySaw.length;
    const answer = await sendPartly('/api/me/passkeys/verify', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, [
      Buffer.alloc(32 * 1024, 0x20),
      Buffer.alloc(32 * 1024, 0x20),
      Buffer.alloc(1, 0x20),
    ]);
    expect(answer.status).toBe(413);
    expect(answer.body).toEqual({ error: 'invalid_request', error_description: 'the request body is larger than 65536 bytes' });
    expect(registrySaw.slice(before)).toEqual([]);
  });

  it('still forwards a chunked body within 64 KiB', async () => {
    const before = registrySaw.length;
    const answer = await sendWhole('/api/auth/login/options', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, [Buffer.alloc(64 * 1024, 0x20)]);
    expect(answer.status).toBe(200);
    expect(registrySaw.slice(before)).toEqual(['POST /auth/login/options']);
  });

  it.each([
    ['POST', '/api/oauth/token'],
    ['POST', '/api/operator/services'],
    ['GET', '/api/audit/verify'],
    ['GET', '/api/.well-known/jwks.json'],
    ['POST', '/api/register'],
    ['GET', '/api/grants/grt_1?wait=60'],
    ['GET', '/api/me/..%2F..%2Faudit/verify'],
    ['GET', '/api/me/%2e%2e%2Faudit/verify'],
    ['GET', '/api/auth'],
  ])('answers 404 to %s %s, outside the human API, and the registry never sees it', async (method, path) => {
    const before = registrySaw.length;
    // node:http sends the path exactly as written (fetch would remove the encoded dot segments).
    const answer = await sendRaw(method, path);
    expect(answer).toEqual({ status: 404, body: { error: 'not_found', error_description: 'no such route' } });
    expect(registrySaw.slice(before)).toEqual([]);
  });

  it('never forwards a path whose encoded dot segments lead out of the human API', async () => {
    const before = registrySaw.length;
    // The URL parser takes `%2e%2e` for `..`, so Next answers its own 404 page.
    expect((await sendRaw('GET', '/api/me/%2e%2e/%2e%2e/audit/verify')).status).toBe(404);
    expect(registrySaw.slice(before)).toEqual([]);
  });

  it('answers 502 temporarily_unavailable when the registry cannot be reached', async () => {
    registry.closeAllConnections();
    await new Promise((resolve) => registry.close(resolve));
    const answer = await fetch(`${ui.url}/api/auth/session`);
    expect(answer.status).toBe(502);
    expect(await answer.json()).toEqual({
      error: 'temporarily_unavailable',
      error_description: 'the registry cannot be reached',
    });
  });
});

interface RawAnswer {
  status: number;
  body: unknown;
}

function readAnswer(response: IncomingMessage): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('error', reject);
    response.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      resolve({ status: response.statusCode ?? 0, body: response.headers['content-type']?.startsWith('application/json') ? (JSON.parse(text) as unknown) : text });
    });
  });
}

/** POSTs `chunks` and leaves the body unfinished: resolves with the answer, which must come before the end. */
function sendPartly(path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${ui.url}${path}`, { method: 'POST', headers: { origin: 'http://localhost:3000', ...headers } }, (response) => {
      readAnswer(response).then(resolve, reject).finally(() => request.destroy());
    });
    // The server may close the connection while the body is still being sent.
    request.on('error', () => undefined);
    for (const chunk of chunks) request.write(chunk);
  });
}

function sendRaw(method: string, path: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const headers = method === 'POST' ? { origin: 'http://localhost:3000', 'content-type': 'application/json', 'content-length': '2' } : {};
    const request = httpRequest(`${ui.url}${path}`, { method, headers }, (response) => {
      readAnswer(response).then(resolve, reject);
    });
    request.on('error', reject);
    request.end(method === 'POST' ? '{}' : undefined);
  });
}

function sendWhole(path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${ui.url}${path}`, { method: 'POST', headers: { origin: 'http://localhost:3000', ...headers } }, (response) => {
      readAnswer(response).then(resolve, reject);
    });
    request.on('error', reject);
    for (const chunk of chunks) request.write(chunk);
    request.end();
  });
}
