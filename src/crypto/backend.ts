import { createRequire } from 'node:module';
import nacl from 'tweetnacl';
import { blake2b } from '@noble/hashes/blake2.js';

/**
 * Where the envelope's primitives run: XSalsa20-Poly1305 (secretbox) and X25519.
 *
 * - `native`: `sodium-native` (libsodium, an optional dependency with prebuilt binaries),
 *   used when it loads: secretbox at hundreds of MB/s, and X25519 without the key import
 *   that node:crypto needs per operation.
 * - `portable`: tweetnacl's secretbox (pure JavaScript, about 40 MB/s) and X25519 from
 *   node:crypto (OpenSSL). Always available; the fallback.
 *
 * Both produce the same bytes (spec/crypto/backend.test.ts checks them against the vectors
 * of spec/vectors/envelope.json and against each other). The environment variable
 * `POSTERN_CRYPTO=portable` forces the fallback; {@link setCryptoBackend} switches it for
 * tests. The choice is per process, like the loaded library it stands for.
 *
 * @module
 */

/** The part of sodium-native used here (its functions take Buffers or other Uint8Arrays). */
interface SodiumNative {
  crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
  /** `c` and `m` may be the same memory (libsodium handles the overlap). */
  crypto_secretbox_detached(c: Uint8Array, mac: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
  /** Checks the tag before it writes anything to `m`; `m` and `c` may be the same memory. */
  crypto_secretbox_open_detached(m: Uint8Array, c: Uint8Array, mac: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
  /** libsodium's sealed box; `m` may be `c.subarray(48)` (sealed in place). Throws for a small-order `pk`. */
  crypto_box_seal(c: Uint8Array, m: Uint8Array, pk: Uint8Array): void;
  /** False when the box does not open (altered, another key, a small-order ephemeral key). */
  crypto_box_seal_open(m: Uint8Array, c: Uint8Array, pk: Uint8Array, sk: Uint8Array): boolean;
  /** BLAKE2b, unkeyed when `key` is omitted; the output length is `out.length`. */
  crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  /** Throws when the result is all zeros (a small-order point). */
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  randombytes_buf(buf: Uint8Array): void;
}

/** Which implementation runs the primitives. */
export type CryptoBackendName = 'native' | 'portable';

function loadSodium(): SodiumNative | undefined {
  try {
    const s = createRequire(import.meta.url)('sodium-native') as SodiumNative;
    // Every function used here, so an addon without one falls back instead of failing later.
    const used = ['crypto_secretbox_easy', 'crypto_secretbox_detached', 'crypto_secretbox_open_detached', 'crypto_box_seal', 'crypto_box_seal_open', 'crypto_generichash', 'crypto_scalarmult', 'crypto_scalarmult_base', 'randombytes_buf'];
    return used.every((f) => typeof (s as unknown as Record<string, unknown>)[f] === 'function') ? s : undefined;
  } catch {
    // Not installed (an optional dependency), or no binary for this platform.
    return undefined;
  }
}

// Loaded on first use, not at import: loading the addon takes tens of milliseconds, which
// every command-line call would pay even when it seals nothing. null: not tried yet.
let loaded: SodiumNative | undefined | null = null;
let portable = process.env['POSTERN_CRYPTO'] === 'portable';

function load(): SodiumNative | undefined {
  if (loaded === null) loaded = loadSodium();
  return loaded;
}

/** libsodium when it is in use, else undefined (the portable path). */
export function sodium(): SodiumNative | undefined {
  return portable ? undefined : load();
}

/** The backend in use. */
export function cryptoBackend(): CryptoBackendName {
  return sodium() === undefined ? 'portable' : 'native';
}

/** True when sodium-native loads in this process (whether or not it is in use). */
export function nativeCryptoAvailable(): boolean {
  return load() !== undefined;
}

/**
 * Switches the backend (for tests and benchmarks). `native` needs sodium-native to load;
 * returns the backend now in use.
 */
export function setCryptoBackend(name: CryptoBackendName): CryptoBackendName {
  portable = name === 'portable';
  return cryptoBackend();
}

/** Poly1305 tag bytes in front of a secretbox's ciphertext. */
export const SECRETBOX_OVERHEAD = 16;

/**
 * XSalsa20-Poly1305 of `message` (nacl's `secretbox` layout: tag, then ciphertext), written
 * after `prefix` bytes left zero for the caller, so the box needs no copy into a frame.
 */
export function secretbox(message: Uint8Array, nonce: Uint8Array, key: Uint8Array, prefix = 0): Uint8Array {
  const s = sodium();
  if (s !== undefined) {
    const out = new Uint8Array(prefix + SECRETBOX_OVERHEAD + message.length);
    s.crypto_secretbox_easy(out.subarray(prefix), message, nonce, key);
    return out;
  }
  const boxed = nacl.secretbox(message, nonce, key);
  if (prefix === 0) return boxed;
  const out = new Uint8Array(prefix + boxed.length);
  out.set(boxed, prefix);
  return out;
}

/**
 * XSalsa20-Poly1305 in place: the message at `buf[at + 16, at + 16 + length)` is replaced by
 * its ciphertext and the tag is written to `buf[at, at + 16)`, giving nacl's `secretbox`
 * layout with no buffer of its own. The envelope is built this way, layer by layer, in the
 * one array that goes on the wire: a 64 KiB message is then encrypted twice (with the sender
 * proof) but neither copied nor allocated again per layer.
 */
export function secretboxInPlace(buf: Uint8Array, at: number, length: number, nonce: Uint8Array, key: Uint8Array): void {
  const s = sodium();
  const m = buf.subarray(at + SECRETBOX_OVERHEAD, at + SECRETBOX_OVERHEAD + length);
  if (s !== undefined) {
    s.crypto_secretbox_detached(m, buf.subarray(at, at + SECRETBOX_OVERHEAD), m, nonce, key);
    return;
  }
  buf.set(nacl.secretbox(m, nonce, key), at);
}

/**
 * Opens the box at `src[at, at + 16 + length)` (tag first) into `dst[dstAt, dstAt + length)`,
 * which may be the box's own ciphertext (`dst === src`, `dstAt === at + 16`: in place).
 * False, with `dst` untouched, when it does not authenticate.
 */
export function secretboxOpenInto(
  src: Uint8Array,
  at: number,
  length: number,
  dst: Uint8Array,
  dstAt: number,
  nonce: Uint8Array,
  key: Uint8Array,
): boolean {
  if (length < 0) return false;
  const s = sodium();
  if (s !== undefined) {
    const c = src.subarray(at + SECRETBOX_OVERHEAD, at + SECRETBOX_OVERHEAD + length);
    return s.crypto_secretbox_open_detached(dst.subarray(dstAt, dstAt + length), c, src.subarray(at, at + SECRETBOX_OVERHEAD), nonce, key);
  }
  const m = nacl.secretbox.open(src.subarray(at, at + SECRETBOX_OVERHEAD + length), nonce, key);
  if (m === null) return false;
  dst.set(m, dstAt);
  return true;
}

/** Bytes of a box nonce: the output length of {@link nonceHash}. */
const NONCE_BYTES = 24;
// The input of one nonce hash (at most 16 + 32 + 32 bytes), so the native hash needs no
// concatenation per call. Used synchronously only.
const hashInput = new Uint8Array(96);

/**
 * BLAKE2b-192, unkeyed, of `a || b || c` (c optional; at most 96 bytes in all): the nonces of
 * the sealed box and of the envelope's inner box. libsodium's BLAKE2b when native, else
 * @noble/hashes; the same bytes. Measured here: about 3 µs per nonce native against 12-18 µs
 * in JavaScript, and an envelope with the sender proof takes two nonces on each side, so the
 * JavaScript hash cost about a third of an X25519 operation per message.
 */
export function nonceHash(a: Uint8Array, b: Uint8Array, c?: Uint8Array): Uint8Array {
  const s = sodium();
  if (s === undefined) {
    const h = blake2b.create({ dkLen: NONCE_BYTES }).update(a).update(b);
    if (c !== undefined) h.update(c);
    return h.digest();
  }
  const n = a.length + b.length + (c === undefined ? 0 : c.length);
  hashInput.set(a, 0);
  hashInput.set(b, a.length);
  if (c !== undefined) hashInput.set(c, a.length + b.length);
  const out = new Uint8Array(NONCE_BYTES);
  s.crypto_generichash(out, hashInput.subarray(0, n));
  return out;
}
