import { InvalidClient, InvalidToken, renderWwwAuthenticate } from '@writ/core';

/**
 * RFC 7591 §3 with RFC 6750 §3.1: the initial access token is missing, unknown, used or expired.
 * Answered 401 with a `Bearer` challenge, the scheme the token is presented with.
 */
export class InitialAccessTokenRejected extends InvalidToken {
  override wwwAuthenticate(): string | undefined {
    return renderWwwAuthenticate(this, { scheme: 'Bearer' });
  }
}

/**
 * RFC 6749 §5.2: a client that authenticated in the `Authorization` header gets a 401 with a
 * challenge in the scheme it used (`private_key_jwt`, ADR 0005).
 */
export class HeaderClientAuthRejected extends InvalidClient {
  override wwwAuthenticate(): string {
    return `private_key_jwt error="invalid_client", error_description=${quote(this.description)}`;
  }
}

/** RFC 9110 §5.6.4 quoted-string: escape backslash and double quote, drop control characters. */
function quote(value: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${value.replace(/[\u0000-\u001f\u007f]/g, '').replace(/(["\\])/g, '\\$1')}"`;
}
