import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_MAX_PAYLOAD, DEFAULT_SIZE_CLASSES, paddedSize, resolveSizeClasses } from '../../src/crypto/padding.js';
import { ANONYMOUS_OVERHEAD, SENDER_OVERHEAD, open, seal } from '../../src/crypto/seal.js';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { codeOf, testId } from './helpers.js';

const R = generateKeyPair();
const S = { id: testId(3, 0x30), keyPair: generateKeyPair() };

test('default classes: 64 .. 512 KiB by powers of two, then the largest default SEND payload', () => {
  assert.equal(DEFAULT_SIZE_CLASSES.slice(0, 5), [64, 128, 256, 512, 1024]);
  assert.is(DEFAULT_SIZE_CLASSES[13], 524288);
  assert.is(DEFAULT_SIZE_CLASSES[14], 1048550);
  assert.is(DEFAULT_SIZE_CLASSES.length, 15);
  assert.is(DEFAULT_MAX_PAYLOAD, 1048576 - 26);
  assert.ok(Object.isFrozen(DEFAULT_SIZE_CLASSES));
});

test('paddedSize: smallest class that holds it, then multiples of the largest', () => {
  const c = [100, 200, 500];
  const cases: Array<[number, number]> = [[0, 100], [1, 100], [100, 100], [101, 200], [200, 200], [201, 500], [500, 500], [501, 1000], [1000, 1000], [1001, 1500]];
  for (const [n, want] of cases) assert.is(paddedSize(n, c), want, `size ${n}`);
  assert.is(paddedSize(69, DEFAULT_SIZE_CLASSES), 128);
  assert.is(paddedSize(DEFAULT_MAX_PAYLOAD + 1, DEFAULT_SIZE_CLASSES), 2 * DEFAULT_MAX_PAYLOAD);
});

test('envelope lengths with pad: true land exactly on the class boundaries', () => {
  const cases: Array<[number, boolean, number]> = [
    [0, false, 128],
    [128 - ANONYMOUS_OVERHEAD, false, 128],
    [128 - ANONYMOUS_OVERHEAD + 1, false, 256],
    [0, true, 256],
    [256 - SENDER_OVERHEAD, true, 256],
    [256 - SENDER_OVERHEAD + 1, true, 512],
    [5000, true, 8192],
    [524288 - SENDER_OVERHEAD + 1, true, DEFAULT_MAX_PAYLOAD],
    [DEFAULT_MAX_PAYLOAD - SENDER_OVERHEAD, true, DEFAULT_MAX_PAYLOAD],
  ];
  for (const [n, withSender, want] of cases) {
    const content = new Uint8Array(n).fill(0xab);
    const env = seal({ content, recipientPublicKey: R.publicKey, pad: true, ...(withSender ? { sender: S } : {}) });
    assert.is(env.length, want, `${n} bytes, sender ${withSender}`);
    const got = open(env, R);
    assert.is(got.content.length, n);
    assert.ok(got.content.every((b) => b === 0xab));
  }
});

test('custom classes, and no padding by default or with pad: false', () => {
  const env = seal({ content: new Uint8Array(10), recipientPublicKey: R.publicKey, pad: [100, 300] });
  assert.is(env.length, 100);
  assert.is(seal({ content: new Uint8Array(250), recipientPublicKey: R.publicKey, pad: [100, 300] }).length, 600);
  assert.is(seal({ content: new Uint8Array(10), recipientPublicKey: R.publicKey }).length, 10 + ANONYMOUS_OVERHEAD);
  assert.is(seal({ content: new Uint8Array(10), recipientPublicKey: R.publicKey, pad: false }).length, 10 + ANONYMOUS_OVERHEAD);
  // A class smaller than the overhead is skipped, not an error.
  assert.is(seal({ content: new Uint8Array(0), recipientPublicKey: R.publicKey, pad: [8, 16, 1000] }).length, 1000);
});

test('bad classes: INVALID_OPTION', () => {
  for (const bad of [[], [0], [-1], [100, 50], [100, 100], [1.5], ['64'], 'yes', 7, {}]) {
    assert.is(codeOf(() => resolveSizeClasses(bad as unknown as boolean)), ErrorCode.INVALID_OPTION, JSON.stringify(bad));
  }
  assert.is(resolveSizeClasses(undefined), undefined);
  assert.is(resolveSizeClasses(false), undefined);
  assert.is(resolveSizeClasses(true), DEFAULT_SIZE_CLASSES);
});

test.run();
