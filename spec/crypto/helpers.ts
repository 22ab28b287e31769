/**
 * Test helpers for src/crypto: a slow, obviously correct reference encoder of the envelope
 * built straight from tweetnacl's `box` (its own scalarMult, not our node:crypto path) and
 * BLAKE2b, which can also build envelopes that are wrong on purpose.
 */
import nacl from 'tweetnacl';
import { blake2b } from '@noble/hashes/blake2.js';
import type { KeyPair } from '../../src/crypto/keys.js';
import type { PosternError } from '../../src/protocol/errors.js';

/** Hex of bytes. */
export const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');
/** Bytes of hex (spaces and newlines ignored). */
export const unhex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** A key pair from a fixed secret key, computed by tweetnacl. */
export function fixedKeyPair(secretKey: Uint8Array): KeyPair {
  return nacl.box.keyPair.fromSecretKey(secretKey);
}

/** 32 bytes start, start+1, ... (mod 256). */
export function counting(start: number, n = 32): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
}

/** crypto_box_seal, the textbook way. */
export function refSealBox(m: Uint8Array, rpk: Uint8Array, eph: KeyPair): Uint8Array {
  const nonce = blake2b(concat(eph.publicKey, rpk), { dkLen: 24 });
  return concat(eph.publicKey, nacl.box(m, nonce, rpk, eph.secretKey));
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Fields of a reference envelope; every one can be set wrong on purpose. */
export interface RefEnvelope {
  type?: number;
  content: Uint8Array;
  rpk: Uint8Array;
  eph?: KeyPair;
  sender?: { id: Uint8Array; keyPair: KeyPair; claimedPk?: Uint8Array };
  recipientId?: Uint8Array;
  /** The u32 length field; default content.length. */
  lengthField?: number;
  /** Bytes after the content (default none). */
  padding?: Uint8Array;
  /** Inner nonce; default the one the spec derives. */
  innerNonce?: Uint8Array;
  /** Make the inner box to this public key instead of rpk. */
  innerTo?: Uint8Array;
  /** Cut the outer plaintext to this many bytes. */
  truncatePlain?: number;
}

/** Builds an envelope the way PROTOCOL.md Appendix D describes it, or wrong as asked. */
export function refEnvelope(e: RefEnvelope): Uint8Array {
  const eph = e.eph ?? nacl.box.keyPair();
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, e.lengthField ?? e.content.length);
  const body = concat(e.recipientId ?? new Uint8Array(16), len, e.content, e.padding ?? new Uint8Array(0));
  let plain: Uint8Array;
  if (e.sender === undefined) {
    plain = concat(Uint8Array.of(e.type ?? 0x01), body);
  } else {
    const nonce =
      e.innerNonce ?? blake2b(concat(new TextEncoder().encode('postern/inner/v1'), eph.publicKey, e.rpk), { dkLen: 24 });
    const inner = nacl.box(concat(e.sender.id, body), nonce, e.innerTo ?? e.rpk, e.sender.keyPair.secretKey);
    plain = concat(Uint8Array.of(e.type ?? 0x02), e.sender.claimedPk ?? e.sender.keyPair.publicKey, inner);
  }
  if (e.truncatePlain !== undefined) plain = plain.subarray(0, e.truncatePlain);
  return refSealBox(plain, e.rpk, eph);
}

/** Runs `fn`, which must throw a PosternError; returns its code. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    const code = (err as PosternError).code;
    if (typeof code !== 'string') throw err;
    return code;
  }
  throw new Error('expected a PosternError, nothing was thrown');
}

/** Awaits `p`, which must reject with a PosternError; returns its code. */
export async function asyncCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    const code = (err as PosternError).code;
    if (typeof code !== 'string') throw err;
    return code;
  }
  throw new Error('expected a PosternError, the promise resolved');
}

/** An agent ID for tests: router `r`, then bytes from `seed`. */
export function testId(r: number, seed: number): Uint8Array {
  const id = counting(seed, 16);
  new DataView(id.buffer).setUint32(0, r);
  return id;
}
