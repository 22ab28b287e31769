/**
 * The envelope test vectors (spec/vectors/envelope.json, PROTOCOL.md Appendix D.11):
 * fixed keys and fixed ephemeral keys, so every byte is reproducible. Positive vectors are
 * made by src/crypto; the deliberately broken ones by the reference encoder in helpers.ts.
 *
 * `node dist/spec/crypto/vectors.js --write` rewrites the JSON and prints the Markdown of the
 * vector section; the test (vectors.test.ts) fails if either copy drifts from the code.
 */
import { writeFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { openBox, sealBoxWithEphemeral } from '../../src/crypto/sealed-box.js';
import { open, sealWithEphemeral, type SealOptions } from '../../src/crypto/seal.js';
import type { KeyPair } from '../../src/crypto/keys.js';
import type { PosternError } from '../../src/protocol/errors.js';
import { counting, fixedKeyPair, hex, refEnvelope, refSealBox, unhex } from './helpers.js';

/** Where the JSON copy lives, from dist/spec/crypto or spec/crypto alike. */
export const VECTORS_JSON = fileURLToPath(new URL('../../../spec/vectors/envelope.json', import.meta.url));

/** One vector as stored in JSON. */
export interface EnvelopeVector {
  name: string;
  about: string;
  layer: 'sealed-box' | 'envelope';
  /** Which key pair of `keys` opens it (for the positive vectors, also the one it is sealed to). */
  recipient: string;
  ephemeralSecretKey: string;
  ephemeralPublicKey: string;
  /** Inputs of seal(), for the positive vectors. */
  seal?: { content: string; sender: boolean; senderId: string | null; recipientId: string | null; pad: boolean };
  /** The outer plaintext (what is inside the sealed box). */
  plain?: string;
  envelope: string;
  /** Options given to open(). */
  open: { recipientId: string | null };
  expect:
    | { content: string; senderId: string | null; senderPublicKey: string | null; recipientId: string | null; verified: boolean }
    | { error: string };
}

/** The whole JSON document. */
export interface EnvelopeVectors {
  description: string;
  keys: Record<string, { secretKey: string; publicKey: string }>;
  ids: Record<string, string>;
  vectors: EnvelopeVector[];
}

const kp = (sk: Uint8Array): KeyPair => fixedKeyPair(sk);
const eph = (b: number): KeyPair => kp(new Uint8Array(32).fill(b));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Builds every vector from the code as it is now. */
export function buildVectors(): EnvelopeVectors {
  const keys = {
    recipient: kp(counting(0x01)),
    sender: kp(counting(0x21)),
    other: kp(counting(0x61)),
    forger: kp(counting(0x81)),
  };
  const ids = {
    sender: unhex('0000000aa1a2a3a4a5a6a7a8a9aaabac'),
    recipient: unhex('0000000bb1b2b3b4b5b6b7b8b9babbbc'),
    other: unhex('0000000bc1c2c3c4c5c6c7c8c9cacbcc'),
  };
  const vectors: EnvelopeVector[] = [];
  const rpk = keys.recipient.publicKey;

  const expectOpen = (env: Uint8Array, to: KeyPair, openRid: Uint8Array | null): EnvelopeVector['expect'] => {
    try {
      const got = open(env, to, openRid === null ? {} : { recipientId: openRid });
      return {
        content: hex(got.content),
        senderId: got.sender?.id ? hex(got.sender.id) : null,
        senderPublicKey: got.sender ? hex(got.sender.publicKey) : null,
        recipientId: got.recipientId ? hex(got.recipientId) : null,
        verified: got.verified,
      };
    } catch (err) {
      const code = (err as PosternError).code;
      if (typeof code !== 'string') throw err;
      return { error: code };
    }
  };

  // 1. The bare sealed box, for checking crypto_box_seal compatibility alone.
  {
    const e = eph(0xe1);
    const m = utf8('postern');
    const sealed = sealBoxWithEphemeral(m, rpk, e);
    vectors.push({
      name: 'sealed-box',
      about: 'the outer layer alone: crypto_box_seal("postern") with a fixed ephemeral key',
      layer: 'sealed-box',
      recipient: 'recipient',
      ephemeralSecretKey: hex(e.secretKey),
      ephemeralPublicKey: hex(e.publicKey),
      plain: hex(m),
      envelope: hex(sealed),
      open: { recipientId: null },
      expect: { content: hex(m), senderId: null, senderPublicKey: null, recipientId: null, verified: false },
    });
  }

  const positive = (name: string, about: string, e: KeyPair, content: string, sender: boolean | 'no-id', rid: boolean, pad: boolean): Uint8Array => {
    const opts: SealOptions = { content: utf8(content), recipientPublicKey: rpk, pad };
    if (sender === true) opts.sender = { id: ids.sender, keyPair: keys.sender };
    if (sender === 'no-id') opts.sender = { keyPair: keys.sender };
    if (rid) opts.recipientId = ids.recipient;
    const env = sealWithEphemeral(opts, e);
    vectors.push({
      name,
      about,
      layer: 'envelope',
      recipient: 'recipient',
      ephemeralSecretKey: hex(e.secretKey),
      ephemeralPublicKey: hex(e.publicKey),
      seal: {
        content: hex(utf8(content)),
        sender: sender !== false,
        senderId: sender === true ? hex(ids.sender) : null,
        recipientId: rid ? hex(ids.recipient) : null,
        pad,
      },
      plain: hex(openBox(env, rpk, keys.recipient.secretKey)),
      envelope: hex(env),
      open: { recipientId: rid ? hex(ids.recipient) : null },
      expect: expectOpen(env, keys.recipient, rid ? ids.recipient : null),
    });
    return env;
  };
  positive('anonymous', 'anonymous, "hello", not bound, not padded', eph(0xe2), 'hello', false, false, false);
  positive('anonymous-bound-padded', 'anonymous, "hello", bound to the recipient ID, padded to 128', eph(0xe3), 'hello', false, true, true);
  const senderEnv = positive('sender', 'from the sender, "hello, bob", not bound, not padded', eph(0xe4), 'hello, bob', true, false, false);
  const boundEnv = positive('sender-bound-padded', 'from the sender, "hello, bob", bound, padded to 256', eph(0xe5), 'hello, bob', true, true, true);
  positive('sender-empty', 'from the sender, empty content, bound, not padded', eph(0xe6), '', true, true, false);
  positive('sender-no-id', 'from the sender on an anonymous connection: key proven, no sender ID, "hello, bob"', eph(0xe7), 'hello, bob', 'no-id', false, false);

  const negative = (name: string, about: string, e: KeyPair | null, env: Uint8Array, recipient: 'recipient' | 'other', openRid: Uint8Array | null): void => {
    const expect = expectOpen(env, keys[recipient], openRid);
    vectors.push({
      name,
      about,
      layer: 'envelope',
      recipient,
      ephemeralSecretKey: e ? hex(e.secretKey) : '',
      ephemeralPublicKey: hex(env.subarray(0, 32)),
      envelope: hex(env),
      open: { recipientId: openRid ? hex(openRid) : null },
      expect,
    });
  };
  const tampered = Uint8Array.from(senderEnv);
  tampered[tampered.length - 1]! ^= 0x01;
  negative('tampered', 'vector "sender" with its last byte changed', null, tampered, 'recipient', null);
  negative('recipient-id-mismatch', 'vector "sender-bound-padded" opened under another agent ID with the same key', null, boundEnv, 'recipient', ids.other);
  negative('wrong-recipient-key', 'vector "sender" given to another key pair', null, senderEnv, 'other', null);
  {
    const e = eph(0xe9);
    const env = refEnvelope({
      content: utf8('I am the sender'),
      rpk,
      eph: e,
      sender: { id: ids.sender, keyPair: keys.forger, claimedPk: keys.sender.publicKey },
    });
    negative('forged-sender', "claims the sender's public key; the inner box was made with the forger's secret key", e, env, 'recipient', null);
  }
  {
    const e = eph(0xea);
    const plain = openBox(senderEnv, rpk, keys.recipient.secretKey);
    const env = refSealBox(plain, keys.other.publicKey, e);
    negative('resealed-to-other', 'the inside of vector "sender", sealed again by its recipient to another key', e, env, 'other', null);
  }
  {
    const e = eph(0xeb);
    const env = refEnvelope({ type: 0x03, content: utf8('hello'), rpk, eph: e });
    negative('unknown-type', 'type byte 0x03, otherwise an anonymous envelope', e, env, 'recipient', null);
  }
  {
    const e = eph(0xec);
    const env = refEnvelope({ content: utf8('hello'), rpk, eph: e, padding: Uint8Array.of(0, 0, 1) });
    negative('nonzero-padding', 'anonymous "hello" followed by padding 00 00 01', e, env, 'recipient', null);
  }

  const keyHex = (k: KeyPair): { secretKey: string; publicKey: string } => ({ secretKey: hex(k.secretKey), publicKey: hex(k.publicKey) });
  return {
    description:
      'postern sealed envelope test vectors (PROTOCOL.md, envelope section). All byte strings are lowercase hex. ' +
      'Vectors with a "seal" field are produced by seal() with the given ephemeral key pair; the others are built by hand ' +
      'and must fail to open with expect.error.',
    keys: Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, keyHex(v)])),
    ids: Object.fromEntries(Object.entries(ids).map(([k, v]) => [k, hex(v)])),
    vectors,
  };
}

const wrap = (h: string, width = 64): string => (h.match(new RegExp(`.{1,${width}}`, 'g')) ?? ['']).join('\n');

/**
 * Opens every stored vector with the code as it is (under whichever crypto backend is set)
 * and asserts the stated outcome: the content and what it says of sender and recipient, or
 * the error code.
 */
export function checkStoredVectors(stored: EnvelopeVectors): void {
  for (const v of stored.vectors) {
    const k = stored.keys[v.recipient]!;
    const kp = { publicKey: unhex(k.publicKey), secretKey: unhex(k.secretKey) };
    const env = unhex(v.envelope);
    if (v.layer === 'sealed-box') {
      assert.is(hex(openBox(env, kp.publicKey, kp.secretKey)), v.plain, v.name);
      continue;
    }
    const opts = v.open.recipientId === null ? {} : { recipientId: v.open.recipientId };
    if ('error' in v.expect) {
      let code: string | undefined;
      try {
        open(env, kp, opts);
      } catch (err) {
        code = (err as PosternError).code;
      }
      assert.is(code, v.expect.error, v.name);
    } else {
      const got = open(env, kp, opts);
      assert.is(hex(got.content), v.expect.content, v.name);
      assert.is(got.sender?.id ? hex(got.sender.id) : null, v.expect.senderId, v.name);
      assert.is(got.sender ? hex(got.sender.publicKey) : null, v.expect.senderPublicKey, v.name);
      assert.is(got.recipientId ? hex(got.recipientId) : null, v.expect.recipientId, v.name);
      assert.is(got.verified, v.expect.verified, v.name);
    }
  }
}

/** The Markdown of the vector section (one heading and one hex block per vector). */
export function vectorsMarkdown(doc: EnvelopeVectors): string {
  const out: string[] = [];
  out.push('| key pair | secret key | public key |', '|---|---|---|');
  for (const [name, k] of Object.entries(doc.keys)) out.push(`| ${name} | \`${k.secretKey}\` | \`${k.publicKey}\` |`);
  out.push('', '| agent ID | value |', '|---|---|');
  for (const [name, id] of Object.entries(doc.ids)) out.push(`| ${name} | \`${id}\` |`);
  out.push('');
  for (const v of doc.vectors) {
    out.push(`#### Vector \`${v.name}\``, '', `${v.about.charAt(0).toUpperCase()}${v.about.slice(1)}.`, '');
    const e = v.ephemeralSecretKey === '' ? '' : ` Ephemeral secret key: 32 × \`${v.ephemeralSecretKey.slice(0, 2)}\`.`;
    out.push(`Opened with the ${v.recipient} key pair${v.open.recipientId ? ` and the ${v.open.recipientId === doc.ids.other ? 'other' : 'recipient'} ID` : ''}.${e}`);
    if ('error' in v.expect) {
      out.push(`Expected: fails with \`${v.expect.error}\`.`);
    } else {
      const x = v.expect;
      const parts = [`content \`${x.content || '(empty)'}\``];
      if (x.senderId) parts.push(`sender ID \`${x.senderId}\`, sender key = sender's public key, verified`);
      else if (x.senderPublicKey) parts.push("no sender ID, sender key = sender's public key, verified");
      if (x.recipientId) parts.push(`bound to \`${x.recipientId}\``);
      out.push(`Expected: ${parts.join('; ')}.`);
    }
    out.push('');
    if (v.plain !== undefined) out.push('```text', `plain (${v.plain.length / 2} bytes):`, wrap(v.plain), '```', '');
    out.push('```text', `envelope (${v.envelope.length / 2} bytes):`, wrap(v.envelope), '```', '');
  }
  return out.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  const doc = buildVectors();
  writeFileSync(VECTORS_JSON, `${JSON.stringify(doc, null, 2)}\n`);
  process.stdout.write(vectorsMarkdown(doc));
}
