import type { AuthorizationDetail } from '@writ/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Allow, allowJson } from './verifier.js';

const text = fc.string({ unit: 'binary', maxLength: 24 });

const capability = fc.record(
  {
    type: text,
    locations: fc.array(text, { minLength: 1, maxLength: 3 }),
    actions: fc.array(text, { minLength: 1, maxLength: 3 }),
    identifier: text,
    limits: fc.dictionary(text, fc.oneof(fc.integer(), text, fc.boolean())),
  },
  { requiredKeys: ['type', 'locations', 'actions'] },
) as fc.Arbitrary<AuthorizationDetail>;

const act = fc.letrec((tie) => ({
  act: fc.record({ sub: text, act: fc.option(tie('act'), { nil: undefined, depthSize: 'small' }) }, { requiredKeys: ['sub'] }),
})).act as fc.Arbitrary<Allow['act']>;

const remaining = fc.record({ uses: fc.integer(), rate: fc.integer(), amount: fc.double({ noNaN: true, noDefaultInfinity: true }) }, { requiredKeys: [] });

const allow: fc.Arbitrary<Allow> = fc
  .record({ sub: text, act, txn: text, grant_id: text, jti: text, scope: text, capability, remaining, step_up_id: fc.option(text, { nil: undefined }) })
  .map(({ step_up_id, ...rest }) => ({ allow: true as const, ...rest, ...(step_up_id === undefined ? {} : { step_up_id }) }));

describe('allowJson', () => {
  it('writes exactly what JSON.stringify writes for an allow answer', () => {
    fc.assert(
      fc.property(allow, (a) => {
        expect(allowJson(a)).toBe(JSON.stringify(a));
      }),
      { numRuns: 500 },
    );
  });

  it('writes each answer on one token and capability with its own remaining and step-up', () => {
    fc.assert(
      fc.property(allow, remaining, fc.option(text, { nil: undefined }), (first, left, stepUp) => {
        expect(allowJson(first)).toBe(JSON.stringify(first));
        // The same token and capability again (the prefix is now remembered), other counters.
        const again: Allow = { ...first, remaining: left };
        delete again.step_up_id;
        if (stepUp !== undefined) again.step_up_id = stepUp;
        expect(allowJson(again)).toBe(JSON.stringify(again));
      }),
      { numRuns: 300 },
    );
  });
});
