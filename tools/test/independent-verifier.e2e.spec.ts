import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The registry's side: only to boot it, append events and read them back as they are stored
// (issue 19: the verifying side imports nothing from Writ).
import { loadConfig } from '../../apps/registry/src/config/config.js';
import { auditLogSigner } from '../../apps/registry/src/modules/audit/audit-log-key.js';
import { AuditService } from '../../apps/registry/src/modules/audit/audit.service.js';
import { createRegistry } from '../../apps/registry/src/registry.js';
import { e2eStorage, type TestDatabase } from '../../apps/registry/test/support/databases.js';
import { ROOT } from './support.js';

/** The verifier's API as this test uses it: it is plain JavaScript, so its types are stated here. */
interface Checkpoint {
  origin: string;
  size: number;
  root: Buffer;
  text: string;
  note: string;
}
interface AuditEventJson {
  seq: number;
  hash: string;
  data: Record<string, unknown>;
  [member: string]: unknown;
}
type Fetch = typeof fetch;
interface VerifyLogModule {
  VerifyError: new (message: string) => Error;
  verifyLog(options: { registry: string; vkey: string; since?: string; events?: AuditEventJson[]; fetch?: Fetch }): Promise<{ lines: string[]; checkpoint: Checkpoint }>;
  openCheckpoint(options: { note: string; vkey: string }): Checkpoint;
  verifyCosignature(options: { checkpointText: string; line: string; vkey: string }): number;
  checkChain(events: AuditEventJson[]): void;
  leafHash(eventHashHex: string): Buffer;
  merkleRoot(leafHashes: Buffer[]): Buffer;
  parseProof(value: unknown): Buffer[] | undefined;
  verifyInclusion(options: { leafHash: Uint8Array; index: number; size: number; proof: Uint8Array[]; root: Uint8Array }): boolean;
  verifyConsistency(options: { oldSize: number; newSize: number; oldRoot: Uint8Array; newRoot: Uint8Array; proof: Uint8Array[] }): boolean;
  main(options: { argv: string[]; stdout: { write(text: string): unknown }; stderr: { write(text: string): unknown }; fetch?: Fetch }): Promise<number>;
}

const VERIFY_LOG = resolve(ROOT, 'tools/independent-verifier/verify-log.mjs');
const VECTORS = resolve(ROOT, 'docs/audit-vectors/vectors.json');
const ISSUER = 'https://registry.writ.test';
const ORIGIN = 'registry.writ.test/audit';

/** The registry's answers, changed on the way (a man in the middle, or a registry that lies). */
function tampering(change: { path: string; url?: (url: URL) => URL; body?: (body: string) => string }): Fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    if (!url.pathname.endsWith(change.path)) return fetch(url, init);
    const response = await fetch(change.url?.(url) ?? url, init);
    const body = await response.text();
    return new Response(change.body?.(body) ?? body, { status: response.status, headers: { 'content-type': response.headers.get('content-type') ?? '' } });
  };
}

/** A JSON proof answer with one bit of its first hash flipped. */
function flipBit(body: string): string {
  const answer = JSON.parse(body) as { proof: string[] };
  const first = Buffer.from(answer.proof[0]!, 'base64');
  first[0]! ^= 0x01;
  answer.proof[0] = first.toString('base64');
  return JSON.stringify(answer);
}

/** A C2SP signed note of `text` by an Ed25519 key under `name`, written here with node:crypto. */
function signNote(options: { text: string; name: string; privateKey: KeyObject; keyIdOf?: KeyObject }): string {
  const idKey = createPublicKey(options.keyIdOf ?? options.privateKey).export({ format: 'jwk' }).x!;
  const id = createHash('sha256').update(options.name).update(Buffer.from([0x0a, 0x01])).update(Buffer.from(idKey, 'base64url')).digest().subarray(0, 4);
  const signature = sign(null, Buffer.from(options.text), options.privateKey);
  return `${options.text}\n\u2014 ${options.name} ${Buffer.concat([id, signature]).toString('base64')}\n`;
}

/** A checkpoint text with the same origin and size and another root. */
function withRoot(checkpoint: Checkpoint, root: Buffer): string {
  return `${checkpoint.origin}\n${checkpoint.size}\n${root.toString('base64')}\n`;
}

describe.each([e2eStorage])('an independent verifier (tools/independent-verifier/verify-log.mjs) against a live registry on $name', ({ create }) => {
  let verifier: VerifyLogModule;
  let app: NestFastifyApplication;
  let testDb: TestDatabase;
  let dataDir: string;
  let registry: string;
  let vkey: string;
  let logKey: KeyObject;
  /** The checkpoint notes an outsider saved along the way, oldest first. */
  const saved: string[] = [];
  const events: AuditEventJson[] = [];
  let latest: Checkpoint;

  beforeAll(async () => {
    verifier = (await import(VERIFY_LOG)) as VerifyLogModule;
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-independent-verifier-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: ISSUER, WRIT_CHECKPOINT_EVERY: '5' });
    ({ app } = await createRegistry(config, { logger: false, database: testDb.target }));
    await app.listen(0, '127.0.0.1');
    registry = await app.getUrl();
    vkey = auditLogSigner({ dataDir, origin: config.audit.origin }).vkey;
    logKey = createPrivateKey(readFileSync(join(dataDir, 'keys/audit-log-ed25519.pem')));
    const audit = app.get(AuditService);
    // Three batches, each closed by a checkpoint an outsider saves; WRIT_CHECKPOINT_EVERY adds more.
    for (const [batch, count] of [7, 6, 9].entries()) {
      for (let i = 0; i < count; i++) await audit.append({ type: 'admin.test', actor: `operator:${batch}`, data: { batch, i, note: 'café ☕', amount: 12.5 } });
      await audit.checkpoint();
      saved.push(await (await fetch(`${registry}/audit/checkpoint`)).text());
    }
    latest = verifier.openCheckpoint({ note: saved.at(-1)!, vkey });
    // The events as the registry stores and exports them (`audit export` writes the same JSON).
    for await (const event of audit.export()) if (event.seq <= latest.size) events.push(JSON.parse(JSON.stringify(event)) as AuditEventJson);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await testDb?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('proves every event included in the latest checkpoint, from its JSON alone', async () => {
    expect(latest).toMatchObject({ origin: ORIGIN, size: events.length });
    expect(events.length).toBeGreaterThanOrEqual(22);
    const { lines } = await verifier.verifyLog({ registry, vkey, events });
    expect(lines[0]).toBe(`checkpoint: ${ORIGIN} size ${latest.size} root ${latest.root.toString('base64')}, signed by the log's key`);
    expect(lines.slice(1)).toEqual(events.map((event) => `included: event seq ${event.seq} (hash ${event.hash}) is in the checkpoint of size ${latest.size}`));
  });

  it('proves the latest checkpoint consistent with every earlier one an outsider saved', async () => {
    const sizes = saved.map((note) => verifier.openCheckpoint({ note, vkey }).size);
    expect(new Set(sizes).size).toBe(3);
    for (const [i, note] of saved.entries()) {
      const { lines } = await verifier.verifyLog({ registry, vkey, since: note });
      expect(lines[1]).toBe(`consistent: the checkpoint of size ${latest.size} extends the saved checkpoint of size ${sizes[i]}`);
    }
  });

  it('runs as a command: checks the signature, the consistency from a saved checkpoint and an event, and exits 0', async () => {
    const since = join(dataDir, 'saved-checkpoint.txt');
    const eventFile = join(dataDir, 'event.json');
    writeFileSync(since, saved[0]!, { mode: 0o600 });
    writeFileSync(eventFile, JSON.stringify(events[4]), { mode: 0o600 });
    const first = verifier.openCheckpoint({ note: saved[0]!, vkey });
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [VERIFY_LOG, '--registry', registry, '--vkey', vkey, '--since', since, '--event', eventFile]);
    expect(stderr).toBe('');
    expect(stdout).toBe(
      `checkpoint: ${ORIGIN} size ${latest.size} root ${latest.root.toString('base64')}, signed by the log's key\n` +
        `consistent: the checkpoint of size ${latest.size} extends the saved checkpoint of size ${first.size}\n` +
        `included: event seq 5 (hash ${events[4]!.hash}) is in the checkpoint of size ${latest.size}\n`,
    );
  });

  describe('refuses, with the reason it prints', () => {
    /** Runs the command line in process and answers its status and what it printed on stderr. */
    async function refusal(argv: string[], fetch?: Fetch): Promise<{ status: number; stderr: string }> {
      let stderr = '';
      const status = await verifier.main({ argv: ['--registry', registry, '--vkey', vkey, ...argv], stdout: { write: () => true }, stderr: { write: (text) => (stderr += text) }, fetch });
      return { status, stderr };
    }

    const refusedWith = async (promise: Promise<unknown>, message: string) => {
      const error = await promise.then(() => undefined, (caught: unknown) => caught);
      expect(error).toBeInstanceOf(verifier.VerifyError);
      expect((error as Error).message).toBe(message);
    };

    it('an inclusion proof with one bit flipped in one of its hashes', async () => {
      const flipped = tampering({ path: '/proof/inclusion', body: flipBit });
      for (const event of [events[0]!, events[9]!, events.at(-1)!]) {
        await refusedWith(verifier.verifyLog({ registry, vkey, events: [event], fetch: flipped }), `event seq ${event.seq} is not included in the checkpoint of size ${latest.size}: the inclusion proof does not verify`);
      }
    });

    it('a consistency proof with one bit flipped in one of its hashes', async () => {
      const flipped = tampering({ path: '/proof/consistency', body: flipBit });
      const first = verifier.openCheckpoint({ note: saved[0]!, vkey });
      await refusedWith(verifier.verifyLog({ registry, vkey, since: saved[0]!, fetch: flipped }), `the registry's checkpoint of size ${latest.size} does not extend the saved checkpoint of size ${first.size}: the consistency proof does not verify`);
    });

    it("another index's inclusion proof, served as the one asked for", async () => {
      const event = events[2]!;
      const other = tampering({
        path: '/proof/inclusion',
        url: (url) => {
          const asked = new URL(url);
          asked.searchParams.set('seq', String(event.seq + 1));
          return asked;
        },
        body: (body) => JSON.stringify({ ...(JSON.parse(body) as object), seq: event.seq }),
      });
      await refusedWith(verifier.verifyLog({ registry, vkey, events: [event], fetch: other }), `event seq ${event.seq} is not included in the checkpoint of size ${latest.size}: the inclusion proof does not verify`);
    });

    it('a checkpoint signed by another key under the log’s name, or with the log’s key id and another key’s signature', async () => {
      const { privateKey: otherKey } = generateKeyPairSync('ed25519');
      const otherNote = signNote({ text: latest.text, name: ORIGIN, privateKey: otherKey });
      const served = (note: string) => tampering({ path: '/audit/checkpoint', body: () => note });
      const keyId = vkey.split('+')[1]!;
      expect(await refusal([], served(otherNote))).toEqual({ status: 1, stderr: `REFUSED: the registry's checkpoint has no signature by the log's key ${ORIGIN}+${keyId}\n` });
      const forged = signNote({ text: latest.text, name: ORIGIN, privateKey: otherKey, keyIdOf: logKey });
      expect(await refusal([], served(forged))).toEqual({ status: 1, stderr: `REFUSED: the registry's checkpoint's signature by ${ORIGIN} does not verify\n` });
    });

    it('an event edited after the fact: its hash no longer matches, or re-hashed, it is not the leaf the log holds', async () => {
      const event = events[6]!;
      const edited: AuditEventJson = { ...event, data: { ...event.data, amount: 1250 } };
      await refusedWith(verifier.verifyLog({ registry, vkey, events: [edited] }), `event seq ${event.seq}: its hash does not match its content`);
      const { hash: _old, ...body } = edited;
      const canonical = (value: unknown): string =>
        value === null || typeof value !== 'object'
          ? JSON.stringify(value)
          : Array.isArray(value)
            ? `[${value.map(canonical).join(',')}]`
            : `{${Object.keys(value).sort().map((name) => `${JSON.stringify(name)}:${canonical((value as Record<string, unknown>)[name])}`).join(',')}}`;
      const rehashed = { ...edited, hash: createHash('sha256').update(Buffer.from(event.prev_hash as string, 'hex')).update(canonical(body)).digest('hex') };
      await refusedWith(verifier.verifyLog({ registry, vkey, events: [rehashed] }), `event seq ${event.seq} is not included in the checkpoint of size ${latest.size}: the inclusion proof does not verify`);
    });

    it('an old checkpoint whose root was altered: its signature fails, and re-signed with the log key it is not extended', async () => {
      const first = verifier.openCheckpoint({ note: saved[0]!, vkey });
      const otherRoot = createHash('sha256').update('another history').digest();
      const altered = saved[0]!.replace(first.root.toString('base64'), otherRoot.toString('base64'));
      await refusedWith(verifier.verifyLog({ registry, vkey, since: altered }), `the saved checkpoint's signature by ${ORIGIN} does not verify`);
      // The log's own key signing another history at the old size (a fork the log shows to someone).
      const resigned = signNote({ text: withRoot(first, otherRoot), name: ORIGIN, privateKey: logKey });
      expect(verifier.openCheckpoint({ note: resigned, vkey }).root).toEqual(otherRoot);
      await refusedWith(verifier.verifyLog({ registry, vkey, since: resigned }), `the registry's checkpoint of size ${latest.size} does not extend the saved checkpoint of size ${first.size}: the consistency proof does not verify`);
    });

    it('a registry whose checkpoint went back below the saved one', async () => {
      const earlier = verifier.openCheckpoint({ note: saved[1]!, vkey });
      const back = tampering({ path: '/audit/checkpoint', body: () => saved[0]! });
      const first = verifier.openCheckpoint({ note: saved[0]!, vkey });
      await refusedWith(verifier.verifyLog({ registry, vkey, since: saved[1]!, fetch: back }), `the registry's checkpoint has size ${first.size}, below the saved checkpoint of size ${earlier.size}: seq ${first.size + 1} is missing`);
    });
  });
});

describe('the independent verifier and the published test vectors (docs/audit-vectors/vectors.json)', () => {
  interface Vectors {
    events: AuditEventJson[];
    leaf_hashes: string[];
    roots: { size: number; hex: string; base64: string }[];
    inclusion: { seq: number; leaf_index: number; tree_size: number; leaf_hash: string; root: string; proof: string[] };
    consistency: { old_size: number; new_size: number; old_root: string; new_root: string; proof: string[] };
    log: { origin: string; vkey: string; checkpoint_text: string; checkpoint_note: string };
    witness: { vkey: string; time: number; cosignature_line: string; cosigned_note: string };
  }
  const vectors = JSON.parse(readFileSync(VECTORS, 'utf8')) as Vectors;
  const base64 = (text: string) => Buffer.from(text, 'base64');
  let verifier: VerifyLogModule;

  beforeAll(async () => {
    verifier = (await import(VERIFY_LOG)) as VerifyLogModule;
  });

  it("agrees with every event hash, leaf hash and root, and with the proofs at each published size", () => {
    expect(() => verifier.checkChain(vectors.events)).not.toThrow();
    const leaves = vectors.events.map((event) => verifier.leafHash(event.hash));
    expect(leaves.map((leaf) => leaf.toString('hex'))).toEqual(vectors.leaf_hashes);
    for (const root of vectors.roots) expect(verifier.merkleRoot(leaves.slice(0, root.size)).toString('base64')).toBe(root.base64);
    const { inclusion, consistency } = vectors;
    expect(verifier.verifyInclusion({ leafHash: Buffer.from(inclusion.leaf_hash, 'hex'), index: inclusion.leaf_index, size: inclusion.tree_size, proof: verifier.parseProof(inclusion.proof)!, root: base64(inclusion.root) })).toBe(true);
    expect(verifier.verifyInclusion({ leafHash: Buffer.from(inclusion.leaf_hash, 'hex'), index: inclusion.leaf_index + 1, size: inclusion.tree_size, proof: verifier.parseProof(inclusion.proof)!, root: base64(inclusion.root) })).toBe(false);
    expect(verifier.verifyConsistency({ oldSize: consistency.old_size, newSize: consistency.new_size, oldRoot: base64(consistency.old_root), newRoot: base64(consistency.new_root), proof: verifier.parseProof(consistency.proof)! })).toBe(true);
    expect(verifier.verifyConsistency({ oldSize: consistency.old_size + 1, newSize: consistency.new_size, oldRoot: base64(consistency.old_root), newRoot: base64(consistency.new_root), proof: verifier.parseProof(consistency.proof)! })).toBe(false);
  });

  it("opens the log's signed checkpoint with its vkey and checks the witness's cosignature and its time", () => {
    const checkpoint = verifier.openCheckpoint({ note: vectors.witness.cosigned_note, vkey: vectors.log.vkey });
    expect(checkpoint).toMatchObject({ origin: vectors.log.origin, size: 7, text: vectors.log.checkpoint_text });
    expect(checkpoint.root.toString('base64')).toBe(vectors.roots[7]!.base64);
    expect(verifier.verifyCosignature({ checkpointText: vectors.log.checkpoint_text, line: vectors.witness.cosignature_line, vkey: vectors.witness.vkey })).toBe(vectors.witness.time);
    expect(() => verifier.verifyCosignature({ checkpointText: vectors.log.checkpoint_text.replace('\n7\n', '\n6\n'), line: vectors.witness.cosignature_line, vkey: vectors.witness.vkey })).toThrow('the cosignature by witness.example/w1 does not verify');
  });
});
