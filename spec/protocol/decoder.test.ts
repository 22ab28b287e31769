import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Decoder } from '../../src/protocol/decoder.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { ControlCodec } from '../../src/protocol/control.js';
import { encodeFrame, encodePing, encodePreamble, encodeSend } from '../../src/protocol/encoder.js';
import { FrameType, MAGIC, PRE_REGISTER_MAX_FRAME } from '../../src/protocol/frame.js';
import {
  Recorder,
  VECTORS,
  byKind,
  byteByByte,
  decodeChunked,
  fieldsOf,
  hexBuf,
  referenceDecode,
  throwsCode,
  vector,
  whole,
} from './helpers.js';

const MAX = VECTORS.defaultMaxFrame;
const codec = new ControlCodec();
const B = hexBuf(VECTORS.ids.B);

test('the vector file has every kind the tests rely on', () => {
  for (const kind of ['preamble', 'frame', 'skip', 'invalid', 'invalid-body'] as const) {
    assert.ok(byKind(kind).length > 0, kind);
  }
  const types = new Set(byKind('frame').map((v) => v.decoded!.typeCode));
  // CHALLENGE (§15) has its vectors in spec/vectors/streams.json, checked by spec/router/stable-id.test.ts.
  types.add(FrameType.CHALLENGE);
  for (const t of Object.values(FrameType)) assert.ok(types.has(t), `a vector for type ${t}`);
});

test('preamble vectors: the version is reported, nothing else', () => {
  for (const v of byKind('preamble')) {
    for (const run of [whole(hexBuf(v.hex), { preamble: true, maxFrame: MAX }), byteByByte(hexBuf(v.hex), { preamble: true, maxFrame: MAX })]) {
      assert.equal(run.error, null, v.name);
      assert.equal(run.versions, [v.decoded!['version']], v.name);
      assert.equal(run.frames, [], v.name);
    }
  }
});

test('frame vectors decode to one frame with the published fields, whole and byte by byte', () => {
  for (const v of byKind('frame')) {
    const data = hexBuf(v.hex);
    for (const run of [whole(data, { maxFrame: MAX }), byteByByte(data, { maxFrame: MAX })]) {
      assert.equal(run.error, null, v.name);
      assert.equal(run.frames, [v.hex], v.name);
      const buf = hexBuf(run.frames[0]!);
      assert.equal(fieldsOf(codec, buf, 0, buf.length), v.decoded, v.name);
    }
  }
});

test('skip vectors: unknown optional frames produce nothing and do not disturb the next frame', () => {
  const ping = vector('ping-8').hex;
  for (const v of byKind('skip')) {
    const data = hexBuf(v.hex + ping + v.hex + ping);
    for (const run of [whole(data, { maxFrame: MAX }), byteByByte(data, { maxFrame: MAX })]) {
      assert.equal(run.error, null, v.name);
      assert.equal(run.frames, [ping, ping], v.name);
    }
  }
});

test('skipping does not buffer the skipped body', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  // An optional frame of 100 000 bytes, given as its header then body in pieces.
  const head = Buffer.from([0x00, 0x01, 0x86, 0xa0, 0x80, 0x00]); // length 100000
  d.push(head);
  assert.equal(d.buffered, 0);
  for (let i = 0; i < 10; i++) {
    d.push(Buffer.alloc(9999, 0xee));
    assert.equal(d.buffered, 0);
  }
  d.push(Buffer.concat([Buffer.alloc(100004 - 6 - 99990, 0xee), hexBuf(vector('ping-empty').hex)]));
  assert.equal(rec.frames, [vector('ping-empty').hex]);
});

test('invalid vectors fail with their code after exactly failsAfter bytes, in any chunking', () => {
  for (const v of byKind('invalid')) {
    const data = hexBuf(v.hex);
    const opts = { preamble: v.decoder!.preamble, maxFrame: v.decoder!.maxFrame };
    const one = byteByByte(data, opts);
    assert.equal(one.error, v.expect!.error, v.name);
    assert.equal(one.consumed, v.expect!.failsAfter, `${v.name} fails after`);
    assert.equal(one.frames, [], v.name);
    assert.equal(whole(data, opts).error, v.expect!.error, v.name);
    // With a valid frame in front, that frame is still delivered before the failure.
    if (!opts.preamble) {
      const ping = vector('ping-8').hex;
      const run = whole(hexBuf(ping + v.hex), opts);
      assert.equal(run.frames, [ping], v.name);
      assert.equal(run.error, v.expect!.error, v.name);
    }
  }
});

test('the error carries the wire code to send in CLOSE', () => {
  for (const v of byKind('invalid')) {
    const d = new Decoder(new Recorder(), { maxFrame: v.decoder!.maxFrame, preamble: v.decoder!.preamble });
    const err = throwsCode(() => d.push(hexBuf(v.hex)), v.expect!.error, v.name);
    assert.equal(err.wireCode, v.expect!.wireCode, v.name);
    assert.ok(d.isStopped, v.name);
  }
});

/** Preamble plus every frame and skip vector, in file order. */
function allValid(): { data: Buffer; frames: string[] } {
  const parts = [vector('preamble-v1').hex];
  const frames: string[] = [];
  for (const v of byKind('frame', 'skip')) {
    parts.push(v.hex);
    if (v.kind === 'frame') frames.push(v.hex);
  }
  return { data: hexBuf(parts.join('')), frames };
}

test('every split point of the concatenation of all vectors gives the same frames', () => {
  const { data, frames } = allValid();
  const opts = { preamble: true, maxFrame: MAX };
  assert.equal(whole(data, opts).frames, frames);
  for (let cut = 1; cut < data.length; cut++) {
    const run = decodeChunked(data, opts, (i) => (i === 0 ? cut : data.length));
    assert.equal(run.error, null, `cut ${cut}`);
    assert.equal(run.versions, [1], `cut ${cut}`);
    if (run.frames.length !== frames.length || run.frames.some((f, i) => f !== frames[i])) {
      assert.unreachable(`cut at ${cut} changed the frames`);
    }
  }
  const one = byteByByte(data, opts);
  assert.equal(one.frames, frames);
});

test('every pair of split points around each frame boundary', () => {
  const { data, frames } = allValid();
  const opts = { preamble: true, maxFrame: MAX };
  // Three chunks [0,a) [a,b) [b,n) for all a < b within the first 200 bytes.
  const n = Math.min(200, data.length);
  for (let a = 1; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      const run = decodeChunked(data, opts, (i) => (i === 0 ? a : i === 1 ? b - a : data.length));
      if (run.frames.length !== frames.length || run.error !== null) assert.unreachable(`cuts ${a},${b}`);
    }
  }
});

test('the reference decoder agrees on every vector', () => {
  for (const v of VECTORS.vectors) {
    const opts = { preamble: v.decoder?.preamble ?? v.kind === 'preamble', maxFrame: v.decoder?.maxFrame ?? MAX };
    const ref = referenceDecode(hexBuf(v.hex), opts);
    const run = whole(hexBuf(v.hex), opts);
    assert.equal({ versions: run.versions, frames: run.frames, error: run.error }, ref, v.name);
  }
});

test('preamble: magic checked byte by byte, version unchecked, frames may follow in the same chunk', () => {
  const ping = hexBuf(vector('ping-8').hex);
  for (const version of [0, 1, 2, 255]) {
    const run = whole(Buffer.concat([encodePreamble(version), ping]), { preamble: true, maxFrame: MAX });
    assert.equal(run.versions, [version]);
    assert.equal(run.frames, [ping.toString('hex')]);
  }
  for (let i = 0; i < MAGIC.length; i++) {
    const bad = encodePreamble(1);
    bad[i] = bad[i]! ^ 0x01;
    const run = byteByByte(Buffer.concat([bad, ping]), { preamble: true, maxFrame: MAX });
    assert.equal(run.error, ErrorCode.BAD_MAGIC, `byte ${i}`);
    assert.equal(run.consumed, i + 1, `fails at byte ${i}`);
    assert.equal(run.versions, []);
  }
  // Without `preamble`, the same bytes are a frame header (length 0x89505354): too large.
  assert.equal(whole(encodePreamble(1), { maxFrame: MAX }).error, ErrorCode.FRAME_TOO_LARGE);
});

test('zero copy: frames of one chunk are views of that chunk', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  const hexes = ['send-hello', 'ping-8', 'deliver-hello'].map((n) => vector(n).hex);
  const chunk = hexBuf(hexes.join(''));
  const before = Buffer.from(chunk);
  d.push(chunk);
  assert.equal(rec.raw.length, 3);
  let off = 0;
  rec.raw.forEach((r, i) => {
    assert.ok(r.buf === chunk, `frame ${i} is a view of the chunk`);
    assert.is(r.start, off);
    assert.is(r.end, off + hexes[i]!.length / 2);
    off = r.end;
  });
  assert.ok(chunk.equals(before), 'the decoder never writes into a chunk');
});

test('zero copy: later pushes do not clobber earlier frames; straddling frames are copied once', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  const send = hexBuf(vector('send-hello').hex);
  const deliver = hexBuf(vector('deliver-hello').hex);
  // chunk1: a whole SEND, then 3 bytes of a DELIVER header; chunk2: the rest of it, then
  // 10 bytes of another SEND; chunk3: the rest.
  const c1 = Buffer.concat([send, deliver.subarray(0, 3)]);
  const c2 = Buffer.concat([deliver.subarray(3), send.subarray(0, 10)]);
  const c3 = Buffer.from(send.subarray(10));
  d.push(c1);
  assert.equal(d.buffered, 3);
  d.push(c2);
  assert.equal(d.buffered, 10);
  d.push(c3);
  assert.equal(d.buffered, 0);
  assert.equal(rec.raw.length, 3);
  const [first, second, third] = rec.raw as [(typeof rec.raw)[0], (typeof rec.raw)[0], (typeof rec.raw)[0]];
  assert.ok(first.buf === c1);
  // Straddling frames: a fresh buffer of exactly the frame's size, the frame at 0.
  for (const [r, want] of [
    [second, deliver],
    [third, send],
  ] as const) {
    assert.ok(r.buf !== c1 && r.buf !== c2 && r.buf !== c3);
    assert.is(r.start, 0);
    assert.is(r.end, want.length);
    assert.is(r.buf.length, want.length);
  }
  assert.ok(second.buf !== third.buf);
  // A socket may reuse its memory: scribble over every chunk, then check the frames.
  c1.fill(0xff);
  c2.fill(0xff);
  c3.fill(0xff);
  d.push(Buffer.alloc(0));
  d.push(hexBuf(vector('ping-8').hex));
  assert.ok(second.buf.subarray(second.start, second.end).equals(deliver));
  assert.ok(third.buf.subarray(third.start, third.end).equals(send));
  // The first frame is a view of c1, which its owner (the test) overwrote: views alias.
  assert.ok(first.buf.subarray(first.start, first.end).equals(Buffer.alloc(send.length, 0xff)));
});

test('a split header is reassembled without disturbing an earlier reassembled frame', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  const a = hexBuf(vector('send-hello').hex);
  const b = hexBuf(vector('deliver-hello').hex);
  for (const f of [a, b]) {
    d.push(Buffer.from(f.subarray(0, 2)));
    d.push(Buffer.from(f.subarray(2, 5)));
    d.push(Buffer.from(f.subarray(5)));
  }
  assert.equal(rec.raw.map((r) => r.buf.toString('hex', r.start, r.end)), [a.toString('hex'), b.toString('hex')]);
});

test('limits are checked on the header, before buffering: a 1 GiB SEND fails after 6 bytes', () => {
  const d = new Decoder(new Recorder(), { maxFrame: MAX });
  const header = Buffer.from([0x40, 0x00, 0x00, 0x00, FrameType.SEND, 0x00]);
  for (let i = 0; i < 5; i++) {
    d.push(header.subarray(i, i + 1));
    assert.ok(d.buffered <= 6, 'only the header is held');
  }
  throwsCode(() => d.push(header.subarray(5, 6)), ErrorCode.FRAME_TOO_LARGE);
  assert.ok(d.buffered <= 6);
  assert.ok(d.isStopped);
  // Input after a failure is ignored.
  d.push(hexBuf(vector('ping-8').hex));
});

test('a frame of exactly maxFrame is accepted, one byte more is not', () => {
  for (const maxFrame of [PRE_REGISTER_MAX_FRAME, 1050, MAX]) {
    const ok = Buffer.concat(encodeSend(B, 1, Buffer.alloc(maxFrame - 26, 7)));
    assert.equal(whole(ok, { maxFrame }).frames.length, 1);
    const big = Buffer.concat(encodeSend(B, 1, Buffer.alloc(maxFrame - 25, 7)));
    const run = byteByByte(big.subarray(0, 64), { maxFrame });
    assert.equal(run.error, ErrorCode.FRAME_TOO_LARGE);
    assert.equal(run.consumed, 6);
  }
});

test('a large frame straddling many chunks is buffered up to its size and delivered once', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  const payload = Buffer.alloc(MAX - 26);
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
  const frame = Buffer.concat(encodeSend(B, 9, payload));
  for (let off = 0; off < frame.length; off += 65536) {
    d.push(frame.subarray(off, off + 65536));
    assert.ok(d.buffered <= frame.length);
  }
  assert.equal(rec.raw.length, 1);
  const r = rec.raw[0]!;
  assert.ok(r.buf.subarray(r.start, r.end).equals(frame));
});

test('maxFrame may be raised between pushes (after REGISTERED)', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: PRE_REGISTER_MAX_FRAME });
  const big = Buffer.concat(encodeSend(B, 1, Buffer.alloc(5000)));
  d.push(hexBuf(vector('registered-a').hex));
  d.maxFrame = MAX;
  d.push(big);
  assert.equal(rec.raw.length, 2);
  const d2 = new Decoder(new Recorder(), { maxFrame: PRE_REGISTER_MAX_FRAME });
  throwsCode(() => d2.push(big), ErrorCode.FRAME_TOO_LARGE);
});

test('stop() inside a frame callback: the rest of the chunk is dropped and later pushes ignored', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  rec.onFrame = () => {
    if (rec.raw.length === 2) d.stop();
  };
  const ping = vector('ping-8').hex;
  d.push(hexBuf(ping.repeat(4)));
  assert.is(rec.raw.length, 2);
  assert.ok(d.isStopped);
  d.push(hexBuf(ping));
  assert.is(rec.raw.length, 2);
  assert.is(d.buffered, 0);
});

test('stop() inside the preamble callback drops the frames behind the preamble', () => {
  const rec = new Recorder();
  const d = new Decoder(
    {
      preamble: (v) => {
        rec.versions.push(v);
        d.stop();
      },
      frame: (b, s, e) => rec.frame(b, s, e),
    },
    { maxFrame: MAX, preamble: true },
  );
  d.push(Buffer.concat([encodePreamble(1), encodePing()]));
  assert.equal(rec.versions, [1]);
  assert.equal(rec.frames, []);
});

test('stop() while a straddling frame is pending: it is never delivered', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  const send = hexBuf(vector('send-hello').hex);
  d.push(send.subarray(0, 10));
  d.stop();
  d.push(send.subarray(10));
  assert.equal(rec.frames, []);
});

test('control frames decoded from the wire by type, flags on non-SEND frames are passed through', () => {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: MAX });
  const withFlags = Buffer.concat(encodeFrame(FrameType.REGISTER, Buffer.from([0x80]), 0xff));
  d.push(withFlags);
  assert.equal(rec.frames, [withFlags.toString('hex')]);
});

test('errors thrown by the decoder are PosternErrors with a code from ErrorCode', () => {
  const codes = new Set<string>(Object.values(ErrorCode));
  for (const v of byKind('invalid')) {
    const d = new Decoder(new Recorder(), { maxFrame: v.decoder!.maxFrame, preamble: v.decoder!.preamble });
    try {
      d.push(hexBuf(v.hex));
      assert.unreachable(v.name);
    } catch (err) {
      assert.instance(err, PosternError);
      assert.ok(codes.has((err as PosternError).code));
    }
  }
});

test.run();
