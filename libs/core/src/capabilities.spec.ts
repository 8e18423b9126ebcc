import { describe, expect, it } from 'vitest';
import {
  AuthorizationDetailSchema,
  AuthorizationDetailsSchema,
  assertDetailsSubset,
  capabilityCovers,
  describeCapabilities,
  describeCapability,
  detailsSubsetViolation,
  findCoveringCapability,
  identifierCovers,
  isDetailsSubset,
  locationCovers,
  normaliseLocation,
  requireCoveringCapability,
  scopeOf,
  type AuthorizationDetail,
  type AuthorizationDetails,
} from './capabilities.js';
import { InsufficientScope, InvalidAuthorizationDetails } from './errors.js';

const booking: AuthorizationDetail = {
  type: 'flight_booking',
  locations: ['https://flights.example/api'],
  actions: ['read', 'write'],
  identifier: 'bookings/*',
  limits: { max_passengers: 2 },
};

function cap(overrides: Partial<AuthorizationDetail>): AuthorizationDetail {
  return { ...booking, ...overrides };
}

describe('AuthorizationDetailSchema', () => {
  it('accepts the RFC 9396 shape Writ uses', () => {
    expect(AuthorizationDetailSchema.parse(booking)).toEqual(booking);
    expect(AuthorizationDetailSchema.parse({ type: 'payment', locations: ['http://pay.example:8080'], actions: ['transact'] })).toBeDefined();
  });

  it('keeps the location exactly as written, so the approved document is what was sent', () => {
    const parsed = AuthorizationDetailSchema.parse(cap({ locations: ['HTTPS://Flights.Example:443/api/'] }));
    expect(parsed.locations).toEqual(['HTTPS://Flights.Example:443/api/']);
  });

  it.each([
    ['an unknown field', { ...booking, datatypes: ['contacts'] }],
    ['empty actions', cap({ actions: [] })],
    ['duplicate actions', cap({ actions: ['read', 'read'] })],
    ['an uppercase action', cap({ actions: ['Read'] })],
    ['empty locations', cap({ locations: [] })],
    ['a non-http location', cap({ locations: ['ftp://flights.example'] })],
    ['a javascript: location', cap({ locations: ['javascript:alert(1)'] })],
    ['a relative location', cap({ locations: ['/api'] })],
    ['a scheme-relative location', cap({ locations: ['//flights.example'] })],
    ['a location the parser would repair (http:/host)', cap({ locations: ['http:/flights.example'] })],
    ['a location with a query', cap({ locations: ['https://flights.example/api?admin=1'] })],
    ['a location with an empty query', cap({ locations: ['https://flights.example/api?'] })],
    ['a location with a fragment', cap({ locations: ['https://flights.example/api#x'] })],
    ['a location with user information', cap({ locations: ['https://flights.example@evil.example/'] })],
    ['a location with a backslash', cap({ locations: ['https://flights.example\\api'] })],
    ['a location with a space', cap({ locations: ['https://flights.example/a pi'] })],
    ['a location with a newline', cap({ locations: ['https://flights.exa\nmple/'] })],
    ['a location with a bidi override', cap({ locations: ['https://flights.example/api/\u202eipa'] })],
    ['a location with a zero-width space', cap({ locations: ['https://flights.example/a\u200bpi'] })],
    ['a location ending in a no-break space', cap({ locations: ['https://flights.example/api\u00a0'] })],
    ['an unparseable location', cap({ locations: ['https://flights.example:99999/'] })],
    ['two locations naming the same place', cap({ locations: ['https://flights.example/api', 'https://FLIGHTS.example:443/api/'] })],
    ['a type with spaces', cap({ type: 'flight booking' })],
    ['a bare * identifier', cap({ identifier: '*' })],
    ['a * inside an identifier', cap({ identifier: 'bookings/*/seats' })],
    ['a glob-like identifier', cap({ identifier: 'bookings/4*' })],
    ['a .. segment in an identifier', cap({ identifier: 'bookings/../admin' })],
    ['an empty identifier segment', cap({ identifier: 'bookings//42' })],
    ['an identifier with a control character', cap({ identifier: 'bookings/\u202e42' })],
    ['a negative limit', cap({ limits: { max_passengers: -1 } })],
    ['an infinite limit', cap({ limits: { max_passengers: Number.POSITIVE_INFINITY } })],
    ['more than 16 limits', cap({ limits: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`l${i}`, 1])) })],
  ])('rejects %s', (_name, value) => {
    expect(AuthorizationDetailSchema.safeParse(value).success).toBe(false);
  });

  it('never lets a limit named __proto__ reach the prototype (zod drops the key)', () => {
    const parsed = AuthorizationDetailSchema.parse({ ...booking, limits: JSON.parse('{"__proto__": {"x": 1}, "max_passengers": 2}') });
    expect(parsed.limits).toEqual({ max_passengers: 2 });
    expect(Object.getPrototypeOf(parsed.limits)).toBe(Object.prototype);
  });

  it('rejects an empty authorization_details array', () => {
    expect(AuthorizationDetailsSchema.safeParse([]).success).toBe(false);
    expect(AuthorizationDetailsSchema.safeParse([booking]).success).toBe(true);
  });
});

describe('normaliseLocation', () => {
  it('lowercases scheme and host, drops the default port, trims the trailing slash', () => {
    expect(normaliseLocation('HTTPS://Flights.Example:443/api/')).toBe('https://flights.example/api');
    expect(normaliseLocation('http://flights.example:80')).toBe('http://flights.example/');
  });

  it('keeps a non-default port and the case of the path', () => {
    expect(normaliseLocation('https://flights.example:8443/API')).toBe('https://flights.example:8443/API');
  });

  it('normalises percent-escapes as RFC 3986 §6.2.2 says', () => {
    expect(normaliseLocation('https://flights.example/%61pi/%2f')).toBe('https://flights.example/api/%2F');
  });

  it('drops query and fragment of a request URL', () => {
    expect(normaliseLocation('https://flights.example/api?x=1#y')).toBe('https://flights.example/api');
  });

  it('returns undefined for anything that is not http(s)', () => {
    expect(normaliseLocation('mailto:a@flights.example')).toBeUndefined();
    expect(normaliseLocation('not a url')).toBeUndefined();
  });
});

describe('locationCovers', () => {
  const parent = 'https://a.example/api';

  it.each([
    ['the same location', 'https://a.example/api'],
    ['a path under it', 'https://a.example/api/v2'],
    ['a deeper path under it', 'https://a.example/api/v2/bookings'],
    ['a trailing slash', 'https://a.example/api/'],
    ['a different case in scheme and host', 'HTTPS://A.EXAMPLE/api'],
    ['the explicit default port', 'https://a.example:443/api'],
    ['an escaped unreserved character', 'https://a.example/%61pi'],
  ])('covers %s', (_name, child) => {
    expect(locationCovers(parent, child)).toBe(true);
  });

  it.each([
    ['another host', 'https://b.example/api'],
    ['a host-prefix trick', 'https://a.example.evil.com/api'],
    ['a subdomain', 'https://sub.a.example/api'],
    ['a path-prefix trick', 'https://a.example/apiv2'],
    ['a parent path', 'https://a.example/'],
    ['a sibling path', 'https://a.example/admin'],
    ['a dot-segment escape', 'https://a.example/api/../admin'],
    ['an escaped dot-segment escape', 'https://a.example/api/%2e%2e/admin'],
    ['another port', 'https://a.example:8443/api'],
    ['http instead of https', 'http://a.example/api'],
    ['a different case in the path', 'https://a.example/API'],
    ['an encoded slash', 'https://a.example/api%2Fv2'],
    ['a non-http URI', 'ftp://a.example/api'],
    ['an unparseable URI', 'https://'],
  ])('does not cover %s', (_name, child) => {
    expect(locationCovers(parent, child)).toBe(false);
  });

  it('lets a root location cover every path at its origin and nothing else', () => {
    expect(locationCovers('https://a.example', 'https://a.example/anything/at/all')).toBe(true);
    expect(locationCovers('https://a.example/', 'https://a.example')).toBe(true);
    expect(locationCovers('https://a.example', 'https://a.example.evil.com')).toBe(false);
  });

  it('does not let https be covered by http, nor http by https', () => {
    expect(locationCovers('http://a.example', 'https://a.example')).toBe(false);
    expect(locationCovers('https://a.example', 'http://a.example')).toBe(false);
  });

  it('lets an unparseable parent cover nothing', () => {
    expect(locationCovers('nonsense', 'https://a.example')).toBe(false);
  });
});

describe('identifierCovers', () => {
  it('lets an absent parent identifier cover every resource, and no resource at all', () => {
    expect(identifierCovers(undefined, 'bookings/42')).toBe(true);
    expect(identifierCovers(undefined, undefined)).toBe(true);
  });

  it('lets x/* cover names under x/, including deeper wildcards', () => {
    expect(identifierCovers('bookings/*', 'bookings/42')).toBe(true);
    expect(identifierCovers('bookings/*', 'bookings/42/seats')).toBe(true);
    expect(identifierCovers('bookings/*', 'bookings/*')).toBe(true);
    expect(identifierCovers('bookings/*', 'bookings/42/*')).toBe(true);
  });

  it.each([
    ['the collection itself', 'bookings'],
    ['the bare prefix', 'bookings/'],
    ['a name-prefix trick', 'bookingsx/1'],
    ['another collection', 'hotels/1'],
    ['a dot-segment escape', 'bookings/../admin'],
    ['a single-dot segment', 'bookings/./42'],
    ['an empty segment', 'bookings//42'],
    ['a glob inside a segment', 'bookings/4*'],
    ['an encoded dot-segment escape', 'bookings/%2e%2e/admin'],
    ['encoded slashes around a dot segment', 'bookings/x%2F..%2F..%2Fadmin'],
    ['an encoded ../ in one segment', 'bookings/%2E%2E%2Fadmin'],
    ['a doubly encoded dot segment', 'bookings/%252e%252e/admin'],
    ['an encoded backslash', 'bookings/x%5c..%5cadmin'],
  ])('does not let x/* cover %s', (_name, child) => {
    expect(identifierCovers('bookings/*', child)).toBe(false);
  });

  it('lets an exact identifier cover only itself', () => {
    expect(identifierCovers('bookings/42', 'bookings/42')).toBe(true);
    expect(identifierCovers('bookings/42', 'bookings/42/seats')).toBe(false);
    expect(identifierCovers('bookings/42', 'bookings/*')).toBe(false);
    expect(identifierCovers('bookings/42', 'Bookings/42')).toBe(false);
  });

  it('does not let a parent that names a resource cover a child that names none', () => {
    expect(identifierCovers('bookings/*', undefined)).toBe(false);
    expect(identifierCovers('bookings/42', undefined)).toBe(false);
  });
});

describe('capabilityCovers', () => {
  it('covers itself', () => {
    expect(capabilityCovers(booking, booking)).toBe(true);
  });

  it('covers a narrower capability in every dimension at once', () => {
    const child = cap({
      locations: ['HTTPS://FLIGHTS.EXAMPLE:443/api/v2/'],
      actions: ['read'],
      identifier: 'bookings/42',
      limits: { max_passengers: 1, max_bags: 3 },
    });
    expect(capabilityCovers(booking, child)).toBe(true);
  });

  it('covers a child whose locations are split over several parent locations', () => {
    const parent = cap({ locations: ['https://a.example/api', 'https://b.example'] });
    expect(capabilityCovers(parent, cap({ locations: ['https://b.example/x', 'https://a.example/api/y'] }))).toBe(true);
  });

  it('does not cover another type', () => {
    expect(capabilityCovers(booking, cap({ type: 'hotel_booking' }))).toBe(false);
  });

  it('does not cover an added action', () => {
    expect(capabilityCovers(booking, cap({ actions: ['read', 'delete'] }))).toBe(false);
  });

  it('does not cover a location elsewhere', () => {
    expect(capabilityCovers(booking, cap({ locations: ['https://flights.example/api', 'https://flights.example/admin'] }))).toBe(false);
  });

  it('does not cover a raised limit, and covers an equal one', () => {
    expect(capabilityCovers(booking, cap({ limits: { max_passengers: 3 } }))).toBe(false);
    expect(capabilityCovers(booking, cap({ limits: { max_passengers: 2 } }))).toBe(true);
  });

  it('does not cover a dropped limit, whether the child has other limits or none', () => {
    expect(capabilityCovers(booking, cap({ limits: { max_bags: 1 } }))).toBe(false);
    expect(capabilityCovers(booking, cap({ limits: undefined }))).toBe(false);
  });

  it('does not find a limit called constructor on Object.prototype', () => {
    const parent = cap({ limits: { constructor: 1 } });
    expect(capabilityCovers(parent, cap({ limits: {} }))).toBe(false);
  });

  it('fails closed on a NaN limit that bypassed the schema', () => {
    expect(capabilityCovers(booking, cap({ limits: { max_passengers: Number.NaN } }))).toBe(false);
  });

  it('does not cover a child whose location does not parse', () => {
    expect(capabilityCovers(booking, cap({ locations: ['garbage'] }))).toBe(false);
  });
});

describe('detailsSubsetViolation', () => {
  const parent: AuthorizationDetails = [booking];

  it('returns null for a subset, and isDetailsSubset agrees', () => {
    const child = [cap({ actions: ['read'], identifier: 'bookings/42' })];
    expect(detailsSubsetViolation(child, parent)).toBeNull();
    expect(isDetailsSubset(child, parent)).toBe(true);
  });

  it.each<[string, AuthorizationDetail, string]>([
    ['an added action', cap({ actions: ['read', 'delete'] }), "action 'delete' is not in the parent"],
    ['another host', cap({ locations: ['https://evil.example'] }), 'location https://evil.example is not covered'],
    ['a host-prefix trick', cap({ locations: ['https://flights.example.evil.com/api'] }), 'location https://flights.example.evil.com/api is not covered'],
    ['a path-prefix trick', cap({ locations: ['https://flights.example/apiv2'] }), 'location https://flights.example/apiv2 is not covered'],
    ['a port change', cap({ locations: ['https://flights.example:8443/api'] }), 'location https://flights.example:8443/api is not covered'],
    ['a scheme change', cap({ locations: ['http://flights.example/api'] }), 'location http://flights.example/api is not covered'],
    ['a raised limit', cap({ limits: { max_passengers: 3 } }), 'limit max_passengers 3 exceeds 2'],
    ['a dropped limit', cap({ limits: {} }), 'limit max_passengers is dropped'],
    ['an identifier other than the parent\'s', cap({ identifier: 'hotels/1' }), "identifier 'hotels/1' is not within 'bookings/*'"],
    ['a missing identifier', cap({ identifier: undefined }), "identifier (every resource) is wider than 'bookings/*'"],
  ])('names the widened dimension for %s', (_name, child, reason) => {
    expect(detailsSubsetViolation([child], parent)).toBe(`capability 0 (flight_booking): ${reason}`);
    expect(isDetailsSubset([child], parent)).toBe(false);
  });

  it('says an identifier is wider when the child would cover the parent', () => {
    const exact = [cap({ identifier: 'bookings/42' })];
    expect(detailsSubsetViolation([cap({ identifier: 'bookings/*' })], exact)).toBe(
      "capability 0 (flight_booking): identifier 'bookings/*' is wider than 'bookings/42'",
    );
  });

  it('names a type the parent does not have', () => {
    expect(detailsSubsetViolation([cap({ type: 'payment' })], parent)).toBe(
      "capability 0 (payment): type 'payment' is not in the parent",
    );
  });

  it('names the index of the first child capability that widens', () => {
    const child = [cap({ actions: ['read'] }), cap({ actions: ['read'] }), cap({ limits: { max_passengers: 9 } })];
    expect(detailsSubsetViolation(child, parent)).toBe('capability 2 (flight_booking): limit max_passengers 9 exceeds 2');
  });

  it('requires one single parent capability to cover each child capability', () => {
    const split = [cap({ actions: ['read'] }), cap({ actions: ['write'] })];
    expect(detailsSubsetViolation([cap({ actions: ['read', 'write'] })], split)).toMatch(/^capability 0 \(flight_booking\): action '(read|write)' is not in the parent$/);
    expect(isDetailsSubset([cap({ actions: ['read'] }), cap({ actions: ['write'] })], split)).toBe(true);
  });

  it('explains against the closest parent capability of the same type', () => {
    const parents = [cap({ locations: ['https://other.example'], actions: ['read'] }), booking];
    expect(detailsSubsetViolation([cap({ actions: ['read', 'delete'] })], parents)).toBe(
      "capability 0 (flight_booking): action 'delete' is not in the parent",
    );
  });

  it('ignores parent capabilities of other types when looking for a cover', () => {
    const parents = [cap({ type: 'payment' }), booking];
    expect(detailsSubsetViolation([booking], parents)).toBeNull();
  });
});

describe('assertDetailsSubset', () => {
  it('passes a subset', () => {
    expect(() => assertDetailsSubset([cap({ actions: ['read'] })], [booking])).not.toThrow();
  });

  it('throws invalid_authorization_details with the reason', () => {
    let thrown: unknown;
    try {
      assertDetailsSubset([cap({ limits: { max_passengers: 3 } })], [booking]);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InvalidAuthorizationDetails);
    expect((thrown as InvalidAuthorizationDetails).toJSON()).toEqual({
      error: 'invalid_authorization_details',
      error_description: 'capability 0 (flight_booking): limit max_passengers 3 exceeds 2',
    });
    expect((thrown as InvalidAuthorizationDetails).status).toBe(400);
  });
});

describe('findCoveringCapability', () => {
  const open = cap({ type: 'timetable', identifier: undefined, actions: ['read'], locations: ['https://timetable.example'] });
  const details: AuthorizationDetails = [booking, open];

  it('finds the capability whose location, action and identifier allow the request', () => {
    expect(
      findCoveringCapability(details, { url: 'https://flights.example/api/bookings/42', action: 'write', resource: 'bookings/42' }),
    ).toBe(booking);
  });

  it('ignores query and fragment, case of scheme and host, and the default port in the request URL', () => {
    const request = { url: 'HTTPS://Flights.Example:443/api/bookings?limit=5#top', action: 'read', resource: 'bookings/42' };
    expect(findCoveringCapability(details, request)).toBe(booking);
  });

  it('allows the location itself, with or without a trailing slash', () => {
    expect(findCoveringCapability(details, { url: 'https://flights.example/api', action: 'read', resource: 'bookings/1' })).toBe(booking);
    expect(findCoveringCapability(details, { url: 'https://flights.example/api/', action: 'read', resource: 'bookings/1' })).toBe(booking);
  });

  it('allows any resource, or none, when the capability names no identifier', () => {
    expect(findCoveringCapability(details, { url: 'https://timetable.example/x', action: 'read' })).toBe(open);
    expect(findCoveringCapability(details, { url: 'https://timetable.example/x', action: 'read', resource: 'anything' })).toBe(open);
  });

  it.each([
    ['an action it does not list', { url: 'https://flights.example/api/b', action: 'delete', resource: 'bookings/1' }],
    ['no resource when it names an identifier', { url: 'https://flights.example/api/b', action: 'read' }],
    ['a resource outside its identifier', { url: 'https://flights.example/api/b', action: 'read', resource: 'hotels/1' }],
    ['a resource that escapes with ..', { url: 'https://flights.example/api/b', action: 'read', resource: 'bookings/../admin' }],
    ['a path-prefix trick', { url: 'https://flights.example/apiv2', action: 'read', resource: 'bookings/1' }],
    ['a host-prefix trick', { url: 'https://flights.example.evil.com/api', action: 'read', resource: 'bookings/1' }],
    ['another port', { url: 'https://flights.example:444/api', action: 'read', resource: 'bookings/1' }],
    ['http instead of https', { url: 'http://flights.example/api', action: 'read', resource: 'bookings/1' }],
    ['a dot-segment escape', { url: 'https://flights.example/api/../admin', action: 'read', resource: 'bookings/1' }],
    ['a relative URL', { url: '/api/bookings', action: 'read', resource: 'bookings/1' }],
    ['a non-http URL', { url: 'ws://flights.example/api', action: 'read', resource: 'bookings/1' }],
  ])('allows nothing for %s', (_name, request) => {
    expect(findCoveringCapability(details, request)).toBeUndefined();
  });
});

describe('requireCoveringCapability', () => {
  it('returns the covering capability', () => {
    expect(requireCoveringCapability([booking], { url: 'https://flights.example/api', action: 'read', resource: 'bookings/1' })).toBe(
      booking,
    );
  });

  it('throws insufficient_scope naming action, URL without query, and resource', () => {
    const attempt = () =>
      requireCoveringCapability([booking], { url: 'https://flights.example/api/x?secret=1', action: 'delete', resource: 'bookings/1' });
    expect(attempt).toThrow(InsufficientScope);
    expect(attempt).toThrow("no capability allows 'delete' at https://flights.example/api/x on resource 'bookings/1'");
  });

  it('says so when the URL is not http(s)', () => {
    expect(() => requireCoveringCapability([booking], { url: 'nope', action: 'read' })).toThrow(
      "no capability allows 'read' at a URL that is not http(s)",
    );
  });
});

describe('scopeOf', () => {
  it('lists type:action pairs sorted and de-duplicated, separated by single spaces', () => {
    const details = [
      cap({ actions: ['write', 'read'] }),
      cap({ actions: ['read'], identifier: 'bookings/1' }),
      { type: 'payment', locations: ['https://pay.example'], actions: ['transact'] },
    ];
    expect(scopeOf(details)).toBe('flight_booking:read flight_booking:write payment:transact');
  });

  it('does not depend on the order capabilities and actions were written in', () => {
    const a = [cap({ actions: ['read', 'write'] }), cap({ type: 'a_type', actions: ['x'] })];
    const b = [cap({ type: 'a_type', actions: ['x'] }), cap({ actions: ['write', 'read'] })];
    expect(scopeOf(a)).toBe(scopeOf(b));
  });
});

describe('describeCapability', () => {
  it('reads the example from the brief naturally', () => {
    expect(describeCapability(cap({ locations: ['https://flights.example'] }))).toBe(
      'Read, create and change flight_booking on flights.example, resource bookings/* — max_passengers at most 2',
    );
  });

  it('shows a path that is not the root, without the trailing slash', () => {
    expect(describeCapability(cap({ locations: ['https://Flights.Example:443/api/'], limits: undefined }))).toBe(
      'Read, create and change flight_booking on flights.example/api, resource bookings/*',
    );
  });

  it('says so when there is no identifier', () => {
    expect(describeCapability(cap({ actions: ['read'], identifier: undefined, limits: undefined }))).toBe(
      'Read flight_booking on flights.example/api, all resources',
    );
  });

  it('names known verbs in a fixed order and other actions as they are, after them', () => {
    expect(describeCapability(cap({ actions: ['cancel', 'delete', 'transact', 'write', 'read'], limits: {} }))).toBe(
      'Read, create, change, make payments, delete and cancel flight_booking on flights.example/api, resource bookings/*',
    );
    expect(describeCapability(cap({ actions: ['transact'], limits: {} }))).toBe(
      'Make payments flight_booking on flights.example/api, resource bookings/*',
    );
  });

  it('does not repeat a verb that an unknown action shares with a known one', () => {
    expect(describeCapability(cap({ actions: ['write', 'change'], limits: {} }))).toBe(
      'Create and change flight_booking on flights.example/api, resource bookings/*',
    );
  });

  it('lists several locations and limits sorted, and shows a non-default port', () => {
    const capability = cap({
      locations: ['https://b.example:8443/v1', 'https://a.example'],
      limits: { max_passengers: 2, max_bags: 1 },
    });
    expect(describeCapability(capability)).toBe(
      'Read, create and change flight_booking on a.example and b.example:8443/v1, resource bookings/* — max_bags at most 1, max_passengers at most 2',
    );
  });

  it('warns when a location is plain http', () => {
    expect(describeCapability(cap({ actions: ['read'], locations: ['http://flights.example'], limits: {} }))).toBe(
      'Read flight_booking on flights.example (unencrypted http), resource bookings/*',
    );
  });

  it('shows punycode, not look-alike Unicode, for an international host', () => {
    expect(describeCapability(cap({ actions: ['read'], locations: ['https://аpple.example'], limits: {} }))).toBe(
      'Read flight_booking on xn--pple-43d.example, resource bookings/*',
    );
  });

  it('shows an unparseable location as written rather than hiding it', () => {
    expect(describeCapability(cap({ actions: ['read'], locations: ['garbage'], limits: {} }))).toBe(
      'Read flight_booking on garbage, resource bookings/*',
    );
  });

  it('reads the same whatever order the arrays were written in', () => {
    const a = cap({ actions: ['read', 'write'], locations: ['https://a.example', 'https://b.example'], limits: { x: 1, y: 2 } });
    const b = cap({ actions: ['write', 'read'], locations: ['https://b.example', 'https://a.example'], limits: { y: 2, x: 1 } });
    expect(describeCapability(a)).toBe(describeCapability(b));
  });
});

describe('describeCapabilities', () => {
  it('describes each capability in order', () => {
    const details = [
      cap({ actions: ['read'], locations: ['https://flights.example'], limits: undefined }),
      { type: 'payment_initiation', locations: ['https://pay.example/eur'], actions: ['transact'], limits: { max_amount: 200 } },
    ];
    expect(describeCapabilities(details)).toEqual([
      'Read flight_booking on flights.example, resource bookings/*',
      'Make payments payment_initiation on pay.example/eur, all resources — max_amount at most 200',
    ]);
  });
});
