import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode } from '../../src/protocol/errors.js';
import { ID_TEXT_LENGTH, NO_ID, formatId, idEquals, isValidRouterId, newAgentId, parseId, routerIdOf } from '../../src/protocol/id.js';
import { VECTORS, hexBuf, throwsCode } from './helpers.js';

test('format and parse the fixed IDs', () => {
  for (const text of [VECTORS.ids.A, VECTORS.ids.B, VECTORS.ids.C]) {
    const b = parseId(text);
    assert.is(b.length, 16);
    assert.is(formatId(b), text);
    assert.is(routerIdOf(b), 7);
  }
  assert.is(ID_TEXT_LENGTH, 32);
});

test('parse accepts either case; format prints lowercase', () => {
  const upper = 'FFFFFFFFABCDEF0123456789ABCDEF01';
  const b = parseId(upper);
  assert.is(formatId(b), upper.toLowerCase());
  assert.is(routerIdOf(b), 0xffffffff, 'router part read unsigned');
  assert.is(formatId(parseId('0000000aAbCdEf0123456789abcdef01')), '0000000aabcdef0123456789abcdef01');
});

test('formatId reads at an offset of a larger buffer, also a pooled view', () => {
  const id = hexBuf(VECTORS.ids.B);
  const big = Buffer.concat([Buffer.alloc(6, 1), id, Buffer.alloc(4, 2)]);
  assert.is(formatId(big, 6), VECTORS.ids.B);
  const view = big.subarray(6, 22);
  assert.is(formatId(view), VECTORS.ids.B);
  assert.is(routerIdOf(big, 6), 7);
});

test('parseId rejects everything that is not an ID with POSTERN_ERR_INVALID_ID', () => {
  const bad: unknown[] = [
    '',
    VECTORS.ids.A.slice(1),
    VECTORS.ids.A + '0',
    'g' + VECTORS.ids.A.slice(1),
    ` ${VECTORS.ids.A.slice(1)}`,
    `0x${VECTORS.ids.A.slice(2)}`,
    '00000007-aaaa-aaaa-aaaa-aaaaaaaaaaaa',
    VECTORS.ids.zero,
    '00000000aaaaaaaaaaaaaaaaaaaaaaaa',
    Buffer.alloc(15, 1),
    Buffer.alloc(17, 1),
    Buffer.alloc(16),
    Buffer.concat([Buffer.alloc(4), Buffer.alloc(12, 1)]),
    42,
    null,
    undefined,
    {},
    [0, 0, 0, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
  ];
  for (const b of bad) throwsCode(() => parseId(b as string), ErrorCode.INVALID_ID, JSON.stringify(b));
});

test('parseId of bytes returns a fresh copy', () => {
  const src = hexBuf(VECTORS.ids.A);
  const out = parseId(src);
  assert.ok(out !== src);
  src.fill(0);
  assert.is(formatId(out), VECTORS.ids.A);
  const u8 = new Uint8Array(hexBuf(VECTORS.ids.B));
  assert.is(formatId(parseId(u8)), VECTORS.ids.B);
});

test('the zero ID', () => {
  assert.is(NO_ID.length, 16);
  assert.ok(NO_ID.every((b) => b === 0));
  assert.is(formatId(NO_ID), VECTORS.ids.zero);
  assert.is(routerIdOf(NO_ID), 0);
});

test('router IDs: 1..2^32-1 integers only', () => {
  for (const ok of [1, 7, 0x7fffffff, 0x80000000, 0xffffffff]) assert.ok(isValidRouterId(ok), String(ok));
  for (const bad of [0, -1, 1.5, 2 ** 32, NaN, Infinity, '7', 7n, null, undefined]) assert.not.ok(isValidRouterId(bad), String(bad));
});

test('newAgentId: router part, random part, bad router ID', () => {
  const id = newAgentId(0xdeadbeef);
  assert.is(id.length, 16);
  assert.is(routerIdOf(id), 0xdeadbeef);
  assert.is(formatId(id).slice(0, 8), 'deadbeef');
  const out = Buffer.alloc(16);
  assert.ok(newAgentId(7, out) === out);
  assert.is(out.readUInt32BE(0), 7);
  assert.ok(!out.subarray(4).every((b) => b === 0), 'random part filled');
  for (const bad of [0, -1, 2 ** 32, 1.5, NaN]) throwsCode(() => newAgentId(bad), ErrorCode.INVALID_ARGUMENT, String(bad));
  // a generated ID parses
  assert.ok(parseId(formatId(id)).equals(id));
});

test('100 000 generated IDs are distinct and their random bytes look uniform', () => {
  const seen = new Set<string>();
  const counts = new Array<number>(256).fill(0);
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const id = newAgentId(7);
    seen.add(id.toString('hex'));
    for (let j = 4; j < 16; j++) counts[id[j]!]!++;
  }
  assert.is(seen.size, n);
  // 1.2M random bytes, 4687.5 expected per value: a counter or a constant would be far off.
  const expected = (n * 12) / 256;
  for (let v = 0; v < 256; v++) assert.ok(Math.abs(counts[v]! - expected) < expected * 0.1, `byte value ${v}: ${counts[v]}`);
});

test('consecutive IDs share no visible pattern (not enumerable)', () => {
  const a = newAgentId(7);
  const b = newAgentId(7);
  let diff = 0;
  for (let i = 4; i < 16; i++) if (a[i] !== b[i]) diff++;
  // A counter would differ in 1-2 bytes; 12 random bytes differ in ~11.95 on average.
  assert.ok(diff >= 6, `only ${diff} bytes differ`);
});

test('idEquals compares 16 bytes at offsets', () => {
  const a = hexBuf('ff' + VECTORS.ids.A);
  const b = hexBuf(VECTORS.ids.A + 'ee');
  assert.ok(idEquals(a, 1, b, 0));
  assert.not.ok(idEquals(a, 0, b, 0));
  const c = Buffer.from(b);
  c[15] = 0xab;
  assert.not.ok(idEquals(b, 0, c, 0), 'the last byte counts');
});

test.run();
