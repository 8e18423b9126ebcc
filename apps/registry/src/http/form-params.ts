import { InvalidRequest } from '@writ/core';

const FORM = 'application/x-www-form-urlencoded';

/**
 * The parameters of an OAuth endpoint's form body (RFC 6749 §3.2): the first two steps in front
 * of the token, introspection and revocation endpoints, {@link requireForm} then
 * {@link rejectRepeatedParameters}.
 */
export function formParams(contentType: string | undefined, body: unknown): Record<string, string> {
  requireForm(contentType);
  return rejectRepeatedParameters(body);
}

/** RFC 6749 §3.2: the request body is `application/x-www-form-urlencoded`. */
function requireForm(contentType: string | undefined): void {
  if (contentType?.split(';')[0]?.trim().toLowerCase() !== FORM) throw new InvalidRequest(`the request body must be ${FORM}`);
}

/**
 * RFC 6749 §3.1: a parameter is sent at most once. Fastify has already parsed the form; a
 * parameter it turned into an array was sent more than once, which is an error.
 */
function rejectRepeatedParameters(body: unknown): Record<string, string> {
  const params: Record<string, string> = {};
  if (body === null || typeof body !== 'object') return params;
  for (const [name, value] of Object.entries(body)) {
    if (typeof value !== 'string') throw new InvalidRequest(`parameter ${name} is repeated`);
    params[name] = value;
  }
  return params;
}
