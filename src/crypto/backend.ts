import { createRequire } from 'node:module';
import nacl from 'tweetnacl';

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
  crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
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
    return typeof s.crypto_secretbox_easy === 'function' && typeof s.crypto_scalarmult === 'function' ? s : undefined;
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

/** Opens a {@link secretbox}: the message, or null when it does not authenticate. */
export function secretboxOpen(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null {
  const s = sodium();
  if (s !== undefined) {
    if (box.length < SECRETBOX_OVERHEAD) return null;
    const out = new Uint8Array(box.length - SECRETBOX_OVERHEAD);
    return s.crypto_secretbox_open_easy(out, box, nonce, key) ? out : null;
  }
  return nacl.secretbox.open(box, nonce, key);
}
