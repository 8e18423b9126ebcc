import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AuthorizationDetailsSchema,
  capabilityCovers,
  describeCapability,
  detailsSubsetViolation,
  findCoveringCapability,
  isDetailsSubset,
  locationCovers,
  identifierCovers,
  normaliseLocation,
  pathStepProblem,
  scopeOf,
  type AuthorizationDetail,
  type AuthorizationDetails,
  type CapabilityRequest,
} from './capabilities.js';

/*
 * Small alphabets, so that random capabilities often share hosts, paths, actions and identifiers
 * and the subset relation holds (or almost holds) often enough to be exercised. Narrower
 * capabilities are derived from wider ones the way a delegating agent would: drop actions and
 * locations, go deeper in paths and identifiers, lower limits, add limits.
 */

const NUM_RUNS = 300;

const TYPES = ['flight_booking', 'payment'] as const;
const HOSTS = ['a.example', 'b.example'] as const;
const PATH_SEGMENTS = ['api', 'v2', 'x'] as const;
const ACTIONS = ['read', 'write', 'transact', 'delete', 'cancel'] as const;
const ID_SEGMENTS = ['bookings', '42', '7'] as const;
const LIMIT_NAMES = ['max_passengers', 'max_items'] as const;
/** Never generated, so adding it always widens. */
const FOREIGN_ACTION = 'archive';
const FOREIGN_HOST = 'c.example';

// --- locations -------------------------------------------------------------------------------

interface LocationParts {
  scheme: string;
  host: string;
  segments: string[];
}

/** Spellings that normalise to the same location: case, explicit default port, trailing slash. */
interface Spelling {
  upper: boolean;
  port: boolean;
  slash: boolean;
}

const spellingArb: fc.Arbitrary<Spelling> = fc.record({ upper: fc.boolean(), port: fc.boolean(), slash: fc.boolean() });

function spell(parts: LocationParts, spelling: Spelling): string {
  const origin = `${parts.scheme}://${parts.host}`;
  const port = spelling.port ? (parts.scheme === 'https' ? ':443' : ':80') : '';
  const path = parts.segments.map((s) => `/${s}`).join('');
  return `${spelling.upper ? origin.toUpperCase() : origin}${port}${path}${spelling.slash ? '/' : ''}`;
}

function partsOf(location: string): LocationParts {
  const url = new URL(location);
  return { scheme: url.protocol.slice(0, -1), host: url.hostname, segments: url.pathname.split('/').filter((s) => s !== '') };
}

const locationPartsArb: fc.Arbitrary<LocationParts> = fc.record({
  scheme: fc.constantFrom('https', 'https', 'http'),
  host: fc.constantFrom(...HOSTS),
  segments: fc.array(fc.constantFrom(...PATH_SEGMENTS), { maxLength: 2 }),
});

const locationArb = fc.tuple(locationPartsArb, spellingArb).map(([parts, spelling]) => spell(parts, spelling));

/** The same place or a place under it, spelled any equivalent way. */
function narrowLocation(location: string): fc.Arbitrary<string> {
  const parts = partsOf(location);
  return fc
    .tuple(fc.array(fc.constantFrom(...PATH_SEGMENTS), { maxLength: 1 }), spellingArb)
    .map(([extra, spelling]) => spell({ ...parts, segments: [...parts.segments, ...extra] }, spelling));
}

function uniqueLocations(locations: readonly string[]): string[] {
  const seen = new Map<string, string>();
  for (const location of locations) {
    const key = normaliseLocation(location) ?? location;
    if (!seen.has(key)) seen.set(key, location);
  }
  return [...seen.values()];
}

// --- identifiers and limits ------------------------------------------------------------------

const identifierArb: fc.Arbitrary<string | undefined> = fc.option(
  fc
    .tuple(fc.array(fc.constantFrom(...ID_SEGMENTS), { minLength: 1, maxLength: 2 }), fc.boolean())
    .map(([segments, wildcard]) => `${segments.join('/')}${wildcard ? '/*' : ''}`),
  { nil: undefined },
);

function narrowIdentifier(parent: string | undefined): fc.Arbitrary<string | undefined> {
  if (parent === undefined) return identifierArb;
  if (!parent.endsWith('/*')) return fc.constant(parent);
  const prefix = parent.slice(0, -1);
  return fc.oneof(
    fc.constant(parent),
    fc
      .tuple(fc.constantFrom(...ID_SEGMENTS), fc.constantFrom('', '/*', '/7'))
      .map(([segment, rest]) => `${prefix}${segment}${rest}`),
  );
}

type Limits = Record<string, number>;

const limitsArb: fc.Arbitrary<Limits | undefined> = fc.option(
  fc.dictionary(fc.constantFrom(...LIMIT_NAMES), fc.integer({ min: 0, max: 5 }), { maxKeys: 2 }),
  { nil: undefined },
);

function narrowLimits(parent: Limits | undefined): fc.Arbitrary<Limits | undefined> {
  if (parent === undefined) return limitsArb;
  const kept = Object.entries(parent).map(([name, max]) =>
    fc.integer({ min: 0, max }).map((value): [string, number] => [name, value]),
  );
  // A child may add a limit the parent does not have (but may not "add" one it has, higher).
  const added = Object.hasOwn(parent, 'max_bags')
    ? fc.constant(undefined)
    : fc.option(fc.integer({ min: 0, max: 9 }).map((value): [string, number] => ['max_bags', value]), { nil: undefined });
  return fc
    .tuple(fc.tuple(...kept), added)
    .map(([entries, extra]) => Object.fromEntries(extra === undefined ? entries : [...entries, extra]));
}

// --- capabilities ----------------------------------------------------------------------------

function capability(
  type: string,
  locations: string[],
  actions: string[],
  identifier: string | undefined,
  limits: Limits | undefined,
): AuthorizationDetail {
  return {
    type,
    locations,
    actions,
    ...(identifier === undefined ? {} : { identifier }),
    ...(limits === undefined ? {} : { limits }),
  };
}

const capabilityArb: fc.Arbitrary<AuthorizationDetail> = fc
  .tuple(
    fc.constantFrom(...TYPES),
    fc.uniqueArray(locationArb, { minLength: 1, maxLength: 3, selector: (l) => normaliseLocation(l) }),
    fc.uniqueArray(fc.constantFrom(...ACTIONS), { minLength: 1, maxLength: 4 }),
    identifierArb,
    limitsArb,
  )
  .map(([type, locations, actions, identifier, limits]) => capability(type, locations, actions, identifier, limits));

const detailsArb: fc.Arbitrary<AuthorizationDetails> = fc.array(capabilityArb, { minLength: 1, maxLength: 3 });

function narrowCapability(parent: AuthorizationDetail): fc.Arbitrary<AuthorizationDetail> {
  return fc
    .tuple(
      fc.shuffledSubarray(parent.locations, { minLength: 1 }).chain((kept) => fc.tuple(...kept.map(narrowLocation))),
      fc.shuffledSubarray(parent.actions, { minLength: 1 }),
      narrowIdentifier(parent.identifier),
      narrowLimits(parent.limits),
    )
    .map(([locations, actions, identifier, limits]) =>
      capability(parent.type, uniqueLocations(locations), actions, identifier, limits),
    );
}

/** One to three child capabilities, each narrowed from some parent capability (repeats allowed). */
function narrowDetails(parent: AuthorizationDetails): fc.Arbitrary<AuthorizationDetails> {
  return fc.array(
    fc.nat(parent.length - 1).chain((i) => narrowCapability(parent[i]!)),
    { minLength: 1, maxLength: 3 },
  );
}

/** A parent and a child derived from it. */
const narrowedPairArb = detailsArb.chain((parent) => fc.tuple(fc.constant(parent), narrowDetails(parent)));

/** One random change to one dimension of a capability: it may or may not widen it. */
function mutateCapability(c: AuthorizationDetail): fc.Arbitrary<AuthorizationDetail> {
  return fc.oneof(
    fc.constantFrom(...TYPES).map((type) => ({ ...c, type })),
    locationArb.map((location) => ({ ...c, locations: uniqueLocations([...c.locations.slice(1), location]) })),
    fc.constantFrom(...ACTIONS).map((action) => ({ ...c, actions: [...new Set([...c.actions.slice(1), action])] })),
    identifierArb.map((identifier) => capability(c.type, c.locations, c.actions, identifier, c.limits)),
    limitsArb.map((limits) => capability(c.type, c.locations, c.actions, c.identifier, limits)),
  );
}

/**
 * Pairs where the subset relation is in doubt: a narrowed child with one random change, or two
 * unrelated random sets (which are rarely subsets, so they mostly test refusals).
 */
const doubtfulPairArb: fc.Arbitrary<[AuthorizationDetails, AuthorizationDetails]> = fc.oneof(
  narrowedPairArb.chain(([parent, child]) =>
    fc
      .nat(child.length - 1)
      .chain((i) => mutateCapability(child[i]!).map((m) => child.map((c, j) => (j === i ? m : c))))
      .map((mutated): [AuthorizationDetails, AuthorizationDetails] => [parent, mutated]),
  ),
  fc.tuple(detailsArb, detailsArb),
);

// --- requests --------------------------------------------------------------------------------

const queryArb = fc.constantFrom('', '?q=1', '#frag', '?a=b#c');

function requestsFor(details: AuthorizationDetails): fc.Arbitrary<CapabilityRequest> {
  const near = fc.nat(details.length - 1).chain((i) => {
    const c = details[i]!;
    return fc
      .record({
        location: fc.constantFrom(...c.locations).chain(narrowLocation),
        query: queryArb,
        action: fc.constantFrom(...c.actions, ...ACTIONS),
        resource: narrowIdentifier(c.identifier),
      })
      .map(({ location, query, action, resource }) => ({ url: `${location}${query}`, action, resource }));
  });
  const anywhere = fc
    .record({ location: locationArb, query: queryArb, action: fc.constantFrom(...ACTIONS), resource: identifierArb })
    .map(({ location, query, action, resource }) => ({ url: `${location}${query}`, action, resource }));
  return fc.oneof(near, anywhere);
}

function expectSound(child: AuthorizationDetails, parent: AuthorizationDetails, requests: readonly CapabilityRequest[]): void {
  for (const request of requests) {
    if (findCoveringCapability(child, request) !== undefined) {
      expect(findCoveringCapability(parent, request), JSON.stringify(request)).toBeDefined();
    }
  }
}

// --- properties ------------------------------------------------------------------------------

describe('capability generators', () => {
  it('produce authorization_details the schema accepts, parents and narrowed children alike', () => {
    fc.assert(
      fc.property(narrowedPairArb, ([parent, child]) => {
        expect(AuthorizationDetailsSchema.safeParse(parent).success).toBe(true);
        expect(AuthorizationDetailsSchema.safeParse(child).success).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('location coverage (property)', () => {
  it('covers every equivalent spelling of a location, both ways', () => {
    fc.assert(
      fc.property(locationPartsArb, spellingArb, spellingArb, (parts, a, b) => {
        expect(locationCovers(spell(parts, a), spell(parts, b))).toBe(true);
        expect(locationCovers(spell(parts, b), spell(parts, a))).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('is transitive along deepening and never lets a deeper path cover a shallower one', () => {
    fc.assert(
      fc.property(
        locationArb.chain((a) => narrowLocation(a).chain((b) => fc.tuple(fc.constant(a), fc.constant(b), narrowLocation(b)))),
        ([a, b, c]) => {
          expect(locationCovers(a, b) && locationCovers(b, c) && locationCovers(a, c)).toBe(true);
          if (normaliseLocation(a) !== normaliseLocation(c)) expect(locationCovers(c, a)).toBe(false);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('subset (property)', () => {
  it('is reflexive', () => {
    fc.assert(
      fc.property(detailsArb, (details) => {
        expect(detailsSubsetViolation(details, details)).toBeNull();
        for (const c of details) expect(capabilityCovers(c, c)).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('holds for every child derived by narrowing', () => {
    fc.assert(
      fc.property(narrowedPairArb, ([parent, child]) => {
        expect(detailsSubsetViolation(child, parent)).toBeNull();
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('is transitive: c narrowed from b narrowed from a is a subset of a', () => {
    fc.assert(
      fc.property(
        narrowedPairArb.chain(([a, b]) => fc.tuple(fc.constant(a), fc.constant(b), narrowDetails(b))),
        ([a, b, c]) => {
          expect(isDetailsSubset(c, b)).toBe(true);
          expect(detailsSubsetViolation(c, a)).toBeNull();
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('is transitive for capabilities that happen to be subsets', () => {
    fc.assert(
      fc.property(
        narrowedPairArb.chain(([a, b]) => fc.tuple(fc.constant(a), doubtfulPairArb.map(([, c]) => c), fc.constant(b))),
        narrowedPairArb.chain(([a, b]) =>
          fc.tuple(fc.constant(a), fc.constant(b), narrowDetails(b).chain((c) => mutateCapability(c[0]!).map((m) => [m, ...c.slice(1)]))),
        ),
        ([a, unrelated, b], [a2, b2, c2]) => {
          if (isDetailsSubset(unrelated, b)) expect(isDetailsSubset(unrelated, a)).toBe(true);
          if (isDetailsSubset(c2, b2)) expect(isDetailsSubset(c2, a2)).toBe(true);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('reports null exactly when each child capability is covered by one parent capability', () => {
    fc.assert(
      fc.property(fc.oneof(narrowedPairArb, doubtfulPairArb), ([parent, child]) => {
        const expected = child.every((c) => parent.some((p) => capabilityCovers(p, c)));
        expect(detailsSubsetViolation(child, parent) === null).toBe(expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('soundness (property)', () => {
  it('never lets a narrowed child allow a request its parent would refuse', () => {
    fc.assert(
      fc.property(
        narrowedPairArb.chain(([parent, child]) =>
          fc.tuple(fc.constant(parent), fc.constant(child), fc.array(requestsFor(child), { minLength: 1, maxLength: 8 })),
        ),
        ([parent, child, requests]) => expectSound(child, parent, requests),
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('never lets any child that passes the subset check allow more than its parent', () => {
    fc.assert(
      fc.property(
        doubtfulPairArb.chain(([parent, child]) =>
          fc.tuple(fc.constant(parent), fc.constant(child), fc.array(requestsFor(child), { minLength: 1, maxLength: 8 })),
        ),
        ([parent, child, requests]) => {
          if (isDetailsSubset(child, parent)) expectSound(child, parent, requests);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('widening detection (property)', () => {
  /** A single parent capability and a child narrowed from it. */
  const singlePairArb = capabilityArb.chain((parent) => fc.tuple(fc.constant(parent), narrowCapability(parent)));

  it('detects an added action', () => {
    fc.assert(
      fc.property(singlePairArb, ([parent, child]) => {
        const missing = [...ACTIONS, FOREIGN_ACTION].find((a) => !parent.actions.includes(a))!;
        const widened = { ...child, actions: [...child.actions, missing] };
        expect(capabilityCovers(parent, widened)).toBe(false);
        expect(detailsSubsetViolation([widened], [parent])).toBe(
          `capability 0 (${parent.type}): action '${missing}' is not in the parent`,
        );
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('detects an action no parent capability has, among several', () => {
    fc.assert(
      fc.property(narrowedPairArb, fc.nat(), ([parent, child], pick) => {
        const index = pick % child.length;
        const widened = child.map((c, i) => (i === index ? { ...c, actions: [...c.actions, FOREIGN_ACTION] } : c));
        expect(detailsSubsetViolation(widened, parent)).toBe(
          `capability ${index} (${child[index]!.type}): action '${FOREIGN_ACTION}' is not in the parent`,
        );
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('detects a raised limit', () => {
    fc.assert(
      fc.property(
        singlePairArb.filter(([parent]) => Object.keys(parent.limits ?? {}).length > 0),
        fc.nat(),
        fc.constantFrom(0.5, 1, 7),
        ([parent, child], pick, raise) => {
          const names = Object.keys(parent.limits!).sort();
          const name = names[pick % names.length]!;
          const value = parent.limits![name]! + raise;
          const widened = { ...child, limits: { ...child.limits, [name]: value } };
          expect(capabilityCovers(parent, widened)).toBe(false);
          expect(detailsSubsetViolation([widened], [parent])).toBe(
            `capability 0 (${parent.type}): limit ${name} ${value} exceeds ${parent.limits![name]}`,
          );
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('detects a dropped limit', () => {
    fc.assert(
      fc.property(
        singlePairArb.filter(([parent]) => Object.keys(parent.limits ?? {}).length > 0),
        fc.nat(),
        ([parent, child], pick) => {
          const names = Object.keys(parent.limits!).sort();
          const name = names[pick % names.length]!;
          const limits = Object.fromEntries(Object.entries(child.limits!).filter(([n]) => n !== name));
          expect(detailsSubsetViolation([{ ...child, limits }], [parent])).toBe(
            `capability 0 (${parent.type}): limit ${name} is dropped`,
          );
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('detects a location on another host, and a dropped identifier', () => {
    fc.assert(
      fc.property(singlePairArb, fc.constantFrom('https', 'http'), ([parent, child], scheme) => {
        const foreign = `${scheme}://${FOREIGN_HOST}/api`;
        expect(detailsSubsetViolation([{ ...child, locations: [...child.locations, foreign] }], [parent])).toBe(
          `capability 0 (${parent.type}): location ${foreign} is not covered`,
        );
        if (parent.identifier !== undefined) {
          const { identifier: _dropped, ...unrestricted } = child;
          expect(capabilityCovers(parent, unrestricted)).toBe(false);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('rendering (property)', () => {
  it('gives the same scope and description whatever order the arrays are in', () => {
    fc.assert(
      fc.property(
        capabilityArb.chain((c) =>
          fc.tuple(
            fc.constant(c),
            fc.shuffledSubarray(c.locations, { minLength: c.locations.length }),
            fc.shuffledSubarray(c.actions, { minLength: c.actions.length }),
          ),
        ),
        ([c, locations, actions]) => {
          const shuffled = { ...c, locations, actions };
          expect(describeCapability(shuffled)).toBe(describeCapability(c));
          expect(scopeOf([shuffled])).toBe(scopeOf([c]));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

// --- path steps however spelled (issue 17, finding 5) ----------------------------------------

/**
 * Pieces of resource names and paths: ordinary names, dot segments, and every spelling of `.`,
 * `/` and `\` a server might decode (any case, `%25`-nested, a literal backslash).
 */
const STEP_PIECES = ['42', 'x', 'admin', 'a.b', 'a%20b', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '%5C', '%252e', '%252F', '%25255c', '%25', '\\'] as const;

/** Joins pieces with `/` or with nothing, so that escapes land inside and between segments. */
const stepNameArb: fc.Arbitrary<string> = fc
  .array(fc.tuple(fc.constantFrom(...STEP_PIECES), fc.boolean()), { minLength: 1, maxLength: 6 })
  .map((pieces) => pieces.map(([piece, slash], i) => (i > 0 && slash ? `/${piece}` : piece)).join(''));

/**
 * The place a lenient server could serve for `path` (starting with `/`): every escape decoded
 * three times over, `\` read as `/`, then RFC 3986 §5.2.4 dot-segment removal.
 */
function serverView(path: string): string {
  let decoded = path;
  for (let i = 0; i < 3; i++) decoded = decoded.replace(/%([0-9A-Fa-f]{2})/g, (_e, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
  const out: string[] = [];
  for (const segment of decoded.replaceAll('\\', '/').split('/').slice(1)) {
    if (segment === '..') out.pop();
    else if (segment !== '.') out.push(segment);
  }
  return `/${out.join('/')}`;
}

describe('path steps (property)', () => {
  it('lets bookings/* cover only names a lenient server still reads as under bookings/', () => {
    fc.assert(
      fc.property(stepNameArb, (tail) => {
        const child = `bookings/${tail}`;
        if (identifierCovers('bookings/*', child)) expect(serverView(`/${child}`).startsWith('/bookings/')).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('never lets an identifier or resource with an encoded dot, slash or backslash, a backslash or a dot segment be covered, or be a capability identifier', () => {
    const bookings = { type: 'flight_booking', locations: ['https://a.example/api'], actions: ['read'], identifier: 'bookings/*' };
    fc.assert(
      fc.property(stepNameArb, fc.constantFrom(...STEP_PIECES.filter((p) => pathStepProblem(p) !== undefined)), (tail, step) => {
        const child = `bookings/${tail}/${step}`;
        expect(pathStepProblem(child)).toBeDefined();
        expect(identifierCovers('bookings/*', child)).toBe(false);
        expect(identifierCovers(child, child)).toBe(false);
        expect(findCoveringCapability([bookings], { url: 'https://a.example/api/bookings', action: 'read', resource: child })).toBeUndefined();
        expect(AuthorizationDetailsSchema.safeParse([{ ...bookings, identifier: child }]).success).toBe(false);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('never lets a location cover a request URL whose path a lenient server reads as outside it', () => {
    const bookings = { type: 'flight_booking', locations: ['https://a.example/api/bookings'], actions: ['read'] };
    fc.assert(
      fc.property(stepNameArb, (tail) => {
        const url = `https://a.example/api/bookings/${tail}`;
        if (findCoveringCapability([bookings], { url, action: 'read' }) !== undefined) {
          expect(serverView(`/api/bookings/${tail}`).startsWith('/api/bookings')).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
