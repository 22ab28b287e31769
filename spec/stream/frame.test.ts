/**
 * The stream frame codec against the §14.9 vectors (spec/vectors/streams.json): decode,
 * encode, and the malformed ones dropped with a reason.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeStreamFrame, encodeStreamFrame, isStreamPayload, STREAM_HEADER_SIZE, StreamType } from '../../src/stream/frame.js';
import { ROOT } from '../protocol/helpers.js';

interface Vec {
  name: string;
  kind: string;
  hex: string;
  decoded?: { typeCode: number; flags: number; id: number; value: number; body: string; payload?: string };
  expect?: { reason: string };
}

const FILE = JSON.parse(readFileSync(join(ROOT, 'spec', 'vectors', 'streams.json'), 'utf8')) as { vectors: Vec[] };

test('every stream vector decodes to its fields and encodes back to its bytes', () => {
  const vs = FILE.vectors.filter((v) => v.kind === 'stream');
  assert.ok(vs.length >= 14);
  for (const v of vs) {
    const bytes = Buffer.from(v.hex, 'hex');
    assert.ok(isStreamPayload(bytes), v.name);
    const f = decodeStreamFrame(bytes);
    assert.type(f, 'object', v.name);
    if (typeof f === 'string') continue;
    const d = v.decoded!;
    assert.equal([f.type, f.flags, f.id, f.value, f.body.toString('hex')], [d.typeCode, d.flags, d.id, d.value, d.body], v.name);
    assert.is(encodeStreamFrame(d.typeCode, d.flags, d.id, d.value, Buffer.from(d.body, 'hex')).toString('hex'), v.hex, v.name);
  }
});

test('the SEND vector carries a stream frame as its payload at offset 26', () => {
  const v = FILE.vectors.find((x) => x.kind === 'send')!;
  const bytes = Buffer.from(v.hex, 'hex');
  assert.is(bytes[4], 0x10);
  const payload = bytes.subarray(26);
  assert.is(payload.toString('hex'), v.decoded!.payload);
  const f = decodeStreamFrame(payload);
  assert.ok(typeof f !== 'string' && f.type === StreamType.OPEN && f.body.toString() === 'ssh');
});

test('malformed stream frames are refused with a reason, never thrown', () => {
  const vs = FILE.vectors.filter((v) => v.kind === 'invalid-stream');
  assert.ok(vs.length >= 4);
  for (const v of vs) assert.type(decodeStreamFrame(Buffer.from(v.hex, 'hex')), 'string', v.name);
  // over-long service name and reason
  const long = Buffer.alloc(256, 0x61);
  assert.type(decodeStreamFrame(encodeStreamFrame(StreamType.OPEN, 0, 1, 0, long)), 'string');
  assert.type(decodeStreamFrame(encodeStreamFrame(StreamType.OPEN, 0, 1, 0, long.subarray(0, 255))), 'object');
  assert.type(decodeStreamFrame(encodeStreamFrame(StreamType.RESET, 0, 1, 1, Buffer.alloc(257))), 'string');
  // every truncation of a valid frame below the header is refused
  const ok = encodeStreamFrame(StreamType.DATA, 0, 9, 0, Buffer.from('abc'));
  for (let n = 4; n < STREAM_HEADER_SIZE; n++) assert.type(decodeStreamFrame(ok.subarray(0, n)), 'string');
  assert.not.ok(isStreamPayload(Buffer.from('\x89PNG')));
  assert.not.ok(isStreamPayload(Buffer.from([0x89, 0x53, 0x54])));
});

test('random payloads behind the marker decode or are refused, never throw', () => {
  let seed = 13;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.alloc(4 + (rnd() % 40));
    for (let j = 0; j < b.length; j++) b[j] = rnd();
    b.set([0x89, 0x53, 0x54, 0x52]);
    const f = decodeStreamFrame(b);
    assert.ok(typeof f === 'string' || typeof f === 'object');
  }
});

test.run();
