import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ControlCodec, readClose, readError, readRouteError } from '../../src/protocol/control.js';
import { Decoder } from '../../src/protocol/decoder.js';
import {
  encodeClose,
  encodeDeliver,
  encodeError,
  encodeFrame,
  encodePing,
  encodePong,
  encodeRouteError,
  encodeSend,
  encodeSource,
} from '../../src/protocol/encoder.js';
import { FrameType, RELAY_HEADER_SIZE } from '../../src/protocol/frame.js';
import { newAgentId } from '../../src/protocol/id.js';
import { Recorder, byKind, decodeChunked, fieldsOf, hexBuf, prng, randInt } from './helpers.js';

const codec = new ControlCodec();
const MAX = 1 << 20;

test('vectors: decode, re-encode from the decoded fields, same bytes', () => {
  for (const v of byKind('frame')) {
    if (v.canonical === false) continue;
    const buf = hexBuf(v.hex);
    const f = fieldsOf(codec, buf, 0, buf.length) as Record<string, any>;
    let again: Buffer;
    switch (f['typeCode']) {
      case FrameType.REGISTER:
        again = Buffer.concat(codec.encodeRegister(codec.decodeMap(buf, 0, buf.length, 'REGISTER')));
        break;
      case FrameType.REGISTERED:
        again = Buffer.concat(codec.encodeRegistered(codec.decodeRegistered(buf, 0, buf.length)));
        break;
      case FrameType.DRAIN:
        again = Buffer.concat(codec.encodeDrain(codec.decodeDrain(buf, 0, buf.length)));
        break;
      case FrameType.LOOKUP:
        again = Buffer.concat(codec.encodeLookup(codec.decodeLookup(buf, 0, buf.length)));
        break;
      case FrameType.LOOKUP_RESULT:
        again = Buffer.concat(codec.encodeLookupResult(codec.decodeLookupResult(buf, 0, buf.length)));
        break;
      case FrameType.ERROR: {
        const e = readError(buf, 0, buf.length);
        again = encodeError(e.code, e.seq, e.id, e.text);
        break;
      }
      case FrameType.CLOSE: {
        const c = readClose(buf, 0, buf.length);
        again = encodeClose(c.code, c.reason);
        break;
      }
      case FrameType.PING:
        again = encodePing(hexBuf(f['payload']));
        break;
      case FrameType.PONG:
        again = encodePong(hexBuf(f['payload']));
        break;
      case FrameType.SEND:
        again = Buffer.concat(encodeSend(hexBuf(f['id']), f['seq'], hexBuf(f['payload']), f['flags']));
        break;
      case FrameType.DELIVER:
        again = Buffer.concat(encodeDeliver(hexBuf(f['id']), hexBuf(f['payload']), f['flags'], f['seq']));
        break;
      case FrameType.LINK_HELLO:
      case FrameType.LINK_CHALLENGE:
      case FrameType.LINK_AUTH:
      case FrameType.LINK_READY:
        again = Buffer.concat(codec.encodeMap(f['typeCode'], codec.decodeMap(buf, 0, buf.length, v.name)));
        break;
      case FrameType.SOURCE:
        again = encodeSource(hexBuf(f['id']), f['hops'], f['flags']);
        break;
      case FrameType.ROUTE_ERROR: {
        const e = readRouteError(buf, 0, buf.length);
        again = encodeRouteError(e.code, e.seq, e.id, e.src, e.text);
        break;
      }
      default:
        throw new Error(v.name);
    }
    assert.is(again.toString('hex'), v.hex, v.name);
  }
});

test('random frames: encode, decode in random chunks, same fields (seeded)', () => {
  const seed = (Date.now() ^ 0x5eed) >>> 0;
  const rnd = prng(seed);
  try {
    for (let round = 0; round < 200; round++) {
      const frames: Buffer[] = [];
      const want: Record<string, unknown>[] = [];
      const n = 1 + randInt(rnd, 20);
      for (let i = 0; i < n; i++) {
        const kind = randInt(rnd, 7);
        const payload = Buffer.alloc(randInt(rnd, kind >= 5 ? 65 : 3000));
        for (let j = 0; j < payload.length; j++) payload[j] = randInt(rnd, 256);
        const id = newAgentId(1 + randInt(rnd, 0xfffffffe));
        const seq = randInt(rnd, 0x100000000);
        const text = String.fromCodePoint(...Array.from({ length: randInt(rnd, 20) }, () => 0x20 + randInt(rnd, 0x3000)));
        let f: Buffer;
        if (kind === 0) f = Buffer.concat(encodeSend(id, seq, payload));
        else if (kind === 1) f = Buffer.concat(encodeDeliver(id, payload));
        else if (kind === 2) f = encodeError(randInt(rnd, 64), seq, id, text);
        else if (kind === 3) f = encodeClose(64 + randInt(rnd, 64), text);
        else if (kind === 4)
          f = Buffer.concat(
            codec.encodeRegistered({ id, router: id.readUInt32BE(0), maxFrame: 1050 + randInt(rnd, MAX), keepalive: 1 + seq, timeout: 1 + seq + randInt(rnd, 1000) }),
          );
        else if (kind === 5) f = encodePing(payload);
        else f = encodePong(payload);
        frames.push(f);
        want.push(fieldsOf(codec, f, 0, f.length));
        if (kind === 2) assert.is(readError(f, 0, f.length).text, text);
        if (kind === 3) assert.is(readClose(f, 0, f.length).reason, text);
      }
      const data = Buffer.concat(frames);
      const run = decodeChunked(data, { maxFrame: 2 * MAX }, () => 1 + randInt(rnd, 200));
      assert.is(run.error, null);
      assert.equal(
        run.frames.map((h) => {
          const b = hexBuf(h);
          return fieldsOf(codec, b, 0, b.length);
        }),
        want,
      );
    }
  } catch (err) {
    console.error(`roundtrip seed ${seed}`);
    throw err;
  }
});

test('a payload round trips byte for byte at every size up to 300 and at the limit', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  const to = newAgentId(7);
  const sizes = [...Array.from({ length: 301 }, (_, i) => i), MAX - RELAY_HEADER_SIZE];
  for (const size of sizes) {
    const p = Buffer.alloc(size);
    for (let i = 0; i < size; i++) p[i] = (i * 31 + size) & 0xff;
    for (const c of encodeSend(to, size, p)) d.push(Buffer.from(c));
    const r = rec.raw.at(-1)!;
    assert.ok(r.buf.subarray(r.start + RELAY_HEADER_SIZE, r.end).equals(p), `size ${size}`);
    assert.is(r.buf.readUInt32BE(r.start + 22), size);
  }
  assert.is(rec.raw.length, sizes.length);
});

test('REGISTER bodies with arbitrary keys survive the round trip', () => {
  const body = { agent: 'x', caps: [1, 2], n: 2 ** 32 - 1 };
  const f = Buffer.concat(codec.encodeRegister(body));
  assert.equal(codec.decodeMap(f, 0, f.length, 'REGISTER'), body);
  // Nested maps and floats are read, not interpreted: no control body defines either. [P-4.1]
  const h = Buffer.concat(codec.encodeRegister({ nested: { a: true }, n: 2 ** 40 }));
  const back = codec.decodeMap(h, 0, h.length, 'REGISTER');
  assert.equal([...(back['nested'] as Map<unknown, unknown>)], [['a', true]]);
  assert.is((back['n'] as { value: number }).value, 2 ** 40);
  const g = Buffer.concat(encodeFrame(FrameType.REGISTER, Buffer.from([0x80])));
  assert.equal(codec.decodeRegister(g, 0, g.length), { anonymous: false, stable: false });
});

test.run();
