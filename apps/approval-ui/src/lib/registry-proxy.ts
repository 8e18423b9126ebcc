/*
 * `/api/<path>?<query>` on the UI's origin -> `<registry>/<path>?<query>`. The browser only ever
 * talks to this origin: the session cookie stays first-party (SameSite=Strict) and no CORS is
 * needed (docs/approval.md). Server-side only.
 */

/**
 * Request headers the registry needs; everything else (host first of all) stays here.
 * `x-forwarded-for` ends with the browser's address, appended by server.mjs: the registry
 * believes it only from an address in its WRIT_TRUSTED_PROXIES, for its per-IP limits (ADR 0020).
 */
const FORWARDED_REQUEST_HEADERS = ['cookie', 'content-type', 'origin', 'x-csrf-token', 'accept', 'last-event-id', 'x-forwarded-for'];

/**
 * The largest request body forwarded. The human API takes small JSON documents (a WebAuthn
 * response is a few KiB) and the registry refuses more than 64 KiB anyway: this is its limit,
 * applied before anything is read here.
 */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * The registry paths the UI calls: the human API (sign-up, sign-in and the session under
 * `/auth/`, the signed-in person's API under `/me/`). Agent, token, operator and audit routes
 * are not this origin's business (ADR 0020).
 */
const HUMAN_API = /^\/(auth|me)\/[^/]/;

/** Percent-encoded `.`, `/` and `\`, which a later decoding could turn into another path. */
const ENCODED_SEPARATOR = /%(2e|2f|5c)/i;

/** Answer headers the browser needs, besides every `set-cookie`. */
const FORWARDED_RESPONSE_HEADERS = ['content-type', 'cache-control', 'www-authenticate'];

const DEFAULT_REGISTRY_URL = 'http://127.0.0.1:4000';

/** The registry's base URL, read at each request so a server started later can set it. */
export function registryUrl(): string {
  return (process.env.WRIT_REGISTRY_URL ?? DEFAULT_REGISTRY_URL).replace(/\/+$/, '');
}

/**
 * The registry URL for a request to `/api/<path>?<query>`, or `undefined` when the path is not
 * under `/api/`, is not the human API, or holds a percent-encoded dot, slash or backslash. The path stays as the browser encoded it (the URL parser has already removed
 * dot segments), and is appended to the base, so it can never name another host.
 */
export function targetUrl(requestUrl: string, base: string): string | undefined {
  const url = new URL(requestUrl);
  if (!url.pathname.startsWith('/api/')) return undefined;
  const path = url.pathname.slice('/api'.length);
  if (!HUMAN_API.test(path) || ENCODED_SEPARATOR.test(path)) return undefined;
  return `${base}${path}${url.search}`;
}

function unreachable(): Response {
  return Response.json(
    { error: 'temporarily_unavailable', error_description: 'the registry cannot be reached' },
    { status: 502, headers: { 'cache-control': 'no-store' } },
  );
}

function tooLarge(): Response {
  return Response.json(
    { error: 'invalid_request', error_description: `the request body is larger than ${MAX_BODY_BYTES} bytes` },
    // The rest of the body is not read: the connection closes instead of draining it.
    { status: 413, headers: { 'cache-control': 'no-store', connection: 'close' } },
  );
}

/**
 * The request's body, or `undefined` when it is larger than {@link MAX_BODY_BYTES}: a declared
 * `Content-Length` above it is refused before reading anything, and a streamed (chunked) body is
 * read only until it passes the limit, so no more than the limit (and one chunk) is ever held.
 */
async function boundedBody(request: Request): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const declared = request.headers.get('content-length');
  if (declared !== null && !(/^\d+$/.test(declared) && Number(declared) <= MAX_BODY_BYTES)) return undefined;
  if (request.body === null) return new Uint8Array(new ArrayBuffer(0));
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(new ArrayBuffer(size));
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** Status codes whose answer has no body (RFC 9110 §6.4.1); a Response refuses one. */
function hasNoBody(status: number): boolean {
  return status === 204 || status === 205 || status === 304;
}

/**
 * Forwards one request to the registry and its answer back, body streamed both ways: a
 * `text/event-stream` (`GET /me/events`) reaches the browser event by event, and stops upstream
 * when the browser goes away. A registry that cannot be reached answers
 * `502 {error:'temporarily_unavailable'}`.
 */
export async function proxyToRegistry(request: Request, base: string = registryUrl()): Promise<Response> {
  const target = targetUrl(request.url, base);
  if (target === undefined) {
    return Response.json({ error: 'not_found', error_description: 'no such route' }, { status: 404 });
  }
  const headers = new Headers();
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = request.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  // Requests to the human API are small JSON documents: read whole (up to the limit), sent with a length.
  const body = hasBody ? await boundedBody(request) : undefined;
  if (hasBody && body === undefined) return tooLarge();
  let upstream: Response;
  try {
    upstream = await fetch(target, {
      method: request.method,
      headers,
      body,
      redirect: 'manual',
      cache: 'no-store',
      signal: request.signal,
    });
  } catch {
    return unreachable();
  }
  const answerHeaders = new Headers();
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const value = upstream.headers.get(name);
    if (value !== null) answerHeaders.set(name, value);
  }
  for (const cookie of upstream.headers.getSetCookie()) answerHeaders.append('set-cookie', cookie);
  if (hasNoBody(upstream.status)) {
    await upstream.body?.cancel();
    return new Response(null, { status: upstream.status, headers: answerHeaders });
  }
  if (upstream.headers.get('content-type')?.startsWith('text/event-stream')) {
    // Events must reach the browser as they come: `no-transform` keeps Next's gzip (which would
    // hold them back in its buffer) off this answer, and `x-accel-buffering` a proxy in front.
    const cacheControl = answerHeaders.get('cache-control') ?? 'no-cache';
    if (!/\bno-transform\b/.test(cacheControl)) answerHeaders.set('cache-control', `${cacheControl}, no-transform`);
    answerHeaders.set('x-accel-buffering', 'no');
  }
  return new Response(upstream.body, { status: upstream.status, headers: answerHeaders });
}
