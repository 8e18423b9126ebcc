import { InvalidRequest } from '@writ/core';

const FORM = 'application/x-www-form-urlencoded';

/**
 * The parameters of an OAuth endpoint's form body (RFC 6749 §3.2). Fastify has already parsed
 * the form; a parameter it turned into an array was sent more than once, which is an error.
 */
export function formParams(contentType: string | undefined, body: unknown): Record<string, string> {
  if (contentType?.split(';')[0]?.trim().toLowerCase() !== FORM) throw new InvalidRequest(`the request body must be ${FORM}`);
  const params: Record<string, string> = {};
  if (body === null || typeof body !== 'object') return params;
  for (const [name, value] of Object.entries(body)) {
    if (typeof value !== 'string') throw new InvalidRequest(`parameter ${name} is repeated`);
    params[name] = value;
  }
  return params;
}
