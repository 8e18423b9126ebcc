import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyToRegistry, targetUrl } from './registry-proxy';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

let server: Server;
let base: string;
const seen: Seen[] = [];
let respond: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      respond(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function uiRequest(path: string, init: RequestInit = {}): Request {
  return new Request(`http://localhost:3000${path}`, init);
}

describe('targetUrl', () => {
  it('maps /api/<path>?<query> onto the registry, path and query as sent', () => {
    expect(targetUrl('http://localhost:3000/api/me/grants?status=pending', 'http://r:4000')).toBe(
      'http://r:4000/me/grants?status=pending',
    );
    expect(targetUrl('http://localhost:3000/api/auth/login/options', 'http://r:4000')).toBe('http://r:4000/auth/login/options');
  });

  it('maps only the human API, and no path with an encoded dot, slash or backslash', () => {
    for (const path of ['/api/oauth/token', '/api/register', '/api/operator/services', '/api/audit/verify', '/api/.well-known/jwks.json', '/api/me', '/api/auth/', '/api/me//x']) {
      expect(targetUrl(`http://localhost:3000${path}`, 'http://r:4000'), path).toBeUndefined();
    }
    for (const path of ['/api/me/grants/a%2Fb', '/api/me/%2E%2E%2Foauth/token', '/api/me/x%5c..%5Coauth', '/api/auth/%2e%2e%2fregister']) {
      expect(targetUrl(`http://localhost:3000${path}`, 'http://r:4000'), path).toBeUndefined();
    }
  });

  it('never leaves the registry host, and answers nothing outside /api/', () => {
    expect(targetUrl('http://localhost:3000/api//evil.example/x', 'http://r:4000')).toBeUndefined();
    expect(targetUrl('http://localhost:3000/api/../../etc', 'http://r:4000')).toBeUndefined();
    expect(targetUrl('http://localhost:3000/signin', 'http://r:4000')).toBeUndefined();
  });
});

describe('proxyToRegistry', () => {
  it('forwards the method, path, query, body and only the headers the registry needs', async () => {
    respond = (_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json', 'x-internal': 'secret' });
      res.end('{"ok":true}');
    };
    const answer = await proxyToRegistry(
      uiRequest('/api/me/grants/grt_1/decision/options?x=1', {
        method: 'POST',
        headers: {
          cookie: 'writ_session=abc',
          'content-type': 'application/json',
          origin: 'http://localhost:3000',
          'x-csrf-token': 'csrf1',
          accept: 'application/json',
          'last-event-id': '7',
          'x-forwarded-for': '10.0.0.1',
          authorization: 'Bearer nope',
        },
        body: '{"decision":"approve"}',
      }),
      base,
    );
    expect(answer.status).toBe(201);
    expect(await answer.json()).toEqual({ ok: true });
    expect(answer.headers.get('x-internal')).toBeNull();
    const request = seen.at(-1)!;
    expect(request).toMatchObject({ method: 'POST', url: '/me/grants/grt_1/decision/options?x=1', body: '{"decision":"approve"}' });
    expect(request.headers).toMatchObject({
      cookie: 'writ_session=abc',
      'content-type': 'application/json',
      origin: 'http://localhost:3000',
      'x-csrf-token': 'csrf1',
      accept: 'application/json',
      'last-event-id': '7',
    });
    expect(request.headers.host).toBe(new URL(base).host);
    // As received: server.mjs has appended the browser's address; the registry trusts only its last hops.
    expect(request.headers['x-forwarded-for']).toBe('10.0.0.1');
    expect(request.headers.authorization).toBeUndefined();
  });

  it('returns every set-cookie, cache-control and www-authenticate of the answer', async () => {
    respond = (_req, res) => {
      res.writeHead(401, [
        ['content-type', 'application/json'],
        ['cache-control', 'no-store'],
        ['www-authenticate', 'Bearer realm="writ"'],
        ['set-cookie', 'writ_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict'],
        ['set-cookie', 'other=1; Path=/'],
      ]);
      res.end('{"error":"login_required","error_description":"sign in with your passkey first"}');
    };
    const answer = await proxyToRegistry(uiRequest('/api/auth/session'), base);
    expect(answer.status).toBe(401);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="writ"');
    expect(answer.headers.getSetCookie()).toEqual([
      'writ_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict',
      'other=1; Path=/',
    ]);
    expect(await answer.json()).toEqual({ error: 'login_required', error_description: 'sign in with your passkey first' });
  });

  it('answers a 204 without a body', async () => {
    respond = (_req, res) => {
      res.writeHead(204, { 'set-cookie': 'writ_session=; Max-Age=0; Path=/' });
      res.end();
    };
    const answer = await proxyToRegistry(uiRequest('/api/auth/logout', { method: 'POST', body: '{}' }), base);
    expect(answer.status).toBe(204);
    expect(answer.body).toBeNull();
    expect(answer.headers.getSetCookie()).toEqual(['writ_session=; Max-Age=0; Path=/']);
  });

  it('streams an event stream event by event, and stops it upstream when the browser goes away', async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((resolve) => {
      upstreamClosed = resolve;
    });
    respond = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write('event: grant\ndata: {"grant_id":"grt_1","status":"pending","version":1}\n\n');
      res.on('close', () => upstreamClosed());
      // The stream stays open, as the registry's does.
    };
    const browser = new AbortController();
    const answer = await proxyToRegistry(uiRequest('/api/me/events', { signal: browser.signal }), base);
    expect(answer.headers.get('content-type')).toBe('text/event-stream');
    // no-transform keeps Next's gzip from buffering the events.
    expect(answer.headers.get('cache-control')).toBe('no-store, no-transform');
    const reader = answer.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('event: grant');
    browser.abort();
    await reader.cancel().catch(() => undefined);
    await closed;
  });

  it('answers 502 temporarily_unavailable when the registry cannot be reached', async () => {
    const answer = await proxyToRegistry(uiRequest('/api/auth/session'), 'http://127.0.0.1:1');
    expect(answer.status).toBe(502);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(await answer.json()).toEqual({
      error: 'temporarily_unavailable',
      error_description: 'the registry cannot be reached',
    });
  });
});
