import { createPrivateKey, createPublicKey, generateKeyPairSync, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../encoding.js';
import { decodeBase64, encodeBase64 } from './base64.js';
import { merkleLeafHash } from './merkle.js';
import {
  cosignCheckpoint,
  formatCheckpoint,
  formatVerifierKey,
  NoteError,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  signNote,
  verifyCosignature,
  type NodeEd25519KeyObject,
  type NoteErrorCode,
} from './note.js';

// golang.org/x/mod/sumdb/note's example (note.go's package doc and note_test.go): a key whose
// private half is published, the text, and the note Go signs with it.
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_SKEY_MATERIAL = 'AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_NOTE = `${PETER_TEXT}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;

/** Node's private key from a 32-byte Ed25519 seed (PKCS #8 wrapping of RFC 8410). */
function seedKey(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
}
const rawPublic = (key: KeyObject): Uint8Array => new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32));
const peterPrivate = seedKey(decodeBase64(PETER_SKEY_MATERIAL)!.subarray(1));

const freshKey = () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: rawPublic(privateKey) };
};

/** Asserts that `action` fails with a NoteError of exactly `code`. */
async function expectCode(action: () => unknown, code: NoteErrorCode): Promise<void> {
  let caught: unknown;
  try {
    await action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(NoteError);
  expect((caught as NoteError).code).toBe(code);
}

describe('verifier keys (signed-note key ids, sumdb/note vkeys)', () => {
  it('parses the PeterNeumann key and formats it back the same', () => {
    const key = parseVerifierKey(PETER_VKEY);
    expect(key).toMatchObject({ name: 'PeterNeumann', type: 0x01 });
    expect(toHex(key.keyId)).toBe('c74f20a3');
    expect(toHex(key.publicKey)).toBe(toHex(rawPublic(peterPrivate)));
    expect(formatVerifierKey({ name: 'PeterNeumann', publicKey: key.publicKey })).toBe(PETER_VKEY);
  });

  it('parses a key whose base64 holds a "+" (transparency-dev/formats TEST key)', () => {
    expect(parseVerifierKey('TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6').name).toBe('TEST');
  });

  it('parses a witness key of type 0x04 (remora.n621.de)', () => {
    expect(parseVerifierKey('remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2').type).toBe(0x04);
  });

  it.each([
    ['no parts', 'PeterNeumann'],
    ['two parts', 'PeterNeumann+c74f20a3'],
    ['an empty name', '+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'],
    ['a name with a space', 'Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'],
    ['an uppercase key id', 'PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'],
    ['a short key id', 'PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'],
    ['a wrong key id', 'PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'],
    ['another name for the key id', 'PaulNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'],
    ['non-canonical base64', 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX'],
    ['base64url', 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW'],
    ['a key of 31 bytes', `PeterNeumann+c74f20a3+${encodeBase64(new Uint8Array(32).fill(1))}`],
    ['an unsupported type', `x+00000000+${encodeBase64(Uint8Array.of(0x02, ...new Uint8Array(32)))}`],
    ['a huge string', `PeterNeumann+c74f20a3+${'A'.repeat(4096)}`],
  ])('refuses a verifier key with %s', async (_, vkey) => {
    await expectCode(() => parseVerifierKey(vkey), 'malformed_verifier_key');
  });

  it('refuses to format a key with a bad name or a public key of the wrong length', async () => {
    await expectCode(() => formatVerifierKey({ name: 'a+b', publicKey: new Uint8Array(32) }), 'malformed_key_name');
    await expectCode(() => formatVerifierKey({ name: 'a b', publicKey: new Uint8Array(32) }), 'malformed_key_name');
    await expectCode(() => formatVerifierKey({ name: '', publicKey: new Uint8Array(32) }), 'malformed_key_name');
    await expectCode(() => formatVerifierKey({ name: 'ok', publicKey: new Uint8Array(31) }), 'malformed_verifier_key');
  });
});

describe('signed notes (c2sp.org/signed-note)', () => {
  it('opens the Go example note with the PeterNeumann key', async () => {
    await expect(openNote({ note: PETER_NOTE, verifiers: [PETER_VKEY] })).resolves.toEqual({ text: PETER_TEXT, verifiedBy: [PETER_VKEY] });
  });

  it('signs the Go example note byte for byte, with a Node KeyObject and with a Web Crypto key', async () => {
    expect(await signNote({ text: PETER_TEXT, name: 'PeterNeumann', privateKey: peterPrivate })).toBe(PETER_NOTE);
    const cryptoKey = await crypto.subtle.importKey('jwk', peterPrivate.export({ format: 'jwk' }), { name: 'Ed25519' }, true, ['sign']);
    expect(await signNote({ text: PETER_TEXT, name: 'PeterNeumann', privateKey: cryptoKey })).toBe(PETER_NOTE);
  });

  it('signs with a non-extractable Web Crypto key when its public key is given, and refuses without', async () => {
    const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']));
    const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    const note = await signNote({ text: 'hello\n', name: 'example.com/k', privateKey: pair.privateKey, publicKey });
    const vkey = formatVerifierKey({ name: 'example.com/k', publicKey });
    await expect(openNote({ note, verifiers: [vkey] })).resolves.toEqual({ text: 'hello\n', verifiedBy: [vkey] });
    await expectCode(() => signNote({ text: 'hello\n', name: 'example.com/k', privateKey: pair.privateKey }), 'unusable_key');
  });

  it('imports a KeyObject once for every signature it makes, and again after an import that failed', async () => {
    let exports = 0;
    const counted: NodeEd25519KeyObject = {
      type: 'private',
      asymmetricKeyType: 'ed25519',
      export: (options) => {
        exports += 1;
        return peterPrivate.export(options);
      },
    };
    // Signatures made together share one import.
    const together = await Promise.all([1, 2, 3].map(() => signNote({ text: PETER_TEXT, name: 'PeterNeumann', privateKey: counted })));
    expect(together).toEqual([PETER_NOTE, PETER_NOTE, PETER_NOTE]);
    expect(await signNote({ text: PETER_TEXT, name: 'PeterNeumann', privateKey: counted })).toBe(PETER_NOTE);
    const cosignature = await cosignCheckpoint({ checkpointText: 'o\n1\n' + encodeBase64(new Uint8Array(32)) + '\n', name: 'PeterNeumann', privateKey: counted, time: 1 });
    expect(cosignature.startsWith('\u2014 PeterNeumann ')).toBe(true);
    expect(exports).toBe(1);
    // A public key given still names the key, as before.
    const other = freshKey().publicKey;
    const note = await signNote({ text: PETER_TEXT, name: 'PeterNeumann', privateKey: counted, publicKey: other });
    await expectCode(() => openNote({ note, verifiers: [formatVerifierKey({ name: 'PeterNeumann', publicKey: other })] }), 'bad_signature');
    expect(exports).toBe(1);
    // A failed import is not kept.
    let attempts = 0;
    const broken: NodeEd25519KeyObject = {
      type: 'private',
      asymmetricKeyType: 'ed25519',
      export: () => {
        attempts += 1;
        return {};
      },
    };
    await expectCode(() => signNote({ text: 'a\n', name: 'n', privateKey: broken }), 'unusable_key');
    await expectCode(() => signNote({ text: 'a\n', name: 'n', privateKey: broken }), 'unusable_key');
    expect(attempts).toBe(2);
  });

  it('refuses to sign with a key that is not an Ed25519 private key', async () => {
    const { privateKey: p256 } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await expectCode(() => signNote({ text: 'a\n', name: 'n', privateKey: p256 }), 'unusable_key');
    await expectCode(() => signNote({ text: 'a\n', name: 'n', privateKey: createPublicKey(peterPrivate) }), 'unusable_key');
    const verifyOnly = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']));
    await expectCode(() => signNote({ text: 'a\n', name: 'n', privateKey: verifyOnly.publicKey }), 'unusable_key');
  });

  it('refuses to sign text that does not end in a newline, has a control character, or a bad name', async () => {
    await expectCode(() => signNote({ text: 'no newline', name: 'n', privateKey: peterPrivate }), 'malformed_note');
    await expectCode(() => signNote({ text: 'tab\there\n', name: 'n', privateKey: peterPrivate }), 'malformed_note');
    await expectCode(() => signNote({ text: 'a\n', name: 'two words', privateKey: peterPrivate }), 'malformed_key_name');
  });

  it('ignores signatures by unknown keys, even one sharing the name or the key id of a trusted key', async () => {
    const other = freshKey();
    const sameName = await signNote({ text: PETER_TEXT, name: 'PeterNeumann', privateKey: other.privateKey });
    const sameNameLine = sameName.slice(PETER_TEXT.length + 1);
    const sameIdLine = PETER_NOTE.slice(PETER_TEXT.length + 1).replace('PeterNeumann', 'PaulNeumann');
    const note = `${PETER_TEXT}\n${sameNameLine}${sameIdLine}${PETER_NOTE.slice(PETER_TEXT.length + 1)}`;
    await expect(openNote({ note, verifiers: [PETER_VKEY] })).resolves.toEqual({ text: PETER_TEXT, verifiedBy: [PETER_VKEY] });
  });

  it('reports every trusted key that signed, in the order the caller gave them', async () => {
    const second = freshKey();
    const secondVkey = formatVerifierKey({ name: 'second.example', publicKey: second.publicKey });
    const extra = await signNote({ text: PETER_TEXT, name: 'second.example', privateKey: second.privateKey });
    const note = PETER_NOTE + extra.slice(PETER_TEXT.length + 1);
    const opened = await openNote({ note, verifiers: [secondVkey, PETER_VKEY] });
    expect(opened.verifiedBy).toEqual([secondVkey, PETER_VKEY]);
  });

  it('keeps blank lines in the text: the last blank line separates the signatures', async () => {
    const text = 'first\n\nthird\n';
    const note = await signNote({ text, name: 'PeterNeumann', privateKey: peterPrivate });
    await expect(openNote({ note, verifiers: [PETER_VKEY] })).resolves.toMatchObject({ text });
  });

  it('rejects the whole note when a trusted key signature fails (bad_signature)', async () => {
    await expectCode(() => openNote({ note: PETER_NOTE.replace('problem,', 'problem;'), verifiers: [PETER_VKEY] }), 'bad_signature');
    const sig = PETER_NOTE.slice(-90, -1);
    const tampered = PETER_NOTE.replace(sig, `${sig.slice(0, 20)}${sig[20] === 'A' ? 'B' : 'A'}${sig.slice(21)}`);
    await expectCode(() => openNote({ note: tampered, verifiers: [PETER_VKEY] }), 'bad_signature');
  });

  it('rejects a note with no signature by a trusted key (unknown_key)', async () => {
    const other = formatVerifierKey({ name: 'other.example', publicKey: freshKey().publicKey });
    await expectCode(() => openNote({ note: PETER_NOTE, verifiers: [other] }), 'unknown_key');
    await expectCode(() => openNote({ note: PETER_NOTE, verifiers: [] }), 'unknown_key');
  });

  const sigLine = PETER_NOTE.slice(PETER_TEXT.length + 1);
  it.each<[string, string, NoteErrorCode]>([
    ['no blank line', `${PETER_TEXT}${sigLine}`, 'malformed_note'],
    ['no final newline', PETER_NOTE.slice(0, -1), 'malformed_note'],
    ['no signature line', `${PETER_TEXT}\n`, 'malformed_note'],
    ['a NUL in the text', PETER_NOTE.replace('If', 'I\u0000f'), 'malformed_note'],
    ['a carriage return', PETER_NOTE.replace('problem,\n', 'problem,\r\n'), 'malformed_note'],
    ['a lone surrogate (not UTF-8)', PETER_NOTE.replace('If', 'I\ud800f'), 'malformed_note'],
    ['a hyphen for the em dash', PETER_NOTE.replace('\u2014', '-'), 'malformed_signature'],
    ['two spaces after the name', PETER_NOTE.replace('PeterNeumann ', 'PeterNeumann  '), 'malformed_signature'],
    ['a signature of four bytes', `${PETER_TEXT}\n\u2014 PeterNeumann ${encodeBase64(fromHex('c74f20a3'))}\n`, 'malformed_signature'],
    ['a signature not in base64', PETER_NOTE.replace('x08go/', 'x08go_'), 'malformed_signature'],
    ['an empty signature line', `${PETER_NOTE}\n`, 'malformed_note'],
    ['101 signature lines', `${PETER_TEXT}\n${sigLine.repeat(101)}`, 'too_many_signatures'],
    ['more than 1 MiB', `${'a'.repeat(1024 * 1024)}\n\n${sigLine}`, 'note_too_large'],
    ['more than 1 MiB of UTF-8 in fewer characters', `${'\u20ac'.repeat(400_000)}\n\n${sigLine}`, 'note_too_large'],
  ])('rejects a note with %s', async (_, note, code) => {
    await expectCode(() => openNote({ note, verifiers: [PETER_VKEY] }), code);
  });

  it('accepts 100 signature lines', async () => {
    await expect(openNote({ note: `${PETER_TEXT}\n${sigLine.repeat(100)}`, verifiers: [PETER_VKEY] })).resolves.toMatchObject({ text: PETER_TEXT });
  });

  it('rejects a note signed with a "+" in the key name of a signature line (malformed_signature)', async () => {
    await expectCode(() => openNote({ note: PETER_NOTE.replace('\u2014 PeterNeumann', '\u2014 Peter+Neumann'), verifiers: [PETER_VKEY] }), 'malformed_signature');
  });

  it('rejects a signature by a trusted key that Web Crypto cannot even import (bad_signature, not a crash)', async () => {
    // 0xff…ff is not the encoding of a curve point (its y is not below the field prime).
    const vkey = formatVerifierKey({ name: 'broken.example', publicKey: new Uint8Array(32).fill(0xff) });
    const { keyId } = parseVerifierKey(vkey);
    const note = `${PETER_TEXT}\n\u2014 broken.example ${encodeBase64(Uint8Array.of(...keyId, ...new Uint8Array(64).fill(1)))}\n`;
    await expectCode(() => openNote({ note, verifiers: [vkey] }), 'bad_signature');
  });

  it('refuses more than 100 verifier keys', async () => {
    await expectCode(() => openNote({ note: PETER_NOTE, verifiers: Array.from({ length: 101 }, () => PETER_VKEY) }), 'malformed_verifier_key');
  });

  it('refuses a given public key that is not 32 bytes (unusable_key)', async () => {
    await expectCode(() => signNote({ text: 'a\n', name: 'n', privateKey: peterPrivate, publicKey: new Uint8Array(31) }), 'unusable_key');
  });

  it('refuses a malformed verifier key before reading the note', async () => {
    await expectCode(() => openNote({ note: PETER_NOTE, verifiers: ['PeterNeumann+c74f20a3'] }), 'malformed_verifier_key');
  });
});

const ROOT = merkleLeafHash(new Uint8Array(0));
const CHECKPOINT = `writ.example/audit\n7\n${encodeBase64(ROOT)}\n`;

describe('checkpoints (c2sp.org/tlog-checkpoint)', () => {
  it('formats and parses origin, size and root, with and without extension lines', () => {
    expect(formatCheckpoint({ origin: 'writ.example/audit', size: 7, root: ROOT })).toBe(CHECKPOINT);
    expect(parseCheckpoint(CHECKPOINT)).toEqual({ origin: 'writ.example/audit', size: 7, root: ROOT });
    const extended = formatCheckpoint({ origin: 'o', size: 0, root: ROOT, extensions: ['ext one'] });
    expect(extended).toBe(`o\n0\n${encodeBase64(ROOT)}\next one\n`);
    expect(parseCheckpoint(extended)).toEqual({ origin: 'o', size: 0, root: ROOT, extensions: ['ext one'] });
    expect(parseCheckpoint(`o\n${2 ** 53 - 1}\n${encodeBase64(ROOT)}\n`).size).toBe(2 ** 53 - 1);
  });

  it('reads the checkpoint of the C2SP example', () => {
    const body = parseCheckpoint('example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n');
    expect(body).toMatchObject({ origin: 'example.com/behind-the-sofa', size: 20852163 });
  });

  const root64 = encodeBase64(ROOT);
  it.each([
    ['an empty origin', `\n7\n${root64}\n`],
    ['an origin with a space', `writ example\n7\n${root64}\n`],
    ['an origin with a no-break space', `writ\u00a0example\n7\n${root64}\n`],
    ['two lines', 'o\n7\n'],
    ['no final newline', `o\n7\n${root64}`],
    ['a size with a leading zero', `o\n07\n${root64}\n`],
    ['a negative size', `o\n-7\n${root64}\n`],
    ['a size with a sign', `o\n+7\n${root64}\n`],
    ['a size past 2^53 - 1', `o\n${2 ** 53}\n${root64}\n`],
    ['a size in hex', `o\n0x7\n${root64}\n`],
    ['a root of 31 bytes', `o\n7\n${encodeBase64(ROOT.subarray(1))}\n`],
    ['a root of 33 bytes', `o\n7\n${encodeBase64(Uint8Array.of(...ROOT, 0))}\n`],
    ['a root in base64url', `o\n7\n${root64.replace(/\+/g, '-').replace(/\//g, '_')}${root64.includes('+') || root64.includes('/') ? '' : '_'}\n`],
    ['a root without padding', `o\n7\n${root64.replace(/=+$/, '')}\n`],
    ['an empty extension line', `o\n7\n${root64}\n\n`],
    ['a tab', `o\n7\n${root64}\next\tension\n`],
  ])('refuses a checkpoint with %s (malformed_checkpoint)', async (_, text) => {
    await expectCode(() => parseCheckpoint(text), 'malformed_checkpoint');
  });

  it('refuses to format a checkpoint that could not be parsed back', async () => {
    await expectCode(() => formatCheckpoint({ origin: 'has space', size: 1, root: ROOT }), 'malformed_checkpoint');
    await expectCode(() => formatCheckpoint({ origin: 'o', size: -1, root: ROOT }), 'malformed_checkpoint');
    await expectCode(() => formatCheckpoint({ origin: 'o', size: 1.5, root: ROOT }), 'malformed_checkpoint');
    await expectCode(() => formatCheckpoint({ origin: 'o', size: 1, root: new Uint8Array(31) }), 'malformed_checkpoint');
    await expectCode(() => formatCheckpoint({ origin: 'o', size: 1, root: ROOT, extensions: ['two\nlines'] }), 'malformed_checkpoint');
    await expectCode(() => formatCheckpoint({ origin: 'o', size: 1, root: ROOT, extensions: [''] }), 'malformed_checkpoint');
  });

  it('opens a signed checkpoint whose log key is named after its origin', async () => {
    const log = freshKey();
    const vkey = formatVerifierKey({ name: 'writ.example/audit', publicKey: log.publicKey });
    const note = await signNote({ text: CHECKPOINT, name: 'writ.example/audit', privateKey: log.privateKey });
    const { text } = await openNote({ note, verifiers: [vkey] });
    expect(parseCheckpoint(text).size).toBe(7);
  });
});

describe('cosignatures (c2sp.org/tlog-cosignature, cosignature/v1)', () => {
  const witness = freshKey();
  const WITNESS = 'witness.example/w1';
  const vkey = formatVerifierKey({ name: WITNESS, publicKey: witness.publicKey, type: 0x04 });
  const TIME = 1_727_964_367;

  it('signs "cosignature/v1\\ntime <T>\\n" + the checkpoint, as key id, 8-byte big-endian time and signature', async () => {
    const line = await cosignCheckpoint({ checkpointText: CHECKPOINT, name: WITNESS, privateKey: witness.privateKey, time: TIME });
    expect(line.startsWith(`\u2014 ${WITNESS} `)).toBe(true);
    expect(line.endsWith('\n')).toBe(true);
    const payload = decodeBase64(line.slice(`\u2014 ${WITNESS} `.length, -1))!;
    expect(payload.length).toBe(4 + 8 + 64);
    expect(toHex(payload.subarray(0, 4))).toBe(toHex(parseVerifierKey(vkey).keyId));
    expect(toHex(payload.subarray(4, 12))).toBe(TIME.toString(16).padStart(16, '0'));
    // Checked with node:crypto directly, not through the code under test.
    const message = Buffer.from(`cosignature/v1\ntime ${TIME}\n${CHECKPOINT}`);
    expect(nodeVerify(null, message, createPublicKey(witness.privateKey), payload.subarray(12))).toBe(true);
    await expect(verifyCosignature({ checkpointText: CHECKPOINT, line, vkey })).resolves.toEqual({ time: TIME });
    await expect(verifyCosignature({ checkpointText: CHECKPOINT, line: line.slice(0, -1), vkey })).resolves.toEqual({ time: TIME });
  });

  it('is opened as a note signature by the witness key of type 0x04, and not by its type 0x01 key', async () => {
    const log = freshKey();
    const logVkey = formatVerifierKey({ name: 'writ.example/audit', publicKey: log.publicKey });
    const note = await signNote({ text: CHECKPOINT, name: 'writ.example/audit', privateKey: log.privateKey });
    const cosigned = note + (await cosignCheckpoint({ checkpointText: CHECKPOINT, name: WITNESS, privateKey: witness.privateKey, time: TIME }));
    await expect(openNote({ note: cosigned, verifiers: [logVkey, vkey] })).resolves.toEqual({ text: CHECKPOINT, verifiedBy: [logVkey, vkey] });
    const plainVkey = formatVerifierKey({ name: WITNESS, publicKey: witness.publicKey });
    await expectCode(() => openNote({ note: cosigned, verifiers: [plainVkey] }), 'unknown_key');
  });

  it('rejects a cosignature over another checkpoint, another time or by another key', async () => {
    const line = await cosignCheckpoint({ checkpointText: CHECKPOINT, name: WITNESS, privateKey: witness.privateKey, time: TIME });
    const other = formatCheckpoint({ origin: 'writ.example/audit', size: 8, root: ROOT });
    await expectCode(() => verifyCosignature({ checkpointText: other, line, vkey }), 'bad_signature');
    const payload = decodeBase64(line.slice(`\u2014 ${WITNESS} `.length, -1))!;
    payload[11]! ^= 1;
    await expectCode(() => verifyCosignature({ checkpointText: CHECKPOINT, line: `\u2014 ${WITNESS} ${encodeBase64(payload)}`, vkey }), 'bad_signature');
    const stranger = formatVerifierKey({ name: WITNESS, publicKey: freshKey().publicKey, type: 0x04 });
    await expectCode(() => verifyCosignature({ checkpointText: CHECKPOINT, line, vkey: stranger }), 'unknown_key');
    const plain = formatVerifierKey({ name: WITNESS, publicKey: witness.publicKey });
    await expectCode(() => verifyCosignature({ checkpointText: CHECKPOINT, line, vkey: plain }), 'malformed_verifier_key');
  });

  it('rejects a cosignature of the wrong length, a time past 2^53 - 1, or two lines', async () => {
    const keyId = parseVerifierKey(vkey).keyId;
    const short = `\u2014 ${WITNESS} ${encodeBase64(Uint8Array.of(...keyId, ...new Uint8Array(8 + 63)))}`;
    await expectCode(() => verifyCosignature({ checkpointText: CHECKPOINT, line: short, vkey }), 'malformed_cosignature');
    const late = `\u2014 ${WITNESS} ${encodeBase64(Uint8Array.of(...keyId, 0x00, 0x20, 0, 0, 0, 0, 0, 0, ...new Uint8Array(64)))}`;
    await expectCode(() => verifyCosignature({ checkpointText: CHECKPOINT, line: late, vkey }), 'malformed_cosignature');
    const line = await cosignCheckpoint({ checkpointText: CHECKPOINT, name: WITNESS, privateKey: witness.privateKey, time: TIME });
    await expectCode(() => verifyCosignature({ checkpointText: CHECKPOINT, line: line + line, vkey }), 'malformed_signature');
    await expectCode(() => verifyCosignature({ checkpointText: CHECKPOINT, line: 'garbage', vkey }), 'malformed_signature');
  });

  it('refuses to cosign anything but a checkpoint, or at a time that is not a whole number of seconds', async () => {
    await expectCode(() => cosignCheckpoint({ checkpointText: 'hello\n', name: WITNESS, privateKey: witness.privateKey, time: TIME }), 'malformed_checkpoint');
    await expectCode(() => cosignCheckpoint({ checkpointText: CHECKPOINT, name: WITNESS, privateKey: witness.privateKey, time: -1 }), 'malformed_cosignature');
    await expectCode(() => cosignCheckpoint({ checkpointText: CHECKPOINT, name: WITNESS, privateKey: witness.privateKey, time: 1.5 }), 'malformed_cosignature');
  });
});

describe('base64 (RFC 4648 §4)', () => {
  it('decodes canonical padded base64 only', () => {
    expect(decodeBase64('AQI=')).toEqual(Uint8Array.of(1, 2));
    expect(decodeBase64('AQJ=')).toBeUndefined();
    expect(decodeBase64('AQI')).toBeUndefined();
    expect(decodeBase64('AQ I=')).toBeUndefined();
    expect(decodeBase64('')).toEqual(new Uint8Array(0));
  });
});
