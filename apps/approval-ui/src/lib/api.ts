/*
 * The browser's only way to the registry: `/api/<path>` on this origin, proxied by
 * `app/api/[...path]/route.ts`. JSON in, JSON out; every refusal is `{error, error_description}`
 * (docs/approval.md), turned into an `ApiError`.
 */

export type HttpMethod = 'GET' | 'POST' | 'DELETE';

/** A refusal from the API (or no answer at all: `status` 0, code `network_error`). */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string | undefined,
  ) {
    super(description ?? code);
  }
}

export interface ApiRequestOptions {
  body?: unknown;
  /** Sent as `X-CSRF-Token` on POST and DELETE. */
  csrfToken?: string | null;
  signal?: AbortSignal;
}

function isProblem(value: unknown): value is { error: string; error_description?: unknown } {
  return typeof value === 'object' && value !== null && typeof (value as { error?: unknown }).error === 'string';
}

/**
 * Calls the API at `path` (which starts with `/`, without the `/api` prefix) and returns the JSON
 * answer, or `undefined` for a 204. Throws `ApiError` on any other status than 2xx.
 *
 * @example
 * ```ts
 * const { grants } = await apiRequest<{ grants: HumanGrant[] }>('GET', '/me/grants?status=pending');
 * ```
 */
export async function apiRequest<T>(method: HttpMethod, path: string, options: ApiRequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && options.csrfToken) headers['x-csrf-token'] = options.csrfToken;
  let response: Response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: options.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network_error', 'the browser could not reach this site');
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    if (isProblem(body)) {
      const description = typeof body.error_description === 'string' ? body.error_description : undefined;
      throw new ApiError(response.status, body.error, description);
    }
    throw new ApiError(response.status, 'server_error', `the server answered ${response.status}`);
  }
  return body as T;
}
