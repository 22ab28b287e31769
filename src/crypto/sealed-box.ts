import nacl from 'tweetnacl';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { nonceHash, secretboxInPlace, secretboxOpenInto, sodium } from './backend.js';
import { type Ephemeral, X25519_KEY_SIZE, fixedEphemeral, freshEphemeral, isSmallOrder, x25519 } from './x25519.js';

/**
 * The outer layer of an envelope: a sealed box, byte for byte libsodium's
 * `crypto_box_seal`. [P-D.1]
 *
 * ```
 * sealed = epk (32) || crypto_box(m, nonce, recipientPk, esk)      (16-byte MAC first)
 * nonce  = BLAKE2b(epk || recipientPk, outlen = 24, unkeyed)
 * ```
 *
 * `(epk, esk)` is a fresh X25519 key pair per message, forgotten after sealing, so the box
 * says nothing about who made it and the sender cannot open it afterwards.
 */

/** Bytes a sealed box adds to its message: the ephemeral public key and the MAC. */
export const SEAL_OVERHEAD = X25519_KEY_SIZE + nacl.box.overheadLength; // 48

/** Length of a crypto_box nonce (XSalsa20). */
export const NONCE_SIZE = nacl.box.nonceLength; // 24

/**
 * An X25519 key pair: both 32 bytes. The secret key is the raw (unclamped) scalar. Treat
 * the arrays as immutable: derived keys are cached by their identity (to replace a key,
 * make a new key pair).
 */
export interface KeyPair {
  /** X25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** X25519 secret key, 32 bytes. Keep it secret: see keys.ts for storage. */
  readonly secretKey: Uint8Array;
}

interface NaclLowLevel {
  crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): number;
}
// tweetnacl exports its low-level functions untyped.
const lowlevel = (nacl as unknown as { lowlevel: NaclLowLevel }).lowlevel;
const SIGMA = new TextEncoder().encode('expand 32-byte k');
const ZERO16 = new Uint8Array(16);

/**
 * crypto_box_beforenm: HSalsa20 of the X25519 secret, the key of XSalsa20-Poly1305 between
 * the two parties. Undefined when `publicKey` has small order (libsodium fails there too).
 */
export function boxBeforeNm(publicKey: Uint8Array, secretKey: Uint8Array, cacheSecret = false): Uint8Array | undefined {
  return hsalsaKey(x25519(secretKey, publicKey, cacheSecret));
}

/** How many peers' box keys {@link staticBoxKey} keeps per secret key. */
export const STATIC_KEY_CACHE_SIZE = 256;

// Box keys between two static keys (sender and recipient of an envelope with a sender) are
// the same for every message between them, and computing one is an X25519: half the cost
// of opening such an envelope. Kept per secret key (by array identity, so they go when the
// caller drops its key pair), least recently used first out.
const staticBoxKeys = new WeakMap<Uint8Array, Map<string, Uint8Array>>();

/**
 * crypto_box_beforenm between two static keys, remembered for the next message between
 * the same two keys. The result is shared: never change or wipe it. Treat a key pair's
 * arrays as immutable (to replace a key, make a new key pair), as the cache is keyed by
 * the secret key array itself.
 */
export function staticBoxKey(peerPublicKey: Uint8Array, secretKey: Uint8Array): Uint8Array | undefined {
  let peers = staticBoxKeys.get(secretKey);
  if (peers === undefined) {
    peers = new Map();
    staticBoxKeys.set(secretKey, peers);
  }
  const id = Buffer.from(peerPublicKey.buffer, peerPublicKey.byteOffset, peerPublicKey.byteLength).toString('latin1');
  const hit = peers.get(id);
  if (hit !== undefined) {
    peers.delete(id); // re-insert: Map order is the LRU order
    peers.set(id, hit);
    return hit;
  }
  const key = boxBeforeNm(peerPublicKey, secretKey, true);
  if (key === undefined) return undefined;
  peers.set(id, key);
  if (peers.size > STATIC_KEY_CACHE_SIZE) {
    const oldest = peers.keys().next().value as string;
    peers.get(oldest)!.fill(0);
    peers.delete(oldest);
  }
  return key;
}

/** HSalsa20(shared) with a zero input, as crypto_box_beforenm; wipes `shared`. */
export function hsalsaKey(shared: Uint8Array | undefined): Uint8Array | undefined {
  if (shared === undefined) return undefined;
  const key = new Uint8Array(32);
  lowlevel.crypto_core_hsalsa20(key, ZERO16, shared, SIGMA);
  shared.fill(0);
  return key;
}

/** The sealed-box nonce: BLAKE2b-192(epk || recipientPk), unkeyed. */
export function sealNonce(ephemeralPk: Uint8Array, recipientPk: Uint8Array): Uint8Array {
  return nonceHash(ephemeralPk, recipientPk);
}

/** Throws INVALID_ARGUMENT unless `key` is a 32-byte Uint8Array. */
export function checkKey(key: unknown, what: string): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== X25519_KEY_SIZE) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, `${what} must be a ${X25519_KEY_SIZE}-byte Uint8Array`);
  }
}

/**
 * Seals `message` to `recipientPk` with a fresh ephemeral key pair, exactly as libsodium's
 * `crypto_box_seal`: the result opens with `crypto_box_seal_open` and with {@link openBox}.
 * Output length: `message.length + 48`.
 *
 * @throws PosternError INVALID_ARGUMENT when the key is not 32 bytes or has small order.
 */
export function sealBox(message: Uint8Array, recipientPk: Uint8Array): Uint8Array {
  checkKey(recipientPk, 'recipient public key');
  if (!(message instanceof Uint8Array)) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'message must be a Uint8Array');
  }
  const out = new Uint8Array(SEAL_OVERHEAD + message.length);
  out.set(message, SEAL_OVERHEAD);
  sealBoxFresh(out, recipientPk);
  return out;
}

/**
 * {@link sealBoxInPlace} with a fresh ephemeral key pair. With libsodium that is its own
 * `crypto_box_seal`, in place: one call doing in C what sealBoxInPlace composes from five
 * (measured here: about 54 against 64 µs of CPU per small box). The same bytes either way;
 * spec/crypto/backend.test.ts opens each backend's boxes with the other.
 *
 * @throws PosternError INVALID_ARGUMENT when `recipientPk` has small order.
 */
export function sealBoxFresh(out: Uint8Array, recipientPk: Uint8Array): void {
  const na = sodium();
  if (na === undefined) {
    sealBoxInPlace(out, recipientPk, freshEphemeral());
    return;
  }
  // libsodium refuses these too, but by throwing from the addon, without our code.
  if (isSmallOrder(recipientPk)) throw smallOrderRecipient();
  na.crypto_box_seal(out, out.subarray(SEAL_OVERHEAD), recipientPk);
}

function smallOrderRecipient(): PosternError {
  return new PosternError(ErrorCode.INVALID_ARGUMENT, 'recipient public key has small order: nothing sealed to it is secret');
}

/**
 * {@link sealBox} with a caller-chosen ephemeral key pair. For test vectors only: reusing an
 * ephemeral key to the same recipient reuses the nonce and key, which breaks the
 * encryption. Internal (for src/internal.ts, not the public index).
 */
export function sealBoxWithEphemeral(message: Uint8Array, recipientPk: Uint8Array, ephemeral: KeyPair): Uint8Array {
  checkKey(recipientPk, 'recipient public key');
  checkKey(ephemeral?.publicKey, 'ephemeral public key');
  checkKey(ephemeral.secretKey, 'ephemeral secret key');
  return sealBoxWith(message, recipientPk, fixedEphemeral(ephemeral.publicKey, ephemeral.secretKey));
}

/** The sealed box with a given ephemeral; `recipientPk` already checked. Internal. */
export function sealBoxWith(message: Uint8Array, recipientPk: Uint8Array, ephemeral: Ephemeral): Uint8Array {
  if (!(message instanceof Uint8Array)) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'message must be a Uint8Array');
  }
  const out = new Uint8Array(SEAL_OVERHEAD + message.length);
  out.set(message, SEAL_OVERHEAD);
  sealBoxInPlace(out, recipientPk, ephemeral);
  return out;
}

/**
 * Seals the message at `out[48..]` in place into the sealed box that is all of `out`: the
 * ephemeral public key goes to `out[0, 32)`, the tag to `out[32, 48)`. `recipientPk`
 * already checked. Internal (seal.ts builds an envelope's layers in one array this way).
 *
 * @throws PosternError INVALID_ARGUMENT when `recipientPk` has small order.
 */
export function sealBoxInPlace(out: Uint8Array, recipientPk: Uint8Array, ephemeral: Ephemeral): void {
  const key = hsalsaKey(ephemeral.agree(recipientPk));
  if (key === undefined) throw smallOrderRecipient();
  secretboxInPlace(out, X25519_KEY_SIZE, out.length - SEAL_OVERHEAD, sealNonce(ephemeral.publicKey, recipientPk), key);
  key.fill(0);
  out.set(ephemeral.publicKey, 0);
}

/**
 * Opens a sealed box made by {@link sealBox} or libsodium's `crypto_box_seal`.
 *
 * @throws PosternError SEAL_OPEN_FAILED when it does not open with this key pair: shorter
 *   than 48 bytes, altered, sealed to another key, or carrying an ephemeral key of small
 *   order (which libsodium also rejects). INVALID_ARGUMENT for keys that are not 32 bytes.
 */
export function openBox(sealed: Uint8Array, recipientPk: Uint8Array, recipientSk: Uint8Array): Uint8Array {
  return openBoxWithEphemeral(sealed, recipientPk, recipientSk).message;
}

/**
 * {@link openBox}, also returning the ephemeral public key (a view into `sealed`), which the
 * envelope binds its inner layer to.
 */
export function openBoxWithEphemeral(
  sealed: Uint8Array,
  recipientPk: Uint8Array,
  recipientSk: Uint8Array,
): { message: Uint8Array; ephemeralPk: Uint8Array } {
  checkKey(recipientPk, 'recipient public key');
  checkKey(recipientSk, 'recipient secret key');
  if (!(sealed instanceof Uint8Array)) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'sealed box must be a Uint8Array');
  }
  if (sealed.length < SEAL_OVERHEAD) {
    throw new PosternError(ErrorCode.SEAL_OPEN_FAILED, `sealed box too short: ${sealed.length} < ${SEAL_OVERHEAD} bytes`);
  }
  const epk = sealed.subarray(0, X25519_KEY_SIZE);
  // Opened into an array of its own: `sealed` may be the caller's (or the socket's) memory,
  // and the envelope's inner layer is then opened in place in this one. Not zero-filled
  // (a pass over 64 KiB costs a few µs): a successful open writes every byte, and a failed
  // one throws it away unseen. Not from Buffer's shared pool either, so the plaintext's
  // `.buffer` holds nothing else.
  const message = new Uint8Array(Buffer.allocUnsafeSlow(sealed.length - SEAL_OVERHEAD).buffer);
  const na = sodium();
  if (na !== undefined) {
    // libsodium's own crypto_box_seal_open: the same steps as below in one call (about
    // 37 against 46 µs of CPU per small box here); it refuses the same small-order keys.
    if (!na.crypto_box_seal_open(message, sealed, recipientPk, recipientSk)) throw notOpened();
    return { message, ephemeralPk: epk };
  }
  const key = boxBeforeNm(epk, recipientSk, true);
  if (key === undefined) {
    throw new PosternError(ErrorCode.SEAL_OPEN_FAILED, 'sealed box has an ephemeral key of small order');
  }
  const ok = secretboxOpenInto(sealed, X25519_KEY_SIZE, message.length, message, 0, sealNonce(epk, recipientPk), key);
  key.fill(0);
  if (!ok) throw notOpened();
  return { message, ephemeralPk: epk };
}

function notOpened(): PosternError {
  return new PosternError(ErrorCode.SEAL_OPEN_FAILED, 'sealed box does not open with this key (altered, or sealed to another key)');
}
