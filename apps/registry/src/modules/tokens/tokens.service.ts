import { SELF_SIGNED_TOKEN_TYPE, TXN_TOKEN_TYPE, UnsupportedTokenType } from '@writ/core';
import { delegateToken } from './delegation.handler.js';
import { issueRootToken } from './root-token.handler.js';
import { requireTokenExchange, type SubjectTokenHandler, type TokenEndpointDeps, type TokenRequest, type TokenResponse } from './token-endpoint.js';

export type { TokenRequest, TokenResponse } from './token-endpoint.js';

/** What the token service needs: see {@link TokenEndpointDeps}. */
export type TokensOptions = TokenEndpointDeps;

/**
 * One handler per RFC 8693 `subject_token_type`: the agent's self-signed statement gets a root
 * token, a Txn-Token this registry issued gets a delegated child.
 */
const SUBJECT_TOKEN_HANDLERS: ReadonlyMap<string, SubjectTokenHandler> = new Map([
  [SELF_SIGNED_TOKEN_TYPE, issueRootToken],
  [TXN_TOKEN_TYPE, delegateToken],
]);

/**
 * The RFC 8693 token exchange at the RFC 6749 §3.2 token endpoint (ARCHITECTURE.md "Issuing a
 * root token", "Delegating to the next agent"). In front, the shared steps: the form with no
 * repeated parameter and one DPoP header (readTokenRequest, in the controller), then the
 * request's grant type, requested token type and subject token; then the handler of the subject
 * token's type, which authenticates the client, checks the DPoP proof and mints the token with
 * the shared steps, in its own order (a delegation's proof is made with its parent's key).
 */
export class TokensService {
  constructor(private readonly endpoint: TokensOptions) {}

  async exchange(request: TokenRequest): Promise<TokenResponse> {
    const p = request.params;
    requireTokenExchange(p);
    const handler = SUBJECT_TOKEN_HANDLERS.get(p.subject_token_type ?? '');
    if (!handler) throw new UnsupportedTokenType(`subject_token_type must be ${SELF_SIGNED_TOKEN_TYPE}`);
    return handler(this.endpoint, request);
  }
}
