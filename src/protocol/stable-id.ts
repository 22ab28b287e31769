import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { unpack } from 'msgpackr';
import { freshEphemeral, isSmallOrder, x25519, type Ephemeral } from '../crypto/x25519.js';
import { encodeFrame } from './encoder.js';
import { FrameType, HEADER_SIZE, ID_SIZE } from './frame.js';

/**
 * Stable addresses (PROTOCOL.md §15): an agent with an X25519 key registers for the ID
 * derived from its public key on that router, proving at REGISTER that it holds the secret
 * key. Derivation, proof and the router's side of the check live here, so the connection
 * code only asks one question. Plain random IDs stay the default.
 *
 * @module
 */

/** Domain label in the ID hash and the proof. [P-15.1] */
export const STABLE_LABEL = 'postern stable-id v1';

/** The stable ID of `publicKey` on router `routerId`: the router ID, then 12 bytes of SHA-256(label || key). [P-15.1] */
export function stableIdFor(routerId: number, publicKey: Uint8Array): Buffer {
  const id = Buffer.alloc(ID_SIZE);
  id.writeUInt32BE(routerId >>> 0, 0);
  createHash('sha256').update(STABLE_LABEL).update(publicKey).digest().copy(id, 4, 0, 12);
  return id;
}

/**
 * The proof an agent puts in its second REGISTER: HMAC-SHA256 keyed with X25519(agent
 * secret, nonce) over label || nonce || agent public key. Undefined when the nonce is a
 * small-order point (no secret anyone could not compute). [P-15.2]
 */
export function stableProof(secretKey: Uint8Array, publicKey: Uint8Array, nonce: Uint8Array): Buffer | undefined {
  const shared = x25519(secretKey, nonce);
  if (shared === undefined) return undefined;
  return macOf(shared, nonce, publicKey);
}

function macOf(shared: Uint8Array, nonce: Uint8Array, publicKey: Uint8Array): Buffer {
  return createHmac('sha256', shared).update(STABLE_LABEL).update(nonce).update(publicKey).digest();
}

/** The CHALLENGE frame: MessagePack `{ nonce: bin 32 }`. [P-15.2] */
export function encodeChallenge(nonce: Uint8Array): Buffer[] {
  // Written out (fixmap 1, fixstr "nonce", bin8 32): one fixed shape, the bytes of §15.4.
  const body = Buffer.alloc(41);
  body.write('81a56e6f6e6365c420', 0, 'hex');
  body.set(nonce, 9);
  return encodeFrame(FrameType.CHALLENGE, body);
}

/** The nonce of a CHALLENGE frame `[start, end)`; throws a RangeError when the body is not `{ nonce: bin 32 }`. */
export function decodeChallenge(buf: Buffer, start: number, end: number): Buffer {
  let body: unknown;
  try {
    body = unpack(buf.subarray(start + HEADER_SIZE, end));
  } catch {
    throw new RangeError('CHALLENGE body is not MessagePack');
  }
  const nonce = (body as { nonce?: unknown } | null)?.nonce;
  if (!(nonce instanceof Uint8Array) || nonce.length !== 32) throw new RangeError('CHALLENGE.nonce must be 32 bytes');
  return Buffer.from(nonce);
}

/**
 * The router's side, one per connection: the first REGISTER with `stable: true` draws a
 * challenge (a fresh ephemeral key whose public half is the nonce); the second must carry the
 * proof. One challenge per connection: a second proof attempt is refused.
 */
export class StableChallenge {
  private eph: Ephemeral | null = null;
  private used = false;

  /**
   * What to do with a REGISTER asking for a stable ID: `{ frame }` (send this CHALLENGE and
   * wait), `{ id }` (the proof holds: register under this ID), or `{ fail }` (refuse). [P-15.2]
   */
  step(body: { readonly key?: Uint8Array | undefined; readonly proof?: Uint8Array | undefined }, routerId: number): { frame: Buffer[] } | { id: Buffer } | { fail: string } {
    const key = body.key;
    if (!(key instanceof Uint8Array) || key.length !== 32 || isSmallOrder(key)) return { fail: 'a stable ID needs a usable 32-byte key' };
    const proof = body.proof;
    if (proof === undefined) {
      if (this.eph !== null) return { fail: 'a second stable ID challenge' };
      this.eph = freshEphemeral();
      return { frame: encodeChallenge(this.eph.publicKey) };
    }
    if (this.eph === null || this.used) return { fail: 'a stable ID proof without a challenge' };
    this.used = true;
    if (!(proof instanceof Uint8Array) || proof.length !== 32) return { fail: 'REGISTER.proof must be 32 bytes' };
    const shared = this.eph.agree(key);
    if (shared === undefined) return { fail: 'a stable ID needs a usable key' };
    const want = macOf(shared, this.eph.publicKey, key);
    if (!timingSafeEqual(want, proof)) return { fail: 'the stable ID proof does not hold' };
    return { id: stableIdFor(routerId, key) };
  }
}
