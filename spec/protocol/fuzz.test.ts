/**
 * Bounded fuzz run of the decoder: random and mutated inputs, random chunking. The only
 * allowed failure is a PosternError with a code from ErrorCode, and the result must not
 * depend on the chunking: it must equal the reference decoder's on the whole input.
 *
 * Seeded: set FUZZ_SEED to replay a failure, FUZZ_N to change the number of cases.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Decoder } from '../../src/protocol/decoder.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { MAX_FRAME_SIZE_BY_TYPE, MIN_FRAME_SIZE } from '../../src/protocol/frame.js';
import { Recorder, byKind, hexBuf, prng, randInt, referenceDecode, vector } from './helpers.js';

const SEED = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) >>> 0 : (Date.now() * 2654435761) >>> 0;
const N = process.env['FUZZ_N'] !== undefined ? Number(process.env['FUZZ_N']) : 100_000;
const CODES = new Set<string>(Object.values(ErrorCode));
const FRAMES = byKind('frame', 'skip').map((v) => hexBuf(v.hex));
const INVALID = byKind('invalid')
  .filter((v) => !v.decoder!.preamble)
  .map((v) => hexBuf(v.hex));
const PREAMBLE = hexBuf(vector('preamble-v1').hex);
const LIMITS = [70, 1050, 4096, 65536, 1 << 20];
// Total sizes where a rule changes: type minima and maxima, and every limit above.
const BOUNDARIES = [...new Set([6, ...Object.values(MIN_FRAME_SIZE), ...Object.values(MAX_FRAME_SIZE_BY_TYPE), ...LIMITS])];

type Rnd = () => number;

function randomBytes(rnd: Rnd, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = randInt(rnd, 256);
  return b;
}

/** A valid stream: some vectors back to back; also returns where each frame starts. */
function validStream(rnd: Rnd, preamble: boolean): { data: Buffer; starts: number[] } {
  const parts: Buffer[] = preamble ? [PREAMBLE] : [];
  const starts: number[] = [];
  let off = preamble ? PREAMBLE.length : 0;
  const n = 1 + randInt(rnd, 8);
  for (let i = 0; i < n; i++) {
    const f = FRAMES[randInt(rnd, FRAMES.length)]!;
    starts.push(off);
    parts.push(f);
    off += f.length;
  }
  return { data: Buffer.concat(parts), starts };
}

function mutate(rnd: Rnd, preamble: boolean): Buffer {
  const { data, starts } = validStream(rnd, preamble);
  const b = Buffer.from(data);
  switch (randInt(rnd, 9)) {
    case 0: {
      // bit flips
      const flips = 1 + randInt(rnd, 4);
      for (let i = 0; i < flips; i++) {
        const p = randInt(rnd, b.length);
        b[p] = b[p]! ^ (1 << randInt(rnd, 8));
      }
      return b;
    }
    case 1:
      // truncation
      return b.subarray(0, randInt(rnd, b.length));
    case 2: {
      // splice: a prefix of this stream, then a suffix of another
      const other = validStream(rnd, false).data;
      return Buffer.concat([b.subarray(0, randInt(rnd, b.length + 1)), other.subarray(randInt(rnd, other.length))]);
    }
    case 3: {
      // a frame's length field replaced: near its real value, or anything
      const s = starts[randInt(rnd, starts.length)]!;
      const real = b.readUInt32BE(s);
      const r = rnd();
      const len =
        r < 0.35
          ? Math.max(0, real + randInt(rnd, 9) - 4)
          : r < 0.7
            ? BOUNDARIES[randInt(rnd, BOUNDARIES.length)]! - 4 + randInt(rnd, 3) - 1
            : randInt(rnd, 0x100000000);
      b.writeUInt32BE(len >>> 0, s);
      return b;
    }
    case 4: {
      // a frame's type replaced
      const s = starts[randInt(rnd, starts.length)]!;
      b[s + 4] = randInt(rnd, 256);
      return b;
    }
    case 5: {
      // random bytes inserted or deleted
      const p = randInt(rnd, b.length + 1);
      if (rnd() < 0.5) return Buffer.concat([b.subarray(0, p), randomBytes(rnd, 1 + randInt(rnd, 8)), b.subarray(p)]);
      return Buffer.concat([b.subarray(0, p), b.subarray(Math.min(b.length, p + 1 + randInt(rnd, 8)))]);
    }
    case 6: {
      // an invalid vector spliced in at a frame boundary
      const s = starts[randInt(rnd, starts.length)]!;
      return Buffer.concat([b.subarray(0, s), INVALID[randInt(rnd, INVALID.length)]!, b.subarray(s)]);
    }
    case 7:
      // a run of a section duplicated
      {
        const p = randInt(rnd, b.length);
        const q = p + randInt(rnd, b.length - p + 1);
        return Buffer.concat([b.subarray(0, q), b.subarray(p, q), b.subarray(q)]);
      }
    default:
      // pure noise, sometimes behind a valid preamble
      return Buffer.concat([preamble && rnd() < 0.5 ? PREAMBLE : Buffer.alloc(0), randomBytes(rnd, randInt(rnd, 300))]);
  }
}

test(`fuzz: ${N} random and mutated inputs through the decoder in random chunks (seed ${SEED})`, () => {
  const rnd = prng(SEED);
  const outcomes = new Map<string, number>();
  let i = 0;
  let input: Buffer = Buffer.alloc(0);
  let opts = { preamble: false, maxFrame: 0 };
  try {
    for (i = 0; i < N; i++) {
      opts = { preamble: rnd() < 0.3, maxFrame: LIMITS[randInt(rnd, LIMITS.length)]! };
      input = mutate(rnd, opts.preamble);
      const rec = new Recorder();
      const d = new Decoder(rec, opts);
      let error: string | null = null;
      let off = 0;
      const mode = randInt(rnd, 3);
      while (off < input.length) {
        const n = mode === 0 ? 1 : mode === 1 ? 1 + randInt(rnd, 16) : 1 + randInt(rnd, input.length);
        const chunk = Buffer.from(input.subarray(off, off + n));
        off += n;
        try {
          d.push(chunk);
        } catch (err) {
          if (!(err instanceof PosternError) || !CODES.has(err.code)) throw err;
          error = err.code;
          assert.ok(d.isStopped);
          break;
        }
        // The decoder holds at most a header or one frame within the limit.
        if (d.buffered > opts.maxFrame) assert.unreachable(`buffered ${d.buffered} > maxFrame ${opts.maxFrame}`);
      }
      const ref = referenceDecode(input, opts);
      if (error !== ref.error || rec.frames.length !== ref.frames.length || rec.frames.some((f, k) => f !== ref.frames[k])) {
        assert.unreachable(`differs from the reference: got ${error} after ${rec.frames.length} frames, want ${ref.error} after ${ref.frames.length}`);
      }
      assert.equal(rec.versions, ref.versions);
      const key = error ?? 'ok';
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
  } catch (err) {
    console.error(
      `fuzz failure: FUZZ_SEED=${SEED} case ${i}, preamble ${opts.preamble}, maxFrame ${opts.maxFrame}, input ${input.toString('hex').slice(0, 400)}`,
    );
    throw err;
  }
  // The run must reach every failure mode, or it is not exercising the decoder.
  for (const code of [ErrorCode.MALFORMED, ErrorCode.FRAME_TOO_LARGE, ErrorCode.UNKNOWN_FRAME, ErrorCode.BAD_MAGIC, 'ok']) {
    assert.ok((outcomes.get(code) ?? 0) > N / 200, `outcome ${code}: ${outcomes.get(code) ?? 0}`);
  }
});

test('fuzz: random bodies for REGISTER/REGISTERED only ever fail with MALFORMED', async () => {
  const { ControlCodec } = await import('../../src/protocol/control.js');
  const codec = new ControlCodec();
  const rnd = prng(SEED ^ 0xc0ffee);
  const seeds = byKind('frame', 'invalid-body')
    .filter((v) => v.decoded!.typeCode === 1 || v.decoded!.typeCode === 2)
    .map((v) => hexBuf(v.hex));
  for (let i = 0; i < 20_000; i++) {
      const base = Buffer.from(seeds[randInt(rnd, seeds.length)]!);
      const flips = 1 + randInt(rnd, 3);
      for (let k = 0; k < flips; k++) {
        const p = 6 + randInt(rnd, base.length - 6);
        base[p] = rnd() < 0.5 ? randInt(rnd, 256) : base[p]! ^ (1 << randInt(rnd, 8));
      }
      for (const decode of [() => codec.decodeRegister(base, 0, base.length), () => codec.decodeRegistered(base, 0, base.length)]) {
        try {
          decode();
        } catch (err) {
          if (!(err instanceof PosternError) || err.code !== ErrorCode.MALFORMED) {
            console.error(`control fuzz: FUZZ_SEED=${SEED} body ${base.toString('hex')}`);
            throw err;
          }
        }
      }
  }
});

test.run();
