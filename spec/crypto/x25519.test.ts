import { test } from 'uvu';
import * as assert from 'uvu/assert';
import nacl from 'tweetnacl';
import { isSmallOrder, x25519, x25519Base } from '../../src/crypto/x25519.js';
import { hex, unhex } from './helpers.js';

// RFC 7748 §6.1
const ALICE_SK = unhex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
const ALICE_PK = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
const BOB_SK = unhex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
const BOB_PK = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
const SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

const SMALL_ORDER_HEX = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

test('RFC 7748 section 6.1 vectors', () => {
  assert.is(hex(x25519Base(ALICE_SK)), ALICE_PK);
  assert.is(hex(x25519Base(BOB_SK)), BOB_PK);
  assert.is(hex(x25519(ALICE_SK, unhex(BOB_PK))!), SHARED);
  assert.is(hex(x25519(BOB_SK, unhex(ALICE_PK), true)!), SHARED);
  // Cached secret key object gives the same answer the second time.
  assert.is(hex(x25519(BOB_SK, unhex(ALICE_PK), true)!), SHARED);
});

test('agrees with tweetnacl scalarMult on 50 random pairs (unclamped keys, high bit set)', () => {
  for (let i = 0; i < 50; i++) {
    const sk = nacl.randomBytes(32);
    const pk = nacl.randomBytes(32);
    if (i % 2 === 0) pk[31]! |= 0x80; // RFC 7748: the top bit is ignored
    if (isSmallOrder(pk)) continue;
    assert.is(hex(x25519(sk, pk)!), hex(nacl.scalarMult(sk, pk)), `pair ${i}`);
    assert.is(hex(x25519Base(sk)), hex(nacl.scalarMult.base(sk)), `base ${i}`);
  }
});

test('small-order points are recognised, with and without the top bit, and give undefined', () => {
  for (const h of SMALL_ORDER_HEX) {
    const p = unhex(h);
    assert.ok(isSmallOrder(p), h);
    // Without our check the secret really is all zeros: the test is about something real.
    assert.is(hex(nacl.scalarMult(BOB_SK, p)), '00'.repeat(32), h);
    assert.is(x25519(BOB_SK, p), undefined, h);
    const high = Uint8Array.from(p);
    high[31]! ^= 0x80;
    assert.ok(isSmallOrder(high), `${h} top bit flipped`);
    assert.is(x25519(BOB_SK, high), undefined, `${h} top bit flipped`);
  }
  assert.not.ok(isSmallOrder(unhex(ALICE_PK)));
  assert.not.ok(isSmallOrder(unhex('0900000000000000000000000000000000000000000000000000000000000000')));
});

test.run();
