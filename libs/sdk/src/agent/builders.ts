import {
  type AuthorizationDetail,
  AuthorizationDetailSchema,
  AuthorizationDetailsSchema,
  type AuthorizationDetails,
  type Envelope,
  EnvelopeSchema,
  InvalidAuthorizationDetails,
  InvalidRequest,
  type TimeWindow,
} from '@writ/core';
import type { z } from 'zod';

/**
 * Typed builders for what an agent asks for: capabilities (RFC 9396 `authorization_details`) and
 * the behavioural envelope. Builders are immutable (every method returns a new builder), so one
 * can serve as a template and be narrowed for a delegation. Plain objects of the libs/core types
 * are accepted everywhere a builder is; both are checked with the libs/core schemas before
 * anything is sent, and refused with the error the registry would answer.
 */

/** The first issue of a failed parse, as `path: message`. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'is invalid';
  const path = issue.path.map(String).join('.');
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}

/**
 * A capability being built. Call {@link capability} to start one.
 *
 * @example
 * ```ts
 * const book = capability('flight_booking').at('https://flights.example/api').actions('read', 'book').identifier('bookings/*');
 * const readOnly = book.actions('read'); // a narrower copy; `book` is unchanged
 * ```
 */
export class CapabilityBuilder {
  /** @internal */
  constructor(private readonly detail: Readonly<Partial<AuthorizationDetail> & { type: string }>) {}

  /** Adds service locations (http(s) URIs) where the capability may be used (RFC 9396 §2.2). */
  at(...locations: string[]): CapabilityBuilder {
    return new CapabilityBuilder({ ...this.detail, locations: [...(this.detail.locations ?? []), ...locations] });
  }

  /** Sets the actions (lowercase tokens such as `read`, `book`), replacing any set before. */
  actions(...actions: string[]): CapabilityBuilder {
    return new CapabilityBuilder({ ...this.detail, actions });
  }

  /** Sets the resource: exact (`bookings/42`) or a prefix ending in `/*` (`bookings/*`). */
  identifier(identifier: string): CapabilityBuilder {
    return new CapabilityBuilder({ ...this.detail, identifier });
  }

  /** Sets one named numeric maximum (for example `max_passengers`, 2). */
  limit(name: string, max: number): CapabilityBuilder {
    return new CapabilityBuilder({ ...this.detail, limits: { ...this.detail.limits, [name]: max } });
  }

  /**
   * The capability, checked with libs/core's `AuthorizationDetailSchema`.
   * Throws `InvalidAuthorizationDetails` naming the first problem.
   */
  build(): AuthorizationDetail {
    const parsed = AuthorizationDetailSchema.safeParse(this.detail);
    if (!parsed.success) throw new InvalidAuthorizationDetails(`capability (${this.detail.type}): ${firstIssue(parsed.error)}`);
    return parsed.data;
  }

  /** The built capability, so `JSON.stringify` gives the wire form. */
  toJSON(): AuthorizationDetail {
    return this.build();
  }
}

/**
 * Starts a capability of a type the service declares in its catalogue.
 *
 * @example
 * ```ts
 * import { capability } from '@writ/sdk/agent';
 *
 * const flights = capability('flight_booking')
 *   .at('https://flights.example/api')
 *   .actions('read', 'book')
 *   .limit('max_passengers', 2);
 * ```
 */
export function capability(type: string): CapabilityBuilder {
  return new CapabilityBuilder({ type });
}

/**
 * An envelope being built. Call {@link envelope} to start one.
 *
 * @example
 * ```ts
 * const limits = envelope().rate(60, 60).maxUses(100);
 * ```
 */
export class EnvelopeBuilder {
  /** @internal */
  constructor(private readonly value: Readonly<Envelope>) {}

  /** At most `limit` requests in any `windowSeconds` (shared by every token of the grant). */
  rate(limit: number, windowSeconds: number): EnvelopeBuilder {
    return new EnvelopeBuilder({ ...this.value, rate: { limit, window_s: windowSeconds } });
  }

  /** Adds a weekly time window (local wall clock of `tz`); requests outside every window are refused. */
  during(window: TimeWindow): EnvelopeBuilder {
    return new EnvelopeBuilder({ ...this.value, time_windows: [...(this.value.time_windows ?? []), window] });
  }

  /**
   * Lets the grant move money in `currency` (ISO 4217): a cap per request, a total, and a
   * threshold above which each request needs the human's step-up approval.
   */
  amount(currency: string, limits: { per_request_max?: number; total_max?: number; approval_above?: number } = {}): EnvelopeBuilder {
    return new EnvelopeBuilder({ ...this.value, amount: { currency, ...limits } });
  }

  /** At most `uses` requests in the whole life of the grant. */
  maxUses(uses: number): EnvelopeBuilder {
    return new EnvelopeBuilder({ ...this.value, max_uses: uses });
  }

  /** The envelope, checked with libs/core's `EnvelopeSchema`. Throws `InvalidRequest` naming the first problem. */
  build(): Envelope {
    const parsed = EnvelopeSchema.safeParse(this.value);
    if (!parsed.success) throw new InvalidRequest(`envelope.${firstIssue(parsed.error)}`);
    return parsed.data;
  }

  /** The built envelope, so `JSON.stringify` gives the wire form. */
  toJSON(): Envelope {
    return this.build();
  }
}

/**
 * Starts an envelope; with no method called it constrains nothing (and moves no money).
 *
 * @example
 * ```ts
 * import { envelope } from '@writ/sdk/agent';
 *
 * const limits = envelope()
 *   .rate(60, 60)
 *   .during({ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '18:00', tz: 'Europe/Paris' })
 *   .amount('EUR', { per_request_max: 200, total_max: 500, approval_above: 150 })
 *   .maxUses(100);
 * ```
 */
export function envelope(): EnvelopeBuilder {
  return new EnvelopeBuilder({});
}

/**
 * A capability, as a builder or as a plain libs/core object.
 *
 * @example
 * ```ts
 * const input: CapabilityInput = { type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] };
 * ```
 */
export type CapabilityInput = CapabilityBuilder | AuthorizationDetail;

/**
 * An envelope, as a builder or as a plain libs/core object.
 *
 * @example
 * ```ts
 * const input: EnvelopeInput = { max_uses: 10 };
 * ```
 */
export type EnvelopeInput = EnvelopeBuilder | Envelope;

/** @internal Builds and checks capabilities (RFC 9396 §5: a bad one is invalid_authorization_details). */
export function toAuthorizationDetails(inputs: readonly CapabilityInput[]): AuthorizationDetails {
  const details = inputs.map((input) => (input instanceof CapabilityBuilder ? input.build() : input));
  const parsed = AuthorizationDetailsSchema.safeParse(details);
  if (!parsed.success) throw new InvalidAuthorizationDetails(`authorization_details.${firstIssue(parsed.error)}`);
  return parsed.data;
}

/** @internal Builds and checks an envelope. */
export function toEnvelope(input: EnvelopeInput): Envelope {
  if (input instanceof EnvelopeBuilder) return input.build();
  const parsed = EnvelopeSchema.safeParse(input);
  if (!parsed.success) throw new InvalidRequest(`envelope.${firstIssue(parsed.error)}`);
  return parsed.data;
}
