import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ControlCodec } from '../../src/protocol/control.js';
import {
  encodeClose,
  encodeDeliver,
  encodeError,
  encodeFrame,
  encodePing,
  encodePong,
  encodePreamble,
  encodeRouteError,
  encodeSend,
  encodeSource,
  writeRelayHeader,
} from '../../src/protocol/encoder.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { FrameType, RELAY_HEADER_SIZE } from '../../src/protocol/frame.js';
import { VECTORS, byKind, bytesFromHex, hexBuf, throwsCode, vector, type Vector } from './helpers.js';

const codec = new ControlCodec();
const join = (x: Buffer | Buffer[]): string => (Array.isArray(x) ? Buffer.concat(x) : x).toString('hex');

/** Encodes a vector from its decoded fields with the encoder in src/. */
function encodeVector(v: Vector): string {
  const f = v.decoded as Record<string, any>;
  if (v.kind === 'preamble') return join(encodePreamble(f['version']));
  switch (f['typeCode']) {
    case FrameType.REGISTER:
      return join(codec.encodeRegister(bytesFromHex(f['body'])));
    case FrameType.REGISTERED:
      return join(codec.encodeRegistered(bytesFromHex(f['body']) as any));
    case FrameType.DRAIN:
      return join(codec.encodeDrain(f['body']));
    case FrameType.LOOKUP:
      return join(codec.encodeLookup(bytesFromHex(f['body']) as any));
    case FrameType.LOOKUP_RESULT:
      return join(codec.encodeLookupResult(bytesFromHex(f['body']) as any));
    case FrameType.ERROR:
      return join(encodeError(f['code'], f['seq'], hexBuf(f['id']), f['text']));
    case FrameType.CLOSE:
      return join(encodeClose(f['code'], f['reason']));
    case FrameType.PING:
      return join(encodePing(hexBuf(f['payload'])));
    case FrameType.PONG:
      return join(encodePong(hexBuf(f['payload'])));
    case FrameType.SEND:
      return join(encodeSend(hexBuf(f['id']), f['seq'], hexBuf(f['payload']), f['flags']));
    case FrameType.DELIVER:
      return join(encodeDeliver(hexBuf(f['id']), hexBuf(f['payload']), f['flags'], f['seq']));
    case FrameType.LINK_HELLO:
    case FrameType.LINK_CHALLENGE:
    case FrameType.LINK_AUTH:
    case FrameType.LINK_READY: {
      // the key order is the vector's
      return join(codec.encodeMap(f['typeCode'], bytesFromHex(f['body'])));
    }
    case FrameType.SOURCE:
      return join(encodeSource(hexBuf(f['id']), f['hops'], f['flags']));
    case FrameType.ROUTE_ERROR:
      return join(encodeRouteError(f['code'], f['seq'], hexBuf(f['id']), hexBuf(f['src']), f['text']));
  }
  throw new Error(`no encoder for ${v.name}`);
}

test('every canonical preamble and frame vector encodes to its hex', () => {
  let n = 0;
  for (const v of byKind('preamble', 'frame')) {
    if (v.canonical === false) continue;
    assert.is(encodeVector(v), v.hex, v.name);
    n++;
  }
  assert.ok(n >= 20, `${n} vectors encoded`);
});

test('ERROR with no ID writes the zero ID', () => {
  assert.is(join(encodeError(3, 0, null)), vector('error-already-registered').hex);
});

test('defaults: empty REGISTER body, empty PING/PONG, empty CLOSE reason', () => {
  assert.is(join(codec.encodeRegister()), vector('register-empty').hex);
  assert.is(join(encodePing()), vector('ping-empty').hex);
  assert.is(join(encodePong()), vector('pong-empty').hex);
  assert.is(join(encodeClose(0)), vector('close-normal').hex);
  assert.is(join(encodeDeliver(hexBuf(VECTORS.ids.A), hexBuf('68656c6c6f'))), vector('deliver-hello').hex);
});

test('the payload is not copied: the caller\'s Buffer is the second chunk', () => {
  const payload = Buffer.from('hello');
  const to = hexBuf(VECTORS.ids.B);
  const send = encodeSend(to, 1, payload);
  assert.is(send.length, 2);
  assert.ok(send[1] === payload, 'SEND payload is the same object');
  assert.is(send[0]!.length, RELAY_HEADER_SIZE);
  const deliver = encodeDeliver(to, payload);
  assert.ok(deliver[1] === payload, 'DELIVER payload is the same object');
  const body = Buffer.from([0x80]);
  assert.ok(encodeFrame(FrameType.REGISTER, body)[1] === body, 'frame body is the same object');
  // A Uint8Array that is not a Buffer is wrapped, not copied: same memory.
  const u = new Uint8Array(new ArrayBuffer(32), 8, 5);
  u.set([1, 2, 3, 4, 5]);
  const c = encodeSend(to, 1, u)[1]!;
  assert.ok(c.buffer === u.buffer && c.byteOffset === 8 && c.length === 5);
  u[0] = 9;
  assert.is(c[0], 9, 'writes to the payload show through');
});

test('an empty payload gives a header chunk only', () => {
  const to = hexBuf(VECTORS.ids.B);
  assert.is(encodeSend(to, 2, Buffer.alloc(0)).length, 1);
  assert.is(encodeFrame(FrameType.PING, Buffer.alloc(0)).length, 1);
});

test('seq is written as a u32: negative and large numbers wrap like >>> 0', () => {
  const to = hexBuf(VECTORS.ids.A);
  assert.is(join(encodeSend(to, -1, Buffer.from('x'))), vector('send-max-seq').hex);
});

test('writeRelayHeader writes into a caller\'s buffer at an offset', () => {
  const out = Buffer.alloc(40, 0xee);
  writeRelayHeader(out, 4, FrameType.SEND, 0, hexBuf(VECTORS.ids.B), 1, 5);
  assert.is(out.toString('hex', 0, 4), 'eeeeeeee');
  assert.is(out.toString('hex', 4, 30), vector('send-hello').hex.slice(0, 52));
  assert.is(out.toString('hex', 30), 'ee'.repeat(10));
});

test('bad arguments are coded errors', () => {
  throwsCode(() => encodePing(Buffer.alloc(65)), ErrorCode.INVALID_ARGUMENT);
  throwsCode(() => encodePong(Buffer.alloc(65)), ErrorCode.INVALID_ARGUMENT);
  assert.is(encodePing(Buffer.alloc(64)).length, 70);
  throwsCode(() => encodeSend(Buffer.alloc(15), 1, Buffer.alloc(0)), ErrorCode.INVALID_ID);
  throwsCode(() => encodeDeliver(Buffer.alloc(17), Buffer.alloc(0)), ErrorCode.INVALID_ID);
  throwsCode(() => encodeError(1, 1, Buffer.alloc(20), 'hello'), ErrorCode.INVALID_ID);
  for (const code of [-1, 65536, 1.5, NaN]) {
    throwsCode(() => encodeError(code, 1, null), ErrorCode.INVALID_ARGUMENT, String(code));
    throwsCode(() => encodeClose(code), ErrorCode.INVALID_ARGUMENT, String(code));
  }
  assert.is(encodeClose(65535).readUInt16BE(6), 65535);
});

test('text fields: multi-byte UTF-8 is counted in bytes', () => {
  const e = encodeError(1, 7, null, 'ü€');
  assert.is(e.readUInt32BE(0), 2 + 22 + 5);
  const c = encodeClose(72, '😀');
  assert.is(c.length, 8 + 4);
  assert.is(c.toString('utf8', 8), '😀');
});

test.run();
