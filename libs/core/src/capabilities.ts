import { z } from 'zod';
import { InsufficientScope, InvalidAuthorizationDetails } from './errors.js';
import { textProblem } from './text.js';

/*
 * Capabilities are RFC 9396 `authorization_details` objects. RFC 9396 leaves the meaning of
 * `locations`, `actions` and `identifier` to each `type` (§2, §2.2); this file fixes Writ's meaning
 * once, so the registry (subset checks at issuance and at every hop), the verifier (request
 * matching) and the approval UI (plain-language rendering) cannot disagree:
 *
 * - a location is an http(s) service URI and covers itself and every path under it;
 * - an identifier is a `/`-separated resource name, exact or ending in `/*`;
 * - a limit is a named maximum: narrower means the same limit at the same value or lower.
 */

// ---------------------------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------------------------

/** A service URI split into what coverage compares: origin, and path without a trailing slash. */
interface ServiceUri {
  /** `scheme://host[:port]`, lowercase, default port dropped (WHATWG URL serialisation). */
  readonly origin: string;
  /** Path with normalised percent-escapes and no trailing slash; the root is `/`. */
  readonly path: string;
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * RFC 3986 §6.2.2.1-2: percent-escapes compare case-insensitively and escapes of unreserved
 * characters are the characters themselves. The WHATWG parser has already removed dot segments,
 * including escaped ones (`%2e%2e`), so decoding here cannot create a new `..`.
 */
function normalisePath(pathname: string): string {
  const unescaped = pathname.replace(/%([0-9A-Fa-f]{2})/g, (_escape, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
  // A trailing slash names the same service location (`/api/` = `/api`).
  const trimmed = unescaped.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

// The verifier matches the same few locations and request URLs on every request; a parsed URL
// costs far more than a map look-up. Bounded, and emptied when full: arbitrary URLs cannot grow it.
const PARSED_MAX = 1024;
const parsedUris = new Map<string, ServiceUri | undefined>();

/** Parses an http(s) URI into its comparable parts, or `undefined`; query and fragment are dropped. */
function parseServiceUri(uri: string): ServiceUri | undefined {
  if (parsedUris.has(uri)) return parsedUris.get(uri);
  const parsed = parseServiceUriUncached(uri);
  if (parsedUris.size >= PARSED_MAX) parsedUris.clear();
  // Frozen: every caller shares the cached value.
  parsedUris.set(uri, parsed === undefined ? undefined : Object.freeze(parsed));
  return parsed;
}

function parseServiceUriUncached(uri: string): ServiceUri | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  // `URL.host` is already lowercase, punycode, without the scheme's default port.
  return { origin: `${url.protocol}//${url.host}`, path: normalisePath(url.pathname) };
}

/** Why `location` is not an acceptable capability location, or `undefined` when it is. */
function locationProblem(location: string): string | undefined {
  // Checked on the raw text because the URL parser silently repairs these, and the human must
  // approve exactly what the machine will enforce.
  if (!/^https?:\/\//i.test(location)) return 'location is an http or https URI';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f\\]/.test(location)) return 'location has no spaces, control characters or backslashes';
  // The person reads the location as the agent wrote it: no bidi override, zero-width or other
  // invisible character may make it look like another place (ADR 0019).
  const text = textProblem(location, 'agent');
  if (text !== undefined) return `location ${text.message}`;
  // RFC 9396 §2.2: a location names where the token is used; a query or fragment does not name a
  // service, and partial matching on them would be ambiguous.
  if (/[?#]/.test(location)) return 'location has no query or fragment';
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return 'location is not a valid URI';
  }
  // `https://a.example@evil.example` must not be approved as "a.example".
  if (url.username !== '' || url.password !== '') return 'location has no user information';
  return undefined;
}

/**
 * Normalises a service URI for comparison: lowercase scheme and host, default port dropped,
 * empty path as `/`, no trailing slash, percent-escapes normalised (RFC 3986 §6.2.2), query
 * and fragment dropped. Returns `undefined` for anything that is not an http(s) URI.
 *
 * @example
 * ```ts
 * normaliseLocation('HTTPS://Flights.Example:443/api/'); // 'https://flights.example/api'
 * normaliseLocation('https://flights.example');         // 'https://flights.example/'
 * normaliseLocation('ftp://flights.example');           // undefined
 * ```
 */
export function normaliseLocation(uri: string): string | undefined {
  const parsed = parseServiceUri(uri);
  return parsed && `${parsed.origin}${parsed.path}`;
}

function serviceUriCovers(parent: ServiceUri, child: ServiceUri): boolean {
  if (parent.origin !== child.origin) return false;
  if (parent.path === '/' || parent.path === child.path) return true;
  // Only at a segment boundary: `/api` covers `/api/v2`, never `/apiv2`.
  return child.path.startsWith(`${parent.path}/`);
}

/**
 * Whether the `parent` location covers the `child` location (or request URL): same origin after
 * normalisation, and the child's path equal to the parent's or under it at a `/` boundary.
 * Anything that does not parse as an http(s) URI is covered by nothing and covers nothing.
 *
 * @example
 * ```ts
 * locationCovers('https://a.example/api', 'https://A.example:443/api/v2'); // true
 * locationCovers('https://a.example/api', 'https://a.example/apiv2');      // false
 * locationCovers('https://a.example', 'https://a.example.evil.com');       // false
 * ```
 */
export function locationCovers(parent: string, child: string): boolean {
  const p = parseServiceUri(parent);
  const c = parseServiceUri(child);
  return p !== undefined && c !== undefined && serviceUriCovers(p, c);
}

// ---------------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Path steps however they are spelled
// ---------------------------------------------------------------------------------------------

/**
 * RFC 3986 §2.1: a percent-encoded `.`, `/` or `\`, also when its `%` is itself encoded once or
 * more (`%252e`): a server that decodes once, or twice, or reads `\` as `/` (as Windows servers
 * do) turns it into a path step that Writ, comparing the text as written, never saw.
 */
const ENCODED_PATH_STEP = /%(?:25)*(?:2e|2f|5c)/i;

/**
 * Why `text` (a capability identifier, a request's resource, a location) could name another place
 * to a server than to Writ, or `undefined` when it cannot: a percent-encoded dot, slash or
 * backslash (at any depth of `%25`), a backslash, or a `.` or `..` segment (RFC 3986 §3.3).
 * Writ refuses these rather than normalising them (ADR 0002): how many times a server decodes,
 * and whether it reads `\` as `/`, is its own, so no one normal form is the one it serves, and
 * the person must approve exactly the text the verifier enforces.
 *
 * @example
 * ```ts
 * pathStepProblem('bookings/42');              // undefined
 * pathStepProblem('bookings/%2e%2e/admin');    // 'has a percent-encoded dot, slash or backslash'
 * pathStepProblem('bookings/x\\..\\admin');     // 'has a backslash'
 * pathStepProblem('bookings/../admin');        // 'has a . or .. segment'
 * ```
 */
export function pathStepProblem(text: string): string | undefined {
  if (ENCODED_PATH_STEP.test(text)) return 'has a percent-encoded dot, slash or backslash';
  if (text.includes('\\')) return 'has a backslash';
  if (text.split('/').some((segment) => segment === '.' || segment === '..')) return 'has a . or .. segment';
  return undefined;
}

/**
 * Whether a request URL's path would hold a `.` or `..` segment once a server decoded its
 * escapes of `.`, `/` and `\` (at any depth of `%25`) and read `\` as `/`. The URL parser has
 * already resolved the dot segments it sees; `/api/bookings/x%2F..%2F..%2Fadmin` is still one
 * segment to it, and `/api/admin` to a server that decodes `%2F` first. Other escaped slashes
 * (`projects/group%2Fproject`, as some APIs name things) stay allowed.
 */
function hasHiddenDotSegment(url: string): boolean {
  const path = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(url)?.[1] ?? '';
  const decoded = path.replace(/%(?:25)*(2e|2f|5c)/gi, (_escape, hex: string) => (hex.toLowerCase() === '2e' ? '.' : '/')).replaceAll('\\', '/');
  return decoded.split('/').some((segment) => segment === '.' || segment === '..');
}

/** RFC 3986 `pchar` without `*` (kept for the trailing wildcard) and without `/`. */
const IDENTIFIER_SEGMENT = /^(?:[A-Za-z0-9\-._~!$&'()+,;=:@]|%[0-9A-Fa-f]{2})+$/;

/**
 * Whether `identifier` is a resource name Writ can reason about: non-empty `/`-separated
 * segments of URI path characters, no `.` or `..` segment and no percent-encoded dot, slash or
 * backslash (so neither `bookings/../admin` nor `bookings/%2e%2e%2fadmin` can pass for something
 * under `bookings/*`: {@link pathStepProblem}), and `*` only as a whole last segment after at
 * least one other.
 */
function isWellFormedIdentifier(identifier: string): boolean {
  if (pathStepProblem(identifier) !== undefined) return false;
  const segments = identifier.split('/');
  return segments.every((segment, i) => {
    if (segment === '*') return i > 0 && i === segments.length - 1;
    return segment !== '.' && segment !== '..' && IDENTIFIER_SEGMENT.test(segment);
  });
}

/**
 * Whether a parent `identifier` covers a child one. An absent parent identifier covers every
 * resource; `x/*` covers any well-formed name under `x/` (`x/1`, `x/*`, `x/y/*`) but not `x`
 * itself; any other identifier covers only itself. An absent child identifier means "every
 * resource", so a parent that names a resource does not cover it. A child that could name
 * another place to a server ({@link pathStepProblem}) is covered by nothing, not even by
 * itself, except by an absent parent identifier (every resource).
 *
 * @example
 * ```ts
 * identifierCovers(undefined, 'bookings/42');     // true
 * identifierCovers('bookings/*', 'bookings/42');  // true
 * identifierCovers('bookings/42', 'bookings/*');  // false
 * identifierCovers('bookings/*', undefined);      // false
 * ```
 */
export function identifierCovers(parent: string | undefined, child: string | undefined): boolean {
  if (parent === undefined) return true;
  if (child === undefined) return false;
  if (pathStepProblem(child) !== undefined) return false;
  if (parent === child) return true;
  if (!parent.endsWith('/*')) return false;
  const prefix = parent.slice(0, -1);
  return child.length > prefix.length && child.startsWith(prefix) && isWellFormedIdentifier(child);
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

const LocationSchema = z
  .string()
  .max(2048)
  .superRefine((location, ctx) => {
    const problem = locationProblem(location);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

/**
 * One capability: an RFC 9396 `authorization_details` object.
 *
 * - `type`: the capability type the service declares (for example `flight_booking`);
 * - `locations`: the service URIs (RFC 9396 §2.2) where it may be used: http or https, no query,
 *   fragment or user information, no two naming the same place;
 * - `actions`: what may be done (`read`, `write`, `transact`, ...), each once;
 * - `identifier`: the resource, exact (`bookings/42`) or a prefix ending in `/*` (`bookings/*`);
 *   absent means every resource at those locations;
 * - `limits`: named numeric maxima (for example `{ max_items: 2 }`); a narrower capability keeps
 *   every limit of its parent, at the same value or lower.
 *
 * Unknown fields are rejected: RFC 9396 §2 lets a type define more fields, and Writ defines none,
 * so an unknown field is a field nobody would enforce.
 *
 * @example
 * ```ts
 * AuthorizationDetailSchema.parse({
 *   type: 'flight_booking',
 *   locations: ['https://flights.example'],
 *   actions: ['read', 'write'],
 *   identifier: 'bookings/*',
 *   limits: { max_passengers: 2 },
 * });
 * ```
 */
export const AuthorizationDetailSchema = z.strictObject({
  type: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9_.:-]+$/, 'type is a token of letters, digits and _ . : -'),
  locations: z
    .array(LocationSchema)
    .min(1)
    .max(16)
    .refine(
      (locations) => new Set(locations.map((l) => normaliseLocation(l) ?? l)).size === locations.length,
      'locations name each place once',
    ),
  actions: z
    .array(
      z
        .string()
        .min(1)
        .max(64)
        .regex(/^[a-z][a-z0-9_.-]*$/, 'action is a lowercase token'),
    )
    .min(1)
    .max(32)
    .refine((actions) => new Set(actions).size === actions.length, 'actions are listed once each'),
  identifier: z
    .string()
    .min(1)
    .max(512)
    .refine(isWellFormedIdentifier, 'identifier is /-separated URI path segments, with * only as a last segment')
    .optional(),
  limits: z
    .record(
      // A lowercase start also keeps `__proto__` out of the record.
      z
        .string()
        .max(64)
        .regex(/^[a-z][a-z0-9_]*$/, 'limit name is a lowercase token'),
      z.number().finite().nonnegative(),
    )
    .refine((limits) => Object.keys(limits).length <= 16, 'at most 16 limits')
    .optional(),
});

/**
 * A capability (RFC 9396 authorization details object), as {@link AuthorizationDetailSchema} outputs it.
 *
 * @example
 * ```ts
 * const capability: AuthorizationDetail = { type: 'payment', locations: ['https://pay.example'], actions: ['transact'] };
 * ```
 */
export type AuthorizationDetail = z.infer<typeof AuthorizationDetailSchema>;

/**
 * An `authorization_details` array: one or more capabilities.
 *
 * @example
 * ```ts
 * AuthorizationDetailsSchema.parse([{ type: 'payment', locations: ['https://pay.example'], actions: ['transact'] }]);
 * ```
 */
export const AuthorizationDetailsSchema = z.array(AuthorizationDetailSchema).min(1).max(32);

/**
 * An `authorization_details` array, as {@link AuthorizationDetailsSchema} outputs it.
 *
 * @example
 * ```ts
 * const details: AuthorizationDetails = AuthorizationDetailsSchema.parse(body.authorization_details);
 * ```
 */
export type AuthorizationDetails = z.infer<typeof AuthorizationDetailsSchema>;

// ---------------------------------------------------------------------------------------------
// Subset (narrowing)
// ---------------------------------------------------------------------------------------------

/** Limits as `[name, max]` pairs sorted by name, so messages and descriptions are stable. */
function sortedLimits(limits: Readonly<Record<string, number>> | undefined): [string, number][] {
  return Object.entries(limits ?? {}).sort(([a], [b]) => byCodeUnit(a, b));
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Every way `child` is wider than `parent`, in a fixed order (type, locations, actions,
 * identifier, limits); empty when `parent` covers `child`.
 */
function wideningsOf(parent: AuthorizationDetail, child: AuthorizationDetail): string[] {
  if (parent.type !== child.type) return [`type '${child.type}' is not '${parent.type}'`];
  const widenings: string[] = [];
  const parentLocations = parent.locations.map(parseServiceUri);
  for (const location of child.locations) {
    const c = parseServiceUri(location);
    const covered = c !== undefined && parentLocations.some((p) => p !== undefined && serviceUriCovers(p, c));
    if (!covered) widenings.push(`location ${location} is not covered`);
  }
  for (const action of child.actions) {
    if (!parent.actions.includes(action)) widenings.push(`action '${action}' is not in the parent`);
  }
  if (!identifierCovers(parent.identifier, child.identifier)) {
    const shown = child.identifier === undefined ? '(every resource)' : `'${child.identifier}'`;
    // "wider" only when it is: `bookings/*` over `bookings/42`; `hotels/1` is merely elsewhere.
    const relation = identifierCovers(child.identifier, parent.identifier) ? 'is wider than' : 'is not within';
    widenings.push(`identifier ${shown} ${relation} '${parent.identifier ?? ''}'`);
  }
  for (const [name, max] of sortedLimits(parent.limits)) {
    // Own properties only: a limit called `constructor` must not be found on Object.prototype.
    const value = child.limits !== undefined && Object.hasOwn(child.limits, name) ? child.limits[name] : undefined;
    if (value === undefined) widenings.push(`limit ${name} is dropped`);
    // Written as "not <=" so that NaN, which no schema should let through, fails closed.
    else if (!(value <= max)) widenings.push(`limit ${name} ${value} exceeds ${max}`);
  }
  return widenings;
}

/**
 * Whether `parent` covers `child`: same `type`; every child location at or under some parent
 * location; child actions a subset of the parent's; child identifier covered
 * ({@link identifierCovers}); every parent limit kept by the child at the same value or lower
 * (the child may add limits). RFC 9396 §3 leaves the comparison to the authorization server;
 * this is Writ's.
 *
 * @example
 * ```ts
 * const parent = { type: 'flight_booking', locations: ['https://flights.example'], actions: ['read', 'write'],
 *                  identifier: 'bookings/*', limits: { max_passengers: 2 } };
 * capabilityCovers(parent, { ...parent, actions: ['read'], identifier: 'bookings/42', limits: { max_passengers: 1 } }); // true
 * capabilityCovers(parent, { ...parent, actions: ['delete'] }); // false
 * ```
 */
export function capabilityCovers(parent: AuthorizationDetail, child: AuthorizationDetail): boolean {
  return wideningsOf(parent, child).length === 0;
}

/**
 * Why `child` is not a subset of `parent`, or `null` when it is: every child capability must be
 * covered by one single parent capability ({@link capabilityCovers}); a child capability that
 * only the union of several parent capabilities would cover is refused, because each parent
 * capability is what a human approved as one unit. The reason names the child capability's
 * index and type and the first widened dimension against the closest parent capability of the
 * same type (the one with the fewest widenings).
 *
 * @example
 * ```ts
 * const parent = [{ type: 'flight_booking', locations: ['https://flights.example'], actions: ['read'] }];
 * detailsSubsetViolation([{ ...parent[0], actions: ['read'] }], parent); // null
 * detailsSubsetViolation([{ ...parent[0], actions: ['delete'] }], parent);
 * // "capability 0 (flight_booking): action 'delete' is not in the parent"
 * ```
 */
export function detailsSubsetViolation(child: AuthorizationDetails, parent: AuthorizationDetails): string | null {
  for (const [index, capability] of child.entries()) {
    const prefix = `capability ${index} (${capability.type})`;
    const candidates = parent.filter((p) => p.type === capability.type);
    if (candidates.length === 0) return `${prefix}: type '${capability.type}' is not in the parent`;
    const widenings = candidates.map((candidate) => wideningsOf(candidate, capability));
    // Fewest widenings first (the sort is stable, so ties keep parent order); an empty list
    // sorts first and means some parent capability covers this one.
    const reason = widenings.sort((a, b) => a.length - b.length)[0]?.[0];
    if (reason !== undefined) return `${prefix}: ${reason}`;
  }
  return null;
}

/**
 * Whether every capability of `child` is covered by some single capability of `parent`.
 *
 * @example
 * ```ts
 * const parent = [{ type: 'payment', locations: ['https://pay.example'], actions: ['transact'], limits: { max_amount: 200 } }];
 * isDetailsSubset([{ ...parent[0], limits: { max_amount: 50 } }], parent);  // true
 * isDetailsSubset([{ ...parent[0], limits: { max_amount: 500 } }], parent); // false
 * ```
 */
export function isDetailsSubset(child: AuthorizationDetails, parent: AuthorizationDetails): boolean {
  return detailsSubsetViolation(child, parent) === null;
}

/**
 * Throws {@link InvalidAuthorizationDetails} (RFC 9396 §5: `invalid_authorization_details`)
 * unless `child` is a subset of `parent`; the description says which capability widens what.
 * Used when a grant is turned into a token and at every delegation hop.
 *
 * @example
 * ```ts
 * try {
 *   assertDetailsSubset(requested, grant.authorization_details);
 * } catch (e) {
 *   // e.code === 'invalid_authorization_details'
 *   // e.description === "capability 0 (flight_booking): limit max_passengers 3 exceeds 2"
 * }
 * ```
 */
export function assertDetailsSubset(child: AuthorizationDetails, parent: AuthorizationDetails): void {
  const violation = detailsSubsetViolation(child, parent);
  if (violation !== null) throw new InvalidAuthorizationDetails(violation);
}

// ---------------------------------------------------------------------------------------------
// Request matching (the verifier)
// ---------------------------------------------------------------------------------------------

/**
 * What a service provider asks the verifier about: one action, at one URL, maybe on one resource.
 *
 * @example
 * ```ts
 * const request: CapabilityRequest = { url: 'https://flights.example/api/bookings/42', action: 'write', resource: 'bookings/42' };
 * ```
 */
export interface CapabilityRequest {
  /** The absolute request URL; query and fragment are ignored. */
  readonly url: string;
  /** The action the request performs, for example `write`. */
  readonly action: string;
  /** The resource the request acts on, for example `bookings/42`. */
  readonly resource?: string | undefined;
}

/**
 * The first capability in `details` that allows `request`, or `undefined`. A capability allows
 * a request when the request URL (normalised, query and fragment ignored) is at or under one of
 * its locations, the action is one of its actions, and, when the capability names an identifier,
 * the request names a resource that identifier covers. A URL that is not absolute http(s) matches
 * nothing. Limits are not checked here: they travel with the returned capability.
 *
 * Fails closed on names a server could read as another place (ADR 0002): a resource with a
 * percent-encoded dot, slash or backslash, a backslash or a dot segment ({@link pathStepProblem}),
 * or a URL whose path holds a dot segment once such escapes are decoded, matches nothing,
 * whatever the capabilities say.
 *
 * @example
 * ```ts
 * const details = [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'],
 *                    identifier: 'bookings/*' }];
 * findCoveringCapability(details, { url: 'https://flights.example/api/bookings/42?x=1', action: 'read', resource: 'bookings/42' }); // details[0]
 * findCoveringCapability(details, { url: 'https://flights.example/api/bookings/42', action: 'read' }); // undefined
 * ```
 */
export function findCoveringCapability(
  details: AuthorizationDetails,
  request: CapabilityRequest,
): AuthorizationDetail | undefined {
  if (request.resource !== undefined && pathStepProblem(request.resource) !== undefined) return undefined;
  if (hasHiddenDotSegment(request.url)) return undefined;
  const target = parseServiceUri(request.url);
  if (target === undefined) return undefined;
  return details.find(
    (capability) =>
      capability.actions.includes(request.action) &&
      (capability.identifier === undefined ||
        (request.resource !== undefined && identifierCovers(capability.identifier, request.resource))) &&
      capability.locations.some((location) => {
        const parsed = parseServiceUri(location);
        return parsed !== undefined && serviceUriCovers(parsed, target);
      }),
  );
}

/**
 * Like {@link findCoveringCapability}, but throws {@link InsufficientScope} (RFC 6750 §3.1) when no
 * capability allows the request. The description names the action, the normalised URL without
 * its query (which may carry secrets) and the resource.
 *
 * @example
 * ```ts
 * const capability = requireCoveringCapability(token.tctx.authorization_details, {
 *   url: 'https://flights.example/api/bookings', action: 'write', resource: 'bookings/42',
 * });
 * ```
 */
export function requireCoveringCapability(
  details: AuthorizationDetails,
  request: CapabilityRequest,
): AuthorizationDetail {
  const capability = findCoveringCapability(details, request);
  if (capability !== undefined) return capability;
  const where = normaliseLocation(request.url) ?? 'a URL that is not http(s)';
  const what = request.resource === undefined ? '' : ` on resource '${request.resource}'`;
  throw new InsufficientScope(`no capability allows '${request.action}' at ${where}${what}`);
}

/**
 * The token's `scope` claim: every `type:action` pair, de-duplicated, sorted (by code unit, so
 * the result does not depend on locale), separated by single spaces (RFC 6749 §3.3).
 *
 * @example
 * ```ts
 * scopeOf([{ type: 'flight_booking', locations: ['https://flights.example'], actions: ['write', 'read'] }]);
 * // 'flight_booking:read flight_booking:write'
 * ```
 */
export function scopeOf(details: AuthorizationDetails): string {
  const tokens = new Set(details.flatMap((capability) => capability.actions.map((a) => `${capability.type}:${a}`)));
  return [...tokens].sort().join(' ');
}

// ---------------------------------------------------------------------------------------------
// Plain language (the approval screen)
// ---------------------------------------------------------------------------------------------

/** Verbs for the actions people meet most, in the order they are listed; others are shown as-is. */
const ACTION_VERBS: ReadonlyMap<string, readonly string[]> = new Map([
  ['read', ['read']],
  ['write', ['create', 'change']],
  ['transact', ['make payments']],
  ['delete', ['delete']],
]);
const KNOWN_ACTIONS = [...ACTION_VERBS.keys()];

/** "a", "a and b", "a, b and c". */
function joinList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items.at(-1) ?? ''}`;
}

function describeLocation(location: string): string {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return location;
  }
  const path = normalisePath(url.pathname);
  const place = path === '/' ? url.host : `${url.host}${path}`;
  // The scheme is hidden to keep the sentence short, except when it means no encryption.
  return url.protocol === 'http:' ? `${place} (unencrypted http)` : place;
}

/**
 * One capability in plain words, for the approval screen: verbs, type, where, which resource,
 * and limits. The same capability always reads the same (actions in a fixed order, locations
 * and limits sorted), whatever order its arrays were written in.
 *
 * @example
 * ```ts
 * describeCapability({ type: 'flight_booking', locations: ['https://flights.example'], actions: ['write', 'read'],
 *                      identifier: 'bookings/*', limits: { max_passengers: 2 } });
 * // 'Read, create and change flight_booking on flights.example, resource bookings/* — max_passengers at most 2'
 * ```
 */
export function describeCapability(capability: AuthorizationDetail): string {
  const known = KNOWN_ACTIONS.filter((a) => capability.actions.includes(a));
  const others = capability.actions.filter((a) => !ACTION_VERBS.has(a)).sort(byCodeUnit);
  const verbs = [...new Set([...known.flatMap((a) => ACTION_VERBS.get(a) ?? []), ...others])];
  const sentence = joinList(verbs);
  const places = joinList([...new Set(capability.locations.map(describeLocation))].sort(byCodeUnit));
  const resource = capability.identifier === undefined ? 'all resources' : `resource ${capability.identifier}`;
  const limits = sortedLimits(capability.limits).map(([name, max]) => `${name} at most ${max}`);
  const tail = limits.length === 0 ? '' : ` — ${limits.join(', ')}`;
  return `${sentence.charAt(0).toUpperCase()}${sentence.slice(1)} ${capability.type} on ${places}, ${resource}${tail}`;
}

/**
 * Every capability in plain words, one line each, in the order they were requested.
 *
 * @example
 * ```ts
 * describeCapabilities([{ type: 'payment', locations: ['https://pay.example/eur'], actions: ['transact'] }]);
 * // ['Make payments payment on pay.example/eur, all resources']
 * ```
 */
export function describeCapabilities(details: AuthorizationDetails): string[] {
  return details.map(describeCapability);
}
