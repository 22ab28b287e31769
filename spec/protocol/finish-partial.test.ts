import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodeFrame, encodePing, encodeSend } from '../../src/protocol/encoder.js';
import { ErrorCode, type PosternError } from '../../src/protocol/errors.js';

function collector(): { frames: Buffer[]; d: Decoder } {
  const frames: Buffer[] = [];
  const d = new Decoder({ frame: (b, s, e) => frames.push(Buffer.from(b.subarray(s, e))) }, { maxFrame: 4096 });
  return { frames, d };
}

test('finishPartial completes a frame begun in an earlier push and hands back the rest at a frame boundary', () => {
  const a = Buffer.concat(encodeSend(Buffer.alloc(16, 1), 1, Buffer.alloc(40, 7)));
  const b = Buffer.concat(encodeSend(Buffer.alloc(16, 2), 2, Buffer.from('next')));
  const stream = Buffer.concat([a, b]);
  // every split inside the first frame, including inside its 6-byte header
  for (let cut = 1; cut < a.length; cut++) {
    const { frames, d } = collector();
    d.push(stream.subarray(0, cut));
    assert.not.ok(d.atFrameStart, `cut ${cut}`);
    const rest = stream.subarray(cut);
    const used = d.finishPartial(rest);
    assert.is(used, a.length - cut, `cut ${cut}`);
    assert.ok(d.atFrameStart);
    assert.equal(frames, [a]);
    d.push(rest.subarray(used));
    assert.equal(frames, [a, b]);
  }
});

test('finishPartial uses nothing at a frame boundary, finishes skipping an unknown optional frame, and fails like push', () => {
  const { frames, d } = collector();
  assert.is(d.finishPartial(encodePing()), 0);
  assert.ok(d.atFrameStart);
  const optional = Buffer.concat(encodeFrame(0x9a, Buffer.alloc(100, 1)));
  d.push(optional.subarray(0, 50));
  assert.is(d.finishPartial(optional.subarray(50)), optional.length - 50);
  assert.ok(d.atFrameStart);
  assert.is(frames.length, 0);
  const big = Buffer.alloc(6);
  big.writeUInt32BE(100_000, 0);
  big[4] = 0x10;
  d.push(big.subarray(0, 3));
  try {
    d.finishPartial(big.subarray(3));
    assert.unreachable('oversized');
  } catch (err) {
    assert.is((err as PosternError).code, ErrorCode.FRAME_TOO_LARGE);
  }
  assert.not.ok(d.atFrameStart);
});

test.run();
