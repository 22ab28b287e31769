import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { Session, type SessionHandler } from '../../src/agent/session.js';
import { connect } from '../../src/agent/agent.js';
import { Router } from '../../src/router/router.js';
import { ManualClock } from '../../src/net/clock.js';
import { DIRECT_MIN, DirectReader, SLAB_SIZE, directReaderOf, setDirectReader } from '../../src/net/reader.js';
import { ControlCodec } from '../../src/protocol/control.js';
import { encodeDeliver, encodePreamble } from '../../src/protocol/encoder.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { Flag, FrameType, PROTOCOL_VERSION, RELAY_HEADER_SIZE } from '../../src/protocol/frame.js';
import { newAgentId } from '../../src/protocol/id.js';

// The direct reader (src/net/reader.ts) against the decoder alone: the same bytes, read the
// way Node's onread reads them (each read fills at most the buffer the reader offers), cut
// at every boundary around a large frame, must produce the same calls as the decoder fed
// one whole chunk, and every payload handed out must still hold its bytes afterwards.

const codec = new ControlCodec();
const MAX_FRAME = 70_000;
const BIG = 65_536;

function payload(size: number, seed: number): Buffer {
  const p = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) p[i] = (i * 31 + seed * 7) & 0xff;
  return p;
}

/** Preamble, REGISTERED, then `frames`; returns the bytes and where each frame starts. */
function stream(frames: Buffer[][]): { bytes: Buffer; starts: number[] } {
  const parts: Buffer[] = [encodePreamble(PROTOCOL_VERSION)];
  parts.push(...codec.encodeRegistered({ id: newAgentId(1), router: 1, maxFrame: MAX_FRAME, keepalive: 60_000, timeout: 90_000 }));
  let off = Buffer.concat(parts).length;
  const starts: number[] = [];
  for (const f of frames) {
    starts.push(off);
    parts.push(...f);
    off += Buffer.concat(f).length;
  }
  return { bytes: Buffer.concat(parts), starts };
}

const A = newAgentId(1);
const B = newAgentId(2);
/**
 * small, LARGE, small x3, LARGE, LARGE, LARGE of the same size, small: two frames in one
 * read, a large frame followed by small ones, by one of another size and by one of its size
 * (read whole into a buffer of the guessed size).
 */
const FRAMES = [
  encodeDeliver(A, payload(10, 1)),
  encodeDeliver(B, payload(BIG, 2), Flag.SEALED),
  encodeDeliver(A, payload(0, 3)),
  encodeDeliver(A, payload(300, 4), Flag.ANONYMOUS),
  encodeDeliver(B, payload(5, 5)),
  encodeDeliver(A, payload(BIG - 1, 6)),
  encodeDeliver(B, payload(MAX_FRAME - RELAY_HEADER_SIZE, 7)),
  encodeDeliver(A, payload(MAX_FRAME - RELAY_HEADER_SIZE, 8), Flag.ANONYMOUS),
  encodeDeliver(A, payload(1, 9)),
];

const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

interface Run {
  log: string[];
  /** Every payload handed to the handler, with its bytes as they were at the callback. */
  held: Array<[Buffer, string]>;
  direct: number;
  adopted: number;
  session: Session;
}

function makeSession(reader: DirectReader | null, fastPath = true): { run: Run; socket: Duplex } {
  const log: string[] = [];
  const held: Array<[Buffer, string]> = [];
  const socket = new Duplex({ read() {}, write: (_c, _e, cb) => cb(), writev: (_c, cb) => cb() });
  if (reader !== null) setDirectReader(socket as Socket, reader);
  const handler: SessionHandler = {
    registered: () => log.push('registered'),
    message: (from, data, flags) => {
      held.push([data, digest(data)]);
      log.push(`message ${from} ${flags} ${data.length} ${digest(data)}`);
    },
    routerDrain: () => log.push('drain'),
    lookupResult: () => log.push('lookup'),
    errorFrame: (e) => log.push(`error ${e.code}`),
    pong: () => log.push('pong'),
    writeDrained: () => {},
    ended: (err) => log.push(`ended ${err.code}`),
  };
  const session = new Session(socket, { clock: new ManualClock(), connectTimeout: 10_000, closeTimeout: 1000, codec, fastPath }, handler);
  session.start();
  return { run: { log, held, direct: 0, adopted: 0, session }, socket };
}

/**
 * Reads `bytes` through a reader as Node's onread does: each read fills at most the buffer
 * the reader offers, and stops at the next of `cuts` (absolute offsets).
 */
function viaReader(bytes: Buffer, cuts: number[]): Run {
  const reader = new DirectReader();
  const { run } = makeSession(reader);
  let buf = reader.onread.buffer();
  let off = 0;
  const sorted = [...cuts].sort((a, b) => a - b);
  while (off < bytes.length) {
    const cut = sorted.find((c) => c > off) ?? bytes.length;
    const n = Math.min(buf.length, cut - off, bytes.length - off);
    bytes.copy(buf, 0, off, off + n);
    off += n;
    reader.onread.callback(n, buf);
    buf = reader.onread.buffer();
  }
  run.direct = reader.directReads;
  run.adopted = reader.adopted;
  return run;
}

/** The slow twin: the decoder alone, all bytes in one chunk. */
function viaDecoder(bytes: Buffer): Run {
  const { run, socket } = makeSession(null, false);
  socket.emit('data', bytes);
  return run;
}

function check(r: Run, want: Run, what: string): void {
  assert.equal(r.log, want.log, what);
  // Later reads wrote nothing into what was handed out before.
  for (const [data, hex] of r.held) assert.is(digest(data), hex, `${what}: a payload changed after its callback`);
}

test('frames cut at every boundary around a large frame: same calls as the decoder, payloads intact', () => {
  const { bytes, starts } = stream(FRAMES);
  const want = viaDecoder(bytes);
  assert.is(want.log.filter((l) => l.startsWith('message')).length, FRAMES.length);
  let direct = 0;
  let adopted = 0;
  let cases = 0;
  for (const big of [1, 5, 6, 7]) {
    const s = starts[big]!;
    const e = starts[big + 1]!;
    const points = new Set<number>();
    // the header split byte by byte, and the bytes around both ends of the frame
    for (let i = -2; i <= RELAY_HEADER_SIZE + 2; i++) points.add(s + i);
    for (const at of [e - s - DIRECT_MIN - 1, e - s - DIRECT_MIN, e - s - DIRECT_MIN + 1, DIRECT_MIN, (e - s) >> 1, e - s - 1, e - s, e - s + 1]) points.add(s + at);
    for (const p of points) {
      for (const cuts of [[p], [s, p], [p, p + 1], [p, p + 7, p + DIRECT_MIN]]) {
        const r = viaReader(bytes, cuts);
        check(r, want, `frame ${big}, cuts ${cuts.join(',')}`);
        direct += r.direct;
        adopted += r.adopted;
        cases++;
      }
    }
    // the large frame's header read one byte per read
    const bytewise: number[] = [];
    for (let i = 0; i <= RELAY_HEADER_SIZE; i++) bytewise.push(s + i);
    const r = viaReader(bytes, bytewise);
    check(r, want, `frame ${big}, header byte by byte`);
    assert.ok(r.direct > 0, 'the rest of a large frame was read straight into its buffer');
  }
  // Most cuts leave a rest long enough to read straight into the frame's buffer.
  assert.ok(direct > cases, `direct reads: ${direct} in ${cases} runs`);
  // Frame 7 follows one of its size: most runs read it whole into a buffer of that size.
  assert.ok(adopted > cases / 2, `adopted: ${adopted} in ${cases} runs`);
});

test('a bad header where a frame of the guessed size was expected ends the session as the decoder does', () => {
  const size = 66_000;
  const head = (type: number): Buffer => {
    const h = Buffer.from([0, 0, 0, 0, type, 0]);
    h.writeUInt32BE(size - 4, 0);
    return h;
  };
  const tails: Buffer[][] = [
    // the guessed size, a type routers never send
    [head(FrameType.SEND), Buffer.alloc(size - 6)],
    // the guessed size, an unknown critical type
    [head(0x7e), Buffer.alloc(size - 6)],
    // over maxFrame
    [Buffer.from([0, 1, 0x11, 0x71, FrameType.DELIVER, 0]), Buffer.alloc(size)],
    // an unknown optional frame of the guessed size is skipped, the next DELIVER taken
    [head(0xfe), Buffer.alloc(size - 6), ...encodeDeliver(B, payload(size - RELAY_HEADER_SIZE, 3))],
  ];
  for (const [i, tail] of tails.entries()) {
    const { bytes, starts } = stream([encodeDeliver(A, payload(size - RELAY_HEADER_SIZE, 1)), encodeDeliver(A, payload(size - RELAY_HEADER_SIZE, 2)), tail]);
    const want = viaDecoder(bytes);
    // The first frame is cut, so its rest is read into its buffer and its size guessed.
    const c = starts[0]! + 100;
    for (const cuts of [[c], [c, starts[2]!], [c, starts[2]! + 3], [c, starts[2]! + 100]]) {
      const r = viaReader(bytes, cuts);
      check(r, want, `tail ${i}, cuts ${cuts.join(',')}`);
      assert.ok(r.adopted > 0, `tail ${i}: the second frame was read into a buffer of the guessed size`);
    }
  }
});

test('a header over maxFrame is refused before any buffer is allocated for it, cut anywhere', () => {
  const frames = [encodeDeliver(A, payload(100, 1)), [Buffer.from([0, 1, 0x11, 0x71, FrameType.DELIVER, 0]), Buffer.alloc(RELAY_HEADER_SIZE - 6 + 64 * 1024)]];
  const { bytes, starts } = stream(frames);
  const s = starts[1]!;
  const declared = 0x11171 + 4;
  assert.ok(declared > MAX_FRAME);
  const sizes: number[] = [];
  const alloc = Buffer.allocUnsafe;
  Buffer.allocUnsafe = (n: number) => {
    sizes.push(n);
    return alloc(n);
  };
  try {
    for (let p = s - 1; p <= s + 7; p++) {
      const r = viaReader(bytes, [p, p + 1, p + 2]);
      assert.equal(r.log.slice(-1), [`ended ${ErrorCode.FRAME_TOO_LARGE}`], `cut at ${p - s}`);
      assert.is(r.direct, 0);
    }
  } finally {
    Buffer.allocUnsafe = alloc;
  }
  // Read slabs, and nothing the size of a frame (no frame of maxFrame or more was ever taken).
  assert.ok(sizes.includes(SLAB_SIZE));
  assert.ok(sizes.every((n) => n < MAX_FRAME || n === SLAB_SIZE), `allocated ${sizes.filter((n) => n !== SLAB_SIZE).join(', ')} bytes`);
});

test('a read into a frame the session no longer wants is dropped', () => {
  const { bytes, starts } = stream(FRAMES.slice(0, 2));
  const reader = new DirectReader();
  const { run } = makeSession(reader);
  let buf = reader.onread.buffer();
  const head = starts[1]! + RELAY_HEADER_SIZE;
  bytes.copy(buf, 0, 0, head);
  reader.onread.callback(head, buf);
  buf = reader.onread.buffer();
  assert.is(buf.length, BIG, 'the next read goes into the frame');
  run.session.abort(new PosternError(ErrorCode.CLOSED, 'test'));
  bytes.copy(buf, 0, head);
  reader.onread.callback(BIG, buf);
  assert.is(run.log.filter((l) => l.startsWith('message')).length, 1);
  assert.is(reader.onread.buffer().length >= 16 * 1024, true, 'back to the slab');
});

test('an unbound reader hands its reads to the socket as data', async () => {
  const reader = new DirectReader();
  const socket = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
  setDirectReader(socket as Socket, reader);
  assert.is(directReaderOf(socket), reader);
  assert.is(directReaderOf(new Duplex()), undefined);
  const got: Buffer[] = [];
  socket.on('data', (c: Buffer) => got.push(c));
  const buf = reader.onread.buffer();
  buf.write('hello');
  reader.onread.callback(5, buf);
  const buf2 = reader.onread.buffer();
  buf2.write('world');
  reader.onread.callback(5, buf2);
  await new Promise((r) => setImmediate(r));
  assert.is(Buffer.concat(got).toString(), 'helloworld');
});

test('over TCP: large and small messages interleaved arrive intact and stay intact', async () => {
  const router = new Router({ host: '127.0.0.1', port: 0 });
  const addr = await router.listen();
  const a = await connect({ router: `127.0.0.1:${addr.port}` });
  const b = await connect({ router: `127.0.0.1:${addr.port}` });
  const sizes = [BIG, 3, BIG, 200, 0, 100_000, 17, BIG * 2, 1];
  const sent: Buffer[] = [];
  const got: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${got.length} of ${sizes.length * 4} messages in 20 s`)), 20_000);
    b.on('message', (m) => {
      got.push(m.data);
      if (got.length === sizes.length * 4) resolve();
    });
  });
  for (let r = 0; r < 4; r++) {
    for (const [i, n] of sizes.entries()) {
      const p = payload(n, r * 16 + i);
      sent.push(p);
      a.send(b.id, p);
    }
  }
  await done.finally(() => clearTimeout(timer));
  for (const [i, p] of sent.entries()) assert.ok(got[i]!.equals(p), `message ${i}`);
  await a.close();
  await b.close();
  await router.close();
});

test.run();
