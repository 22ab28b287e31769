import { test } from 'uvu';
import * as assert from 'uvu/assert';
import nacl from 'tweetnacl';
import sodium from 'libsodium-wrappers';
import { SEAL_OVERHEAD, openBox, sealBox, sealBoxWithEphemeral, sealNonce } from '../../src/crypto/sealed-box.js';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { codeOf, concat, counting, fixedKeyPair, hex, refSealBox, unhex } from './helpers.js';

await sodium.ready;

const LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 255, 1000, 65536];
const R = generateKeyPair();

test('postern sealBox -> libsodium crypto_box_seal_open, every length', () => {
  for (const n of LENGTHS) {
    const m = nacl.randomBytes(n);
    const sealed = sealBox(m, R.publicKey);
    assert.is(sealed.length, n + SEAL_OVERHEAD);
    assert.is(hex(sodium.crypto_box_seal_open(sealed, R.publicKey, R.secretKey)), hex(m), `length ${n}`);
  }
});

test('libsodium crypto_box_seal -> postern openBox, every length', () => {
  for (const n of LENGTHS) {
    const m = nacl.randomBytes(n);
    const sealed = sodium.crypto_box_seal(m, R.publicKey);
    assert.is(hex(openBox(sealed, R.publicKey, R.secretKey)), hex(m), `length ${n}`);
  }
});

test('libsodium keys work with postern and postern keys with libsodium', () => {
  const kp = sodium.crypto_box_keypair();
  const m = new TextEncoder().encode('both ways');
  assert.is(hex(openBox(sodium.crypto_box_seal(m, kp.publicKey), kp.publicKey, kp.privateKey)), hex(m));
  assert.is(hex(sodium.crypto_box_seal_open(sealBox(m, kp.publicKey), kp.publicKey, kp.privateKey)), hex(m));
});

test('nonce is BLAKE2b-192(epk || rpk), same as libsodium generichash', () => {
  const epk = counting(1);
  const rpk = counting(100);
  assert.is(hex(sealNonce(epk, rpk)), hex(sodium.crypto_generichash(24, concat(epk, rpk), null)));
});

test('fixed ephemeral: equals the textbook construction (tweetnacl box) byte for byte', () => {
  const eph = fixedKeyPair(counting(0x41));
  const r = fixedKeyPair(counting(0x01));
  const m = new TextEncoder().encode('postern');
  const ours = sealBoxWithEphemeral(m, r.publicKey, eph);
  assert.is(hex(ours), hex(refSealBox(m, r.publicKey, eph)));
  assert.is(hex(ours.subarray(0, 32)), hex(eph.publicKey));
  assert.is(hex(sodium.crypto_box_seal_open(ours, r.publicKey, r.secretKey)), hex(m));
});

test('two seals of one message differ (fresh ephemeral key)', () => {
  const m = new Uint8Array(10);
  assert.is.not(hex(sealBox(m, R.publicKey)), hex(sealBox(m, R.publicKey)));
});

test('wrong key, truncated, too short: SEAL_OPEN_FAILED', () => {
  const other = generateKeyPair();
  const sealed = sealBox(new Uint8Array(20), R.publicKey);
  assert.is(codeOf(() => openBox(sealed, other.publicKey, other.secretKey)), ErrorCode.SEAL_OPEN_FAILED);
  // The right secret key with a wrong public key changes the nonce.
  assert.is(codeOf(() => openBox(sealed, other.publicKey, R.secretKey)), ErrorCode.SEAL_OPEN_FAILED);
  for (const n of [0, 1, 31, 32, 47, 48, sealed.length - 1]) {
    assert.is(codeOf(() => openBox(sealed.subarray(0, n), R.publicKey, R.secretKey)), ErrorCode.SEAL_OPEN_FAILED, `cut to ${n}`);
  }
  // Exactly 48 bytes is a valid sealed empty message.
  assert.is(openBox(sealBox(new Uint8Array(0), R.publicKey), R.publicKey, R.secretKey).length, 0);
});

test('every single-bit flip of a small box fails, like libsodium', () => {
  const sealed = sealBox(new TextEncoder().encode('flip me'), R.publicKey);
  for (let i = 0; i < sealed.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const t = Uint8Array.from(sealed);
      t[i]! ^= 1 << bit;
      assert.is(codeOf(() => openBox(t, R.publicKey, R.secretKey)), ErrorCode.SEAL_OPEN_FAILED, `byte ${i} bit ${bit}`);
      assert.throws(() => sodium.crypto_box_seal_open(t, R.publicKey, R.secretKey));
    }
  }
});

test('an ephemeral key of small order is refused (the box key would be public), like libsodium', () => {
  const lowOrder = unhex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');
  // Anyone can compute the box key for it: HSalsa20 of zeros, whatever the recipient's key.
  const publicKnownKey = nacl.box.before(lowOrder, nacl.randomBytes(32));
  const m = new TextEncoder().encode('forged');
  const nonce = sealNonce(lowOrder, R.publicKey);
  const forged = concat(lowOrder, nacl.secretbox(m, nonce, publicKnownKey));
  // tweetnacl alone would open it: the check is what stops it.
  assert.ok(nacl.box.open(forged.subarray(32), nonce, lowOrder, R.secretKey) !== null);
  assert.is(codeOf(() => openBox(forged, R.publicKey, R.secretKey)), ErrorCode.SEAL_OPEN_FAILED);
  assert.throws(() => sodium.crypto_box_seal_open(forged, R.publicKey, R.secretKey));
});

test('sealing to a small-order key, or with bad arguments: INVALID_ARGUMENT', () => {
  const zero = new Uint8Array(32);
  assert.is(codeOf(() => sealBox(new Uint8Array(1), zero)), ErrorCode.INVALID_ARGUMENT);
  assert.throws(() => sodium.crypto_box_seal(new Uint8Array(1), zero));
  assert.is(codeOf(() => sealBox(new Uint8Array(1), new Uint8Array(31))), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => sealBox('text' as unknown as Uint8Array, R.publicKey)), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => openBox(new Uint8Array(60), R.publicKey, new Uint8Array(33))), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => openBox([1, 2] as unknown as Uint8Array, R.publicKey, R.secretKey)), ErrorCode.INVALID_ARGUMENT);
  assert.is(
    codeOf(() => sealBoxWithEphemeral(new Uint8Array(1), R.publicKey, { publicKey: new Uint8Array(32), secretKey: new Uint8Array(3) })),
    ErrorCode.INVALID_ARGUMENT,
  );
});

test.run();
