import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestLog } from '../test/support/test-log.js';
import { addCheckpoint, type AddCheckpointContext } from './add-checkpoint.js';
import { CheckpointStore } from './checkpoint-store.js';
import { TrustedLogs } from './trusted-logs.js';
import { openWitnessKey } from './witness-key.js';

/** Every status add-checkpoint may refuse with (tlog-witness §add-checkpoint). */
const REFUSALS = [400, 403, 404, 409, 422];

const folder = mkdtempSync(join(tmpdir(), 'writ-witness-unit-'));
const log = new TestLog({ origin: 'registry.test/audit' }).append(5);
let valid: Uint8Array;
let hashLine: string;
let note: string;

/** A witness of `log` that has cosigned nothing yet, in a data folder of its own. */
async function freshContext(): Promise<AddCheckpointContext> {
  const dataDir = mkdtempSync(join(folder, 'witness-'));
  return {
    logs: new TrustedLogs([{ origin: log.origin, vkeys: [log.vkey] }]),
    store: CheckpointStore.open({ dataDir }),
    key: await openWitnessKey({ dataDir, name: 'witness.test/w1' }),
    now: () => 1_767_000_000_000,
    warn: () => undefined,
  };
}

beforeAll(async () => {
  valid = new TextEncoder().encode(await log.body(0));
  note = await log.checkpoint();
  hashLine = `${Buffer.from(await log.root(3)).toString('base64')}\n`;
});

afterAll(() => rmSync(folder, { recursive: true, force: true }));

describe('addCheckpoint on untrusted bodies', () => {
  it('answers any bytes with a refusal and never throws', async () => {
    const context = await freshContext();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (body) => {
        expect(REFUSALS).toContain((await addCheckpoint(body, context)).status);
      }),
      { numRuns: 300 },
    );
  });

  it('answers bodies made of the protocol’s own pieces, in any order, with a refusal or a cosignature, never a throw', async () => {
    const context = await freshContext();
    const piece = fc.constantFrom('old 0\n', 'old 5\n', 'old 1\n', 'old 01\n', '\n', hashLine, note, `${log.origin}\n`, '5\n', '\u2014 x AAAA\n', 'old 0', '\r\n');
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { maxLength: 12 }), async (pieces) => {
        const answer = await addCheckpoint(new TextEncoder().encode(pieces.join('')), context);
        expect([200, ...REFUSALS]).toContain(answer.status);
        // Only the real checkpoint is cosigned: first from 0, then again from its own size.
        if (answer.status === 200) expect([`old 0\n\n${note}`, `old 5\n\n${note}`]).toContain(pieces.join(''));
      }),
      { numRuns: 300 },
    );
  });

  it('never cosigns a valid first submission with any one byte changed', async () => {
    const context = await freshContext();
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 1, max: 255 }), async (index, delta) => {
        const body = Uint8Array.from(valid);
        body[index] = (body[index]! + delta) % 256;
        expect(REFUSALS).toContain((await addCheckpoint(body, context)).status);
      }),
      { numRuns: 400 },
    );
  });
});
