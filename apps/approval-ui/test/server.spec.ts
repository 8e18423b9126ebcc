import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureApprovalUiBuilt, startApprovalUi, type RunningApprovalUi } from '../server.mjs';

// A stand-in for the registry: a session answer with two cookies, and an event stream that stays open.
let registry: Server;
let ui: RunningApprovalUi;
let eventStreamClosed: Promise<void>;

beforeAll(async () => {
  let closed!: () => void;
  eventStreamClosed = new Promise((resolve) => {
    closed = resolve;
  });
  registry = createServer((req, res) => {
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
    res.end(JSON.stringify({ human: { id: 'usr_1', name: 'Ada' }, csrf_token: 'csrf1', sawHost: req.headers.host }));
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
