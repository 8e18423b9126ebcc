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
  prev_hash: string;
  hash: string;
  data: Record<string, unknown>;
  [member: string]: unknown;
}
type Fetch = typeof fetch;
interface VerifyLogModule {
  VerifyError: new (message: string) => Error;
  UsageError: new (message: string) => Error;
  parseVkey(options: { vkey: string; type?: number }): { name: string; id: Buffer; type: number; publicKey: Buffer };
  eventHash(event: unknown): string;
  verifyLog(options: { registry: string; vkey: string; witnesses?: string[]; since?: string; events?: AuditEventJson[]; fetch?: Fetch }): Promise<{ lines: string[]; checkpoint: Checkpoint }>;
  openCheckpoint(options: { note: string | Uint8Array; vkey: string }): Checkpoint;
  verifyCosignature(options: { checkpointText: string; line: string; vkey: string }): number;
  requireCosignatures(options: { checkpoint: Checkpoint; witnesses: string[] }): string[];
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

/** A proof answer whose first hash lost its base64 padding (not canonical base64). */
function flipPadding(body: string): string {
  const answer = JSON.parse(body) as { proof: string[] };
  answer.proof[0] = answer.proof[0]!.replace(/=+$/, '');
  return JSON.stringify(answer);
}

/** A C2SP signed note of `text` by an Ed25519 key under `name`, written here with node:crypto. */
function signNote(options: { text: string; name: string; privateKey: KeyObject; keyIdOf?: KeyObject }): string {
  const idKey = createPublicKey(options.keyIdOf ?? options.privateKey).export({ format: 'jwk' }).x!;
  const id = createHash('sha256').update(options.name).update(Buffer.from([0x0a, 0x01])).update(Buffer.from(idKey, 'base64url')).digest().subarray(0, 4);
  const signature = sign(null, Buffer.from(options.text), options.privateKey);
  return `${options.text}\n\u2014 ${options.name} ${Buffer.concat([id, signature]).toString('base64')}\n`;
}

/** RFC 8785 text of a JSON value, written here apart from the verifier's, to forge events with. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const object = value as Record<string, unknown>;
  return `{${Object.keys(object).sort().map((name) => `${JSON.stringify(name)}:${canonical(object[name])}`).join(',')}}`;
}

/** An event given the hash of its (changed) content, as a forger who recomputes it would. */
function rehashed(event: AuditEventJson): AuditEventJson {
  const { hash: _old, ...body } = event;
  return { ...event, hash: createHash('sha256').update(Buffer.from(event.prev_hash, 'hex')).update(canonical(body)).digest('hex') };
}

/** The C2SP verifier key of an Ed25519 key under `name`: `<name>+<key id>+<base64(type || key)>`. */
function vkeyOf(name: string, privateKey: KeyObject, type = 0x01): string {
  const key = Buffer.concat([Buffer.from([type]), Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url')]);
  const id = createHash('sha256').update(name).update(Buffer.from([0x0a])).update(key).digest().subarray(0, 4);
  return `${name}+${id.toString('hex')}+${key.toString('base64')}`;
}

/** A C2SP tlog-cosignature line (cosignature/v1) by a witness key, over `text`, written here with node:crypto. */
function cosign(options: { text: string; name: string; privateKey: KeyObject; time: number }): string {
  const vkey = vkeyOf(options.name, options.privateKey, 0x04);
  const id = Buffer.from(vkey.split('+')[1]!, 'hex');
  const time = Buffer.alloc(8);
  time.writeBigUInt64BE(BigInt(options.time));
  const signature = sign(null, Buffer.from(`cosignature/v1\ntime ${options.time}\n${options.text}`), options.privateKey);
  return `\u2014 ${options.name} ${Buffer.concat([id, time, signature]).toString('base64')}\n`;
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

  it("verifies the registry's proofs between every two sizes up to 12 and from every size to the latest, against roots it computes from the events", async () => {
    const leaves = events.map((event) => verifier.leafHash(event.hash));
    const roots = leaves.map((_leaf, i) => verifier.merkleRoot(leaves.slice(0, i + 1)));
    expect(roots.at(-1)).toEqual(latest.root);
    const proofOf = async (path: string) => verifier.parseProof(((await (await fetch(`${registry}/audit/proof/${path}`)).json()) as { proof: unknown }).proof)!;
    // Every tree shape up to 12 leaves (old sizes 1, 2, 4 and 8 are RFC 9162's power-of-two case);
    // consistency to the latest size too, whose inclusion proofs the first test checks.
    const shapes = Array.from({ length: 12 }, (_, i) => i + 1);
    for (const size of shapes) {
      for (let seq = 1; seq <= size; seq++) {
        const proof = await proofOf(`inclusion?seq=${seq}&size=${size}`);
        expect(verifier.verifyInclusion({ leafHash: leaves[seq - 1]!, index: seq - 1, size, proof, root: roots[size - 1]! }), `seq ${seq} in size ${size}`).toBe(true);
      }
    }
    for (const size of [...shapes, events.length]) {
      for (let from = 1; from < size; from++) {
        const proof = await proofOf(`consistency?from=${from}&to=${size}`);
        expect(verifier.verifyConsistency({ oldSize: from, newSize: size, oldRoot: roots[from - 1]!, newRoot: roots[size - 1]!, proof }), `from ${from} to ${size}`).toBe(true);
      }
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
      await refusedWith(verifier.verifyLog({ registry, vkey, events: [rehashed(edited)] }), `event seq ${event.seq} is not included in the checkpoint of size ${latest.size}: the inclusion proof does not verify`);
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

    it.each([
      ['not JSON', (_body: string) => 'proof', 'is not JSON'],
      ['for another seq', (body: string) => JSON.stringify({ ...(JSON.parse(body) as object), seq: 2 }), 'answers seq 2, not 1'],
      ['for another size', (body: string) => JSON.stringify({ ...(JSON.parse(body) as object), size: 1 }), 'answers size 1, not SIZE'],
      ['with no proof', (body: string) => JSON.stringify({ ...(JSON.parse(body) as object), proof: undefined }), 'is not a JSON array of at most 64 base64 SHA-256 hashes'],
      ['with 65 hashes', (body: string) => JSON.stringify({ ...(JSON.parse(body) as object), proof: Array<string>(65).fill(Buffer.alloc(32).toString('base64')) }), 'is not a JSON array of at most 64 base64 SHA-256 hashes'],
      ['with a hash in base64 without its padding', (body: string) => flipPadding(body), 'is not a JSON array of at most 64 base64 SHA-256 hashes'],
      ['with a hash of 31 bytes', (body: string) => JSON.stringify({ ...(JSON.parse(body) as object), proof: [Buffer.alloc(31).toString('base64')] }), 'is not a JSON array of at most 64 base64 SHA-256 hashes'],
      ['over 64 KiB', (_body: string) => ' '.repeat(65 * 1024), 'is over 65536 bytes'],
    ])('an inclusion proof answer %s', async (_name, change, reason) => {
      const served = tampering({ path: '/proof/inclusion', body: change });
      await refusedWith(verifier.verifyLog({ registry, vkey, events: [events[0]!], fetch: served }), `the inclusion proof of seq 1 in size ${latest.size} ${reason.replace('SIZE', String(latest.size))}`);
    });

    it('an event past the checkpoint', async () => {
      const beyond = rehashed({ ...events.at(-1)!, seq: latest.size + 1, prev_hash: events.at(-1)!.hash });
      await refusedWith(verifier.verifyLog({ registry, vkey, events: [beyond] }), `event seq ${latest.size + 1} is past the checkpoint of size ${latest.size}`);
    });

    it('a registry that cannot be checked: a checkpoint it does not serve, exit status 2', async () => {
      const missing = tampering({ path: '/audit/checkpoint', url: (url) => new URL('/audit/no-such-route', url) });
      expect(await refusal([], missing)).toEqual({ status: 2, stderr: "verify-log: the registry answered 404 for the registry's checkpoint\n" });
    });

    it('a checkpoint without the cosignature of a witness asked for, or with one that does not verify', async () => {
      const { privateKey: witnessKey } = generateKeyPairSync('ed25519');
      const witness = vkeyOf('witness.writ.test/w1', witnessKey, 0x04);
      const time = 1_796_083_200;
      const served = (line: string) => tampering({ path: '/audit/checkpoint', body: (note) => `${note}${line}` });
      const good = cosign({ text: latest.text, name: 'witness.writ.test/w1', privateKey: witnessKey, time });
      const { lines } = await verifier.verifyLog({ registry, vkey, witnesses: [witness], fetch: served(good) });
      expect(lines[1]).toBe('cosigned: by the witness witness.writ.test/w1 at 2026-12-01T00:00:00.000Z');
      expect(await refusal(['--witness', witness])).toEqual({ status: 1, stderr: `REFUSED: the registry's checkpoint has no cosignature by the witness witness.writ.test/w1+${witness.split('+')[1]!}\n` });
      const otherSize = cosign({ text: withRoot({ ...latest, size: latest.size - 1 }, latest.root), name: 'witness.writ.test/w1', privateKey: witnessKey, time });
      await refusedWith(verifier.verifyLog({ registry, vkey, witnesses: [witness], fetch: served(otherSize) }), 'the cosignature by witness.writ.test/w1 does not verify');
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
    expect(verifier.requireCosignatures({ checkpoint, witnesses: [vectors.witness.vkey] })).toEqual([`cosigned: by the witness witness.example/w1 at ${new Date(vectors.witness.time * 1000).toISOString()}`]);
    expect(() => verifier.verifyCosignature({ checkpointText: vectors.log.checkpoint_text.replace('\n7\n', '\n6\n'), line: vectors.witness.cosignature_line, vkey: vectors.witness.vkey })).toThrow('the cosignature by witness.example/w1 does not verify');
  });
});

describe('the independent verifier refuses malformed input at its edge, with the exact reason', () => {
  let verifier: VerifyLogModule;
  const { privateKey } = generateKeyPairSync('ed25519');
  const name = 'log.example/audit';
  const vkey = vkeyOf(name, privateKey);
  const root = Buffer.alloc(32, 7).toString('base64');
  const note = (text: string) => signNote({ text, name, privateKey });
  const vectors = JSON.parse(readFileSync(VECTORS, 'utf8')) as { events: AuditEventJson[]; log: { checkpoint_text: string }; witness: { vkey: string; cosignature_line: string } };

  beforeAll(async () => {
    verifier = (await import(VERIFY_LOG)) as VerifyLogModule;
  });

  const thrown = (run: () => unknown): Error => {
    try {
      run();
    } catch (error) {
      return error as Error;
    }
    throw new Error('it did not throw');
  };

  it.each([
    ['no + at all', 'log.example/audit', 'the vkey is not <name>+<key id>+<base64 key>'],
    ['an empty name', `+${vkey.split('+').slice(1).join('+')}`, 'the vkey has no name, or a name with spaces'],
    ['a key id in upper case', vkey.replace(/\+[0-9a-f]{8}\+/, (id) => id.toUpperCase()), "the vkey's key id is not 8 lowercase hex digits"],
    ['another key type', vkey.replace(/\+A/, '+B'), 'the vkey is not a key of type 0x01 with a 32-byte Ed25519 public key'],
    ['a key id of another key', vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+'), "the vkey's key id does not match its name and key"],
    ['the log key type where a witness key (0x04) is asked for', `witness:${vkey}`, 'the vkey is not a key of type 0x04 with a 32-byte Ed25519 public key'],
  ])('a vkey with %s', (_name, given, message) => {
    const witness = given.startsWith('witness:');
    const bad = given.replace(/^witness:/, '');
    const error = thrown(() => verifier.parseVkey({ vkey: bad, ...(witness ? { type: 0x04 } : {}) }));
    expect(error).toBeInstanceOf(verifier.UsageError);
    expect(error.message).toBe(message);
  });

  it.each([
    ['over 1 MiB', `${name}\n1\n${root}\n${'x'.repeat(1024 * 1024)}\n\n— x AAAAAAAA\n`, 'the note is over 1 MiB'],
    ['not UTF-8', Buffer.concat([Buffer.from(`${name}\n1\n${root}\n`), Buffer.from([0xff]), Buffer.from('\n\n— x AAAAAAAA\n')]), 'the note is not valid UTF-8'],
    ['a lone surrogate', `${name}\n1\n${root}\n\ud800\n\n— x AAAAAAAA\n`, 'the note is not valid UTF-8'],
    ['a carriage return', note(`${name}\r\n1\n${root}\n`), 'the note holds a control character other than newline'],
    ['no blank line', `${name}\n1\n${root}\n— x AAAAAAAA\n`, 'the note has no blank line before its signatures, or does not end with a newline'],
    ['101 signature lines', `${name}\n1\n${root}\n\n${'— x AAAAAAAA\n'.repeat(101)}`, 'the note has more than 100 signature lines'],
    ['a signature line with a hyphen for its dash', note(`${name}\n1\n${root}\n`).replace('—', '-'), 'the note has a malformed signature line'],
    ['a signature of four bytes', `${name}\n1\n${root}\n\n— ${name} AAAAAA==\n`, 'the note has a malformed signature line'],
    ['a size with a leading zero', note(`${name}\n01\n${root}\n`), 'the checkpoint is not a tlog-checkpoint: origin, size, base64 root hash'],
    ['a root of 31 bytes', note(`${name}\n1\n${Buffer.alloc(31).toString('base64')}\n`), 'the checkpoint is not a tlog-checkpoint: origin, size, base64 root hash'],
    ['another origin than its key name', note(`other.example/audit\n1\n${root}\n`), "the checkpoint's origin other.example/audit is not the log's log.example/audit"],
  ])('a checkpoint note with %s', (_name, bad, message) => {
    const error = thrown(() => verifier.openCheckpoint({ note: bad, vkey }));
    expect(error).toBeInstanceOf(verifier.VerifyError);
    expect(error.message).toBe(message);
  });

  it('opens a well-formed note of its key, ignoring another key\'s line, and reads its size and root', () => {
    const other = signNote({ text: `${name}\n1\n${root}\n`, name: 'someone.else', privateKey: generateKeyPairSync('ed25519').privateKey });
    const both = `${note(`${name}\n1\n${root}\n`)}${other.slice(other.lastIndexOf('\n—') + 1)}`;
    expect(verifier.openCheckpoint({ note: both, vkey })).toMatchObject({ origin: name, size: 1, text: `${name}\n1\n${root}\n` });
  });

  const event = vectors.events[2]!;
  it.each([
    ['a JSON array', [event], 'it is not a JSON object'],
    ['a member the format does not have', { ...event, extra: 1 }, 'it has a member "extra" the format does not have'],
    ['no txn', { ...event, txn: undefined }, 'it has no "txn"'],
    ['seq 0', { ...event, seq: 0 }, 'seq is not a whole number from 1'],
    ['an id of 129 characters', { ...event, id: 'e'.repeat(129) }, 'id is not a string of 1 to 128 characters'],
    ['a date without its zone', { ...event, at: '2026-12-01T09:00:02' }, 'at is not an RFC 3339 date-time'],
    ['a type of 65 characters', { ...event, type: 't'.repeat(65) }, 'type is not a string of 1 to 64 characters'],
    ['a number for its actor', { ...event, actor: 7 }, 'actor is neither a string nor null'],
    ['an array for its data', { ...event, data: [] }, 'data is not a JSON object'],
    ['a prev_hash in upper case', { ...event, prev_hash: event.prev_hash.toUpperCase() }, 'prev_hash is not 64 lowercase hex digits'],
    ['a hash of 63 digits', { ...event, hash: event.hash.slice(1) }, 'hash is not 64 lowercase hex digits'],
  ])('an event with %s', (_name, bad, reason) => {
    const candidate = JSON.parse(JSON.stringify(bad)) as unknown;
    const error = thrown(() => verifier.eventHash(candidate));
    expect(error).toBeInstanceOf(verifier.VerifyError);
    expect(error.message).toBe(`the event is not an audit event: ${reason}`);
  });

  it('an event whose data holds a lone surrogate, which RFC 8785 cannot write', () => {
    expect(thrown(() => verifier.eventHash({ ...event, data: { note: '\ud800' } })).message).toBe('the event holds a string with a lone surrogate');
  });

  it("a cosignature line by another witness than the vkey's", () => {
    const line = vectors.witness.cosignature_line.replace('witness.example/w1', 'witness.example/w2');
    expect(thrown(() => verifier.verifyCosignature({ checkpointText: vectors.log.checkpoint_text, line, vkey: vectors.witness.vkey })).message).toBe('the cosignature is not a line by the witness witness.example/w1');
  });

  it.each([
    ['no --vkey', ['--registry', 'http://127.0.0.1:9'], 'usage: verify-log.mjs --registry <url> --vkey <log vkey> [--witness <witness vkey>]... [--since <saved checkpoint file>] [--event <event json file>]...'],
    ['an unknown option', ['--registry', 'http://127.0.0.1:9', '--vkey', vkey, '--full'], "Unknown option '--full'"],
    ['a registry that is not an http(s) URL', ['--registry', 'file:///etc', '--vkey', vkey], '--registry is not an http(s) URL'],
    ['a saved checkpoint it cannot read', ['--registry', 'http://127.0.0.1:9', '--vkey', vkey, '--since', '/nonexistent/saved.txt'], 'cannot read the saved checkpoint /nonexistent/saved.txt'],
    ['an event file that is not JSON', ['--registry', 'http://127.0.0.1:9', '--vkey', vkey, '--event', VERIFY_LOG], `the event file ${VERIFY_LOG} is not JSON`],
  ])('a command line with %s: exit status 2, nothing checked', async (_name, argv, message) => {
    let stderr = '';
    const status = await verifier.main({ argv, stdout: { write: () => true }, stderr: { write: (text) => (stderr += text) }, fetch: () => Promise.reject(new Error('no fetch expected')) });
    expect(status).toBe(2);
    expect(stderr.startsWith(`verify-log: ${message}`)).toBe(true);
  });
});
