/**
 * The audit event of one verifier decision, as the verifier queues it and the registry appends it
 * to the chain (docs/verifier.md, ADR 0017): `{ type: 'verification', actor, subject, grant_id,
 * txn, data }`. The verifier writes one per request, so the part that is the same for every
 * request of one token at one service (the head) is serialised once and the request's own fields
 * are appended to it; the result is exactly `JSON.stringify` of the whole event, in this order:
 * `data` = `service`, `jti`, `method`, `url`, `action`, `proof_jti`, `proof_jkt`, `at_ms`, then
 * `resource`, `amount`, `currency`, `charged_minor`, `bound` when present, then `verifier`.
 */

/**
 * What every decision on one verified token at one service says.
 *
 * @example
 * ```ts
 * const head: VerificationEventHead = { actor: 'agt_a', service: 'svc_hotels', grantId: 'grt_1', txn: 'txn_1', jti: 'tok_1' };
 * ```
 */
export interface VerificationEventHead {
  /** The agent holding the token (`act.sub`). */
  actor: string;
  /** The calling service provider's id: the event's `subject` and `data.service`. */
  service: string;
  grantId: string;
  txn: string;
  /** The token's `jti`. */
  jti: string;
}

/**
 * What is bound into a step-up and recorded with the decision (ADR 0014 amendment): the URL's
 * query as sent (null when none) and the request fields the service provider binds.
 *
 * @example
 * ```ts
 * const bound: BoundRequest = { query: 'to=alice', fields: { payee: 'Alice' } };
 * ```
 */
export interface BoundRequest {
  query: string | null;
  fields: Record<string, string>;
}

/**
 * One request's part of a decision event on a verified token.
 *
 * @example
 * ```ts
 * const request: VerificationEventRequest = {
 *   method: 'POST', url: 'https://hotels.example/rooms/42/book', action: 'book',
 *   proofJti: 'p-1', proofJkt: 'jkt-1', atMs: 1_700_000_000_000, amount: 180, currency: 'EUR', chargedMinor: 180_000,
 * };
 * ```
 */
export interface VerificationEventRequest {
  method: string;
  /** The URL normalised, without query and fragment (they may carry secrets). */
  url: string;
  action: string;
  /**
   * The proof's `jti` and key thumbprint, and the decision's own clock (epoch ms): what lets the
   * registry rebuild the grant's proof replay state and rate log from the chain (ADR 0017).
   */
  proofJti: string;
  proofJkt: string;
  atMs: number;
  resource?: string;
  /** The amount the request states; its `currency` is recorded only with it. */
  amount?: number;
  currency?: string;
  /** What an allow adds to the grant's `spent` (thousandths), so a rebuild adds exactly the same. */
  chargedMinor?: number;
  /** What a step-up binds, on requests that need a person's approval. */
  bound?: BoundRequest;
}

/**
 * A decision taken before any token could be trusted (the token or its proof did not verify): no
 * actor, grant or transaction is named, and the token only by the start of its hash.
 *
 * @example
 * ```ts
 * const refused: UnverifiedEventRequest = {
 *   service: 'svc_hotels', method: 'GET', url: 'https://hotels.example/rooms', action: 'search',
 *   tokenHash: 'q1w2e3r4t5y6u7i8o9p0', errorDescription: 'token expired',
 * };
 * ```
 */
export interface UnverifiedEventRequest {
  service: string;
  method: string;
  url: string;
  action: string;
  /** The SHA-256 (base64url) of the token as sent; only its first 16 characters are recorded. */
  tokenHash: string;
  errorDescription: string;
}

/**
 * Writes the audit events of one verifier instance (its name is in every event).
 *
 * @example
 * ```ts
 * const events = new VerificationEvents('verifier-1');
 * const head = events.head({ actor: 'agt_a', service: 'svc_hotels', grantId: 'grt_1', txn: 'txn_1', jti: 'tok_1' });
 * const body = events.decision(head, { method: 'GET', url: 'https://hotels.example/rooms', action: 'search', proofJti: 'p-1', proofJkt: 'jkt-1', atMs: 1_700_000_000_000 });
 * JSON.parse(body).data.verifier; // 'verifier-1'
 * ```
 */
export class VerificationEvents {
  /** The instance name as a JSON string, with the closing braces of `data` and the event. */
  private readonly tail: string;

  constructor(readonly verifier: string) {
    this.tail = `,"verifier":${JSON.stringify(verifier)}}}`;
  }

  /**
   * The event's JSON up to the open `data` object, after `service` and `jti`: the same for every
   * request of the token at that service, so a caller keeps it per token and service and hands
   * it to {@link decision}.
   */
  head(head: VerificationEventHead): string {
    const fixed = { type: 'verification', actor: head.actor, subject: head.service, grant_id: head.grantId, txn: head.txn, data: { service: head.service, jti: head.jti } };
    // Without the two closing braces: the request's own fields follow inside `data`.
    return JSON.stringify(fixed).slice(0, -2);
  }

  /**
   * The whole event of one decision: `head` (from {@link head}) and this request's fields.
   * Every text goes through `JSON.stringify`, so any string, a quote, a backslash or a lone
   * surrogate included, is escaped as `JSON.stringify` of the whole event would escape it.
   */
  decision(head: string, request: VerificationEventRequest): string {
    // Concatenated rather than one JSON.stringify of a fresh object: this runs on every request.
    let body = `${head},"method":${JSON.stringify(request.method)},"url":${JSON.stringify(request.url)},"action":${JSON.stringify(request.action)},"proof_jti":${JSON.stringify(request.proofJti)},"proof_jkt":${JSON.stringify(request.proofJkt)},"at_ms":${JSON.stringify(request.atMs)}`;
    if (request.resource !== undefined) body += `,"resource":${JSON.stringify(request.resource)}`;
    if (request.amount !== undefined) {
      body += `,"amount":${JSON.stringify(request.amount)}`;
      if (request.currency !== undefined) body += `,"currency":${JSON.stringify(request.currency)}`;
    }
    if (request.chargedMinor !== undefined) body += `,"charged_minor":${JSON.stringify(request.chargedMinor)}`;
    if (request.bound !== undefined) body += `,"bound":${JSON.stringify(request.bound)}`;
    return body + this.tail;
  }

  /** The event of a decision on a token or proof that did not verify. */
  unverified(request: UnverifiedEventRequest): string {
    return JSON.stringify({
      type: 'verification',
      actor: null,
      subject: request.service,
      grant_id: null,
      txn: null,
      data: {
        service: request.service,
        method: request.method,
        url: request.url,
        action: request.action,
        token: request.tokenHash.slice(0, 16),
        error_description: request.errorDescription,
        verifier: this.verifier,
      },
    });
  }
}
