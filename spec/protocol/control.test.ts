import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Packr } from 'msgpackr';
import { ControlCodec, readClose, readError, type RegisteredBody } from '../../src/protocol/control.js';
import { encodeClose, encodeError, encodeFrame } from '../../src/protocol/encoder.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { FrameType } from '../../src/protocol/frame.js';
import { VECTORS, byKind, hexBuf, hexBytes, throwsCode, vector } from './helpers.js';

const codec = new ControlCodec();
const packr = new Packr({ useRecords: false, variableMapSize: true });
const A = hexBuf(VECTORS.ids.A);
const GOOD: RegisteredBody = { id: A, router: 7, maxFrame: 1048576, keepalive: 30000, timeout: 45000 };

/** A REGISTERED frame whose body is `body` packed by msgpackr as given. */
const registered = (body: unknown): Buffer => Buffer.concat(encodeFrame(FrameType.REGISTERED, packr.pack(body)));
const register = (bodyHex: string): Buffer => Buffer.concat(encodeFrame(FrameType.REGISTER, hexBuf(bodyHex)));
const decodeRegistered = (f: Buffer): RegisteredBody => codec.decodeRegistered(f, 0, f.length);

test('REGISTERED vectors decode to their body', () => {
  for (const v of byKind('frame').filter((x) => x.decoded!.typeCode === FrameType.REGISTERED)) {
    assert.equal(hexBytes({ ...decodeRegistered(hexBuf(v.hex)) }), v.decoded!['body'], v.name);
  }
});

test('invalid-body vectors fail with POSTERN_ERR_MALFORMED', () => {
  const list = byKind('invalid-body');
  assert.ok(list.length >= 10);
  for (const v of list) {
    const f = hexBuf(v.hex);
    const decode =
      v.decoded!.typeCode === FrameType.REGISTER
        ? () => codec.decodeRegister(f, 0, f.length)
        : v.decoded!.typeCode === FrameType.DRAIN
          ? () => codec.decodeDrain(f, 0, f.length)
          : v.decoded!.typeCode === FrameType.LOOKUP
            ? () => codec.decodeLookup(f, 0, f.length)
            : () => decodeRegistered(f);
    const err = throwsCode(decode, v.expect!.error, v.name);
    assert.is(err.wireCode, 66, v.name);
  }
});

test('REGISTERED: each shape check fails on its own with MALFORMED', () => {
  assert.equal(decodeRegistered(registered(GOOD)).maxFrame, 1048576, 'the base case is valid');
  const cases: [string, unknown][] = [
    ['id missing', { ...GOOD, id: undefined }],
    ['id 17 bytes', { ...GOOD, id: Buffer.concat([A, Buffer.alloc(1)]) }],
    ['id array', { ...GOOD, id: [...A] }],
    ['router string', { ...GOOD, router: '7' }],
    ['router 2^32', { ...GOOD, router: 2 ** 32 }],
    ['router differs from id', { ...GOOD, router: 8 }],
    ['maxFrame missing', { ...GOOD, maxFrame: undefined }],
    ['maxFrame 1049', { ...GOOD, maxFrame: 1049 }],
    ['maxFrame 64 MiB + 1', { ...GOOD, maxFrame: 64 * 1024 * 1024 + 1 }],
    ['maxFrame float', { ...GOOD, maxFrame: 2000.5 }],
    ['maxFrame bool', { ...GOOD, maxFrame: true }],
    ['keepalive 0', { ...GOOD, keepalive: 0, timeout: 0 }],
    ['keepalive negative', { ...GOOD, keepalive: -5 }],
    ['keepalive null', { ...GOOD, keepalive: null }],
    ['keepalive 2^32', { ...GOOD, keepalive: 2 ** 32, timeout: 2 ** 32 }],
    ['timeout below keepalive', { ...GOOD, timeout: 29999 }],
    ['timeout string', { ...GOOD, timeout: '45000' }],
    ['timeout bigint over u32', { ...GOOD, timeout: 2n ** 40n }],
    ['array body', [1, 2, 3]],
    ['string body', 'REGISTERED'],
    ['binary body', A],
    ['number body', 7],
  ];
  for (const [what, body] of cases) {
    const clean = body !== null && typeof body === 'object' && !Array.isArray(body) && !Buffer.isBuffer(body)
      ? Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined))
      : body;
    throwsCode(() => decodeRegistered(registered(clean)), ErrorCode.MALFORMED, what);
  }
});

test('REGISTERED: unknown keys are ignored, key order does not matter, wide integers are accepted', () => {
  const extra = decodeRegistered(registered({ ...GOOD, future: { x: 1 }, mesh: [1, 2] }));
  assert.equal(Object.keys(extra).sort(), ['id', 'keepalive', 'maxFrame', 'router', 'timeout']);
  const reordered = decodeRegistered(registered({ timeout: 45000, keepalive: 30000, maxFrame: 1048576, router: 7, id: A }));
  assert.is(reordered.timeout, 45000);
  assert.ok(Buffer.from(reordered.id).equals(A));
  const wide = decodeRegistered(hexBuf(vector('registered-uint64').hex));
  assert.equal({ ...wide, id: Buffer.from(wide.id) }, { ...GOOD, id: A });
  // bigint values within u32 (how msgpackr decodes uint64) are numbers afterwards
  const big = decodeRegistered(registered({ ...GOOD, maxFrame: 1048576n, timeout: 45000n }));
  assert.is(typeof big.maxFrame, 'number');
  assert.is(big.timeout, 45000);
});

test('REGISTERED: the decoded id is a copy, not a view of the frame', () => {
  const f = hexBuf(vector('registered-a').hex);
  const b = decodeRegistered(f);
  f.fill(0);
  assert.ok(Buffer.from(b.id).equals(A));
});

test('REGISTER: any map is accepted, anything else is MALFORMED', () => {
  const ok = (bodyHex: string): unknown => {
    const f = register(bodyHex);
    return codec.decodeMap(f, 0, f.length, 'REGISTER');
  };
  assert.equal(ok('80'), {});
  assert.equal(ok('81a178c3'), { x: true });
  // map16 and map32 forms
  assert.equal(ok('de0000'), {});
  assert.equal(ok('df00000000'), {});
  assert.equal(ok('de0001a178c2'), { x: false });
  for (const bad of ['90', 'c0', 'c1', 'c3', '00', 'a0', 'c400', 'd40000', 'c70100', '8000', '81', '81a1']) {
    const f = register(bad);
    throwsCode(() => codec.decodeRegister(f, 0, f.length), ErrorCode.MALFORMED, bad);
  }
});

test('a repeated key: the last value counts (§4.1)', () => {
  // {x: 1, x: 2}
  const f = register('82a17801a17802');
  assert.equal(codec.decodeMap(f, 0, f.length, 'REGISTER'), { x: 2 });
});

test('REGISTER decoding honours [start, end): bytes around the frame are not read', () => {
  const inner = register('81a178c3');
  const buf = Buffer.concat([Buffer.from('zzzz'), inner, Buffer.from('c1c1')]);
  assert.equal(codec.decodeMap(buf, 4, 4 + inner.length, 'REGISTER'), { x: true });
});

test('readError and readClose read the vectors', () => {
  const e = readError(hexBuf(vector('error-unknown-destination').hex), 0, vector('error-unknown-destination').hex.length / 2);
  assert.equal({ ...e, id: e.id.toString('hex') }, { code: 1, seq: 3, id: VECTORS.ids.C, text: 'no such agent' });
  const c = readClose(hexBuf(vector('close-going-away').hex), 0, vector('close-going-away').hex.length / 2);
  assert.equal(c, { code: 72, reason: 'router shutting down' });
});

test('ERROR/CLOSE text: invalid UTF-8 does not throw, long text is capped at 512 bytes', () => {
  const bad = Buffer.concat([encodeClose(66), Buffer.from([0xff, 0xfe, 0xc3])]);
  bad.writeUInt32BE(bad.length - 4, 0);
  assert.is(typeof readClose(bad, 0, bad.length).reason, 'string');
  const long = encodeError(1, 1, null, 'x'.repeat(5000));
  assert.is(readError(long, 0, long.length).text.length, 512);
  assert.is(readClose(encodeClose(0, 'y'.repeat(600)), 0, 608).reason.length, 512);
});

test('each ControlCodec has its own packer (no shared structure state)', () => {
  const a = new ControlCodec();
  const b = new ControlCodec();
  const fa = Buffer.concat(a.encodeRegistered(GOOD));
  const fb = Buffer.concat(b.encodeRegistered(GOOD));
  assert.ok(fa.equals(fb));
  assert.is(fa.toString('hex'), vector('registered-a').hex);
  assert.equal(b.decodeRegistered(fa, 0, fa.length).maxFrame, 1048576);
});

test.run();
