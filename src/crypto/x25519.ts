import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto';
import { sodium } from './backend.js';

/**
 * X25519 (RFC 7748) for the sealed box and the envelope.
 *
 * The scalar multiplication runs in OpenSSL through `node:crypto`, about seven times
 * faster than tweetnacl's pure-JS `scalarMult` (measured: ~7,700 vs ~1,000 per second on
 * the CI machine). The results are the same bytes; spec/crypto/x25519.test.ts checks them
 * against tweetnacl. Everything else (HSalsa20, XSalsa20-Poly1305, randomness) is tweetnacl.
 */

/** Length of an X25519 public or secret key. */
export const X25519_KEY_SIZE = 32;

// The u-coordinates of points of small order, as libsodium lists them
// (crypto_scalarmult/curve25519/ref10/x25519_ref10.c, has_small_order), compared with the
// top bit masked off as RFC 7748 says. A shared secret computed from any of them is all
// zeros whatever the secret key, so a box "from" such a key proves nothing: anyone could
// have made it. libsodium refuses them; so do we, which keeps both sides of the interop
// agreeing on which boxes open.
const SMALL_ORDER: readonly Uint8Array[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Uint8Array.from(Buffer.from(h, 'hex')));

/**
 * True when `publicKey` is a point of small order (or a non-canonical encoding of one):
 * X25519 with it yields an all-zero secret. Constant time over the key bytes.
 */
export function isSmallOrder(publicKey: Uint8Array): boolean {
  let found = 0;
  for (const bad of SMALL_ORDER) {
    let diff = 0;
    for (let i = 0; i < 31; i++) diff |= publicKey[i]! ^ bad[i]!;
    diff |= (publicKey[31]! & 0x7f) ^ bad[31]!;
    found |= diff === 0 ? 1 : 0;
  }
  return found === 1;
}

const b64url = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64url');

// Importing a key costs about as much as the multiplication itself; static keys (ours, the
// recipient's own) are used many times, so their KeyObjects are kept while the caller keeps
// the Uint8Array. Ephemeral keys are imported once and dropped.
const PLACEHOLDER_X = 'A'.repeat(43); // 32 zero bytes in base64url
const privateKeys = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(secretKey: Uint8Array, cache: boolean): KeyObject {
  let key = cache ? privateKeys.get(secretKey) : undefined;
  if (key === undefined) {
    // Node insists on an `x`, but OpenSSL builds the key from `d` alone and recomputes the
    // public half (spec/crypto/x25519.test.ts checks this), so a placeholder does.
    key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(secretKey), x: PLACEHOLDER_X }, format: 'jwk' });
    if (cache) privateKeys.set(secretKey, key);
  }
  return key;
}

const BASE_POINT = new Uint8Array(32);
BASE_POINT[0] = 9;

/**
 * X25519(secretKey, publicKey): the raw shared secret (32 bytes). Returns `undefined` when
 * `publicKey` has small order (the secret would be all zeros). Both arguments must be
 * 32 bytes; callers check.
 *
 * @param cacheSecret keep the imported secret key for later calls (for static keys only)
 */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array, cacheSecret = false): Uint8Array | undefined {
  const na = sodium();
  if (na !== undefined) return nativeAgree(na, secretKey, publicKey);
  return agree(privateKeyObject(secretKey, cacheSecret), publicKey);
}

/** X25519 with libsodium (see backend.ts): no key import, refuses the same keys as {@link agree}. */
function nativeAgree(na: NonNullable<ReturnType<typeof sodium>>, secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
  if (isSmallOrder(publicKey)) return undefined;
  const out = new Uint8Array(32);
  try {
    na.crypto_scalarmult(out, secretKey, publicKey);
  } catch {
    // libsodium refuses an all-zero result, as OpenSSL does: fail closed the same way.
    return undefined;
  }
  return out;
}

function agree(privateKey: KeyObject, publicKey: Uint8Array): Uint8Array | undefined {
  if (isSmallOrder(publicKey)) return undefined;
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(publicKey) }, format: 'jwk' });
  let out: Buffer;
  try {
    out = diffieHellman({ privateKey, publicKey: pub });
  } catch {
    // OpenSSL refuses an all-zero result on its own; the list above should have caught every
    // such key already, but if OpenSSL refuses anything, fail closed the same way.
    return undefined;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * A one-message key pair for the sealed box: its public key, and key agreement with its
 * secret half. Undefined from `agree` when the peer key has small order.
 */
export interface Ephemeral {
  /** The ephemeral X25519 public key (32 bytes), sent in the clear. */
  readonly publicKey: Uint8Array;
  /** X25519(ephemeral secret, peerPublicKey). */
  agree(peerPublicKey: Uint8Array): Uint8Array | undefined;
}

/**
 * A fresh ephemeral key pair: 32 bytes from the OS CSPRNG, imported once into OpenSSL and
 * wiped from JS memory; the one imported key serves both the public key and the
 * agreement (one import, two multiplications).
 *
 * Not `generateKeyPairSync('x25519')` + `export({ format: 'jwk' })`, which would save a
 * multiplication: on Node 20 that pair can deadlock the main thread when a garbage
 * collection runs a finished key-generation job's destructor inside the export (seen here:
 * `~KeyGenJob` waiting on a mutex held by `ExportJWKEdKey`).
 */
export function freshEphemeral(): Ephemeral {
  const na = sodium();
  if (na !== undefined) {
    const sk = new Uint8Array(32);
    na.randombytes_buf(sk);
    const pk = new Uint8Array(32);
    // Fixed-base multiplication: a fraction of the cost of agree().
    na.crypto_scalarmult_base(pk, sk);
    return { publicKey: pk, agree: (peer) => nativeAgree(na, sk, peer) };
  }
  const secretKey = randomBytes(32);
  const privateKey = privateKeyObject(secretKey, false);
  secretKey.fill(0);
  // The base point is never of small order, so this is always defined.
  const publicKey = agree(privateKey, BASE_POINT)!;
  return { publicKey, agree: (peer) => agree(privateKey, peer) };
}

/** An ephemeral with caller-chosen keys, for test vectors only. */
export function fixedEphemeral(publicKey: Uint8Array, secretKey: Uint8Array): Ephemeral {
  return { publicKey, agree: (peer) => x25519(secretKey, peer) };
}

/** The X25519 public key of `secretKey` (scalar multiplication of the base point). */
export function x25519Base(secretKey: Uint8Array): Uint8Array {
  const na = sodium();
  if (na !== undefined) {
    const pk = new Uint8Array(32);
    na.crypto_scalarmult_base(pk, secretKey);
    return pk;
  }
  // The base point is never of small order, so this is always defined.
  return x25519(secretKey, BASE_POINT)!;
}
