import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Duplex } from 'node:stream';
import { Session, type SessionHandler } from '../../src/agent/session.js';
import { ManualClock } from '../../src/net/clock.js';
import { ControlCodec } from '../../src/protocol/control.js';
import { encodeDeliver, encodeError, encodePing, encodePong, encodePreamble } from '../../src/protocol/encoder.js';
import { PosternError } from '../../src/protocol/errors.js';
import { Flag, FrameType, PROTOCOL_VERSION, RELAY_HEADER_SIZE } from '../../src/protocol/frame.js';
import { newAgentId } from '../../src/protocol/id.js';
import { prng } from '../helpers/random.js';

// The session's receive fast path (whole DELIVERs read straight from the chunk) against its
// slow twin, the decoder: the same bytes, split at random points, must produce the same
// calls, with the same arguments, in the same order, and the same end.

const codec = new ControlCodec();
const MAX_FRAME = 70_000;


/** The router's side of a session: a preamble, REGISTERED, then `frames`. */
function stream(random: () => number, n: number, tail: Buffer[] = []): Buffer {
  const parts: Buffer[] = [encodePreamble(PROTOCOL_VERSION)];
  parts.push(...codec.encodeRegistered({ id: newAgentId(1), router: 1, maxFrame: MAX_FRAME, keepalive: 60_000, timeout: 90_000 }));
  const senders = [newAgentId(1), newAgentId(2), newAgentId(3)];
  for (let i = 0; i < n; i++) {
    const r = random();
    if (r < 0.8) {
      const size = random() < 0.9 ? Math.floor(random() * 300) : Math.floor(random() * (MAX_FRAME - RELAY_HEADER_SIZE));
      const payload = Buffer.alloc(size);
      for (let j = 0; j < Math.min(size, 8); j++) payload[j] = Math.floor(random() * 256);
      const flags = [0, Flag.ANONYMOUS, Flag.SEALED, Flag.ANONYMOUS | Flag.SEALED][Math.floor(random() * 4)]!;
      parts.push(...encodeDeliver(senders[Math.floor(random() * senders.length)]!, payload, flags));
    } else if (r < 0.87) parts.push(encodePing(Buffer.from([i & 0xff])));
    else if (r < 0.94) parts.push(encodePong(Buffer.from([i & 0xff, 1])));
    else parts.push(encodeError(0x0102, i + 1, senders[0]!, 'no such agent'));
  }
  parts.push(...tail);
  return Buffer.concat(parts);
}

/** Splits `buf` at random points (some single bytes, some large pieces). */
function split(buf: Buffer, random: () => number): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    const r = random();
    const n = r < 0.2 ? 1 : r < 0.5 ? Math.floor(random() * 64) + 1 : Math.floor(random() * 200_000) + 1;
    // Copies, as a socket hands out fresh chunks.
    out.push(Buffer.from(buf.subarray(off, Math.min(buf.length, off + n))));
    off += n;
  }
  return out;
}

/** Feeds `chunks` to a session and records every call it makes to its handler and its writes. */
async function run(chunks: Buffer[], fastPath: boolean): Promise<string[]> {
  const log: string[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      log.push(`write ${chunk.toString('hex')}`);
      cb();
    },
    writev(chunks, cb) {
      log.push(`write ${Buffer.concat(chunks.map((c) => c.chunk as Buffer)).toString('hex')}`);
      cb();
    },
  });
  const rec = (name: string) => (...args: unknown[]) => {
    log.push(`${name} ${args.map((a) => (Buffer.isBuffer(a) ? a.toString('hex') : a instanceof PosternError ? `${a.code}/${a.seq}/${a.to}` : JSON.stringify(a))).join(' ')}`);
  };
  const handler: SessionHandler = {
    registered: () => log.push('registered'),
    message: rec('message'),
    routerDrain: rec('drain'),
    lookupResult: rec('lookup'),
    errorFrame: rec('error'),
    pong: rec('pong'),
    writeDrained: () => {},
    ended: (err) => log.push(`ended ${err.code}`),
  };
  const session = new Session(socket, { clock: new ManualClock(), connectTimeout: 10_000, closeTimeout: 1000, codec, fastPath }, handler);
  session.start();
  log.length = 0; // the preamble and REGISTER
  for (const c of chunks) socket.emit('data', c);
  await new Promise((r) => setImmediate(r));
  session.abort(new PosternError('POSTERN_ERR_CLOSED' as never, 'test over'));
  return log;
}

test('fast path and decoder agree on random streams split at random points', async () => {
  const seeds = Number(process.env['POSTERN_SESSION_SEEDS'] ?? 12);
  for (let seed = 1; seed <= seeds; seed++) {
    const random = prng(seed);
    const bytes = stream(random, 300);
    const chunks = split(bytes, random);
    const fast = await run(chunks, true);
    const slow = await run(chunks, false);
    assert.ok(fast.filter((l) => l.startsWith('message')).length > 100, `seed ${seed}: DELIVERs delivered`);
    assert.equal(fast, slow, `seed ${seed}`);
  }
});

test('fast path and decoder end alike on a bad frame after good ones', async () => {
  const tails: Buffer[][] = [
    // DELIVER over maxFrame (checked when its header is read)
    [Buffer.from([0, 1, 0x20, 0, FrameType.DELIVER, 0])],
    // a whole DELIVER over maxFrame
    encodeDeliver(newAgentId(1), Buffer.alloc(MAX_FRAME + 100 - RELAY_HEADER_SIZE)),
    // DELIVER shorter than its fixed header, with more bytes behind it
    [Buffer.from([0, 0, 0, 4, FrameType.DELIVER, 0, 1, 2]), ...encodeDeliver(newAgentId(1), Buffer.alloc(30))],
    // a type routers never send
    [Buffer.from([0, 0, 0, 2, FrameType.SEND, 0])],
    // the router's CLOSE
    [Buffer.from([0, 0, 0, 5, FrameType.CLOSE, 0, 0x01, 0x00, 0])],
  ];
  for (const [i, tail] of tails.entries()) {
    for (let seed = 100; seed < 104; seed++) {
      const random = prng(seed + i * 10);
      const bytes = stream(random, 40, tail);
      // Split at random, and at frame boundaries with the bad frame starting a chunk of its
      // own (where the fast path, which stops at the first frame it does not take, meets it).
      const headLen = stream(prng(0), 0).length;
      const tailLen = Buffer.concat(tail).length;
      const cut = bytes.length - tailLen;
      for (const chunks of [split(bytes, random), [bytes.subarray(0, headLen), bytes.subarray(headLen, cut), bytes.subarray(cut)]]) {
        const fast = await run(chunks, true);
        const slow = await run(chunks, false);
        assert.ok(fast.some((l) => l.startsWith('ended')), `tail ${i}: ended`);
        assert.equal(fast, slow, `tail ${i} seed ${seed} in ${chunks.length} chunks`);
      }
    }
  }
});

test('small sends of one turn leave in one write, large payloads uncopied, in call order', async () => {
  const writes: Buffer[][] = [];
  const socket = new Duplex({
    read() {},
    writev(chunks, cb) {
      writes.push(chunks.map((c) => c.chunk as Buffer));
      cb();
    },
    write(chunk: Buffer, _enc, cb) {
      writes.push([chunk]);
      cb();
    },
  });
  const noop = (): void => {};
  const session = new Session(socket, { clock: new ManualClock(), connectTimeout: 10_000, closeTimeout: 1000, codec }, {
    registered: noop, message: noop, routerDrain: noop, lookupResult: noop, errorFrame: noop, pong: noop, writeDrained: noop, ended: noop,
  });
  session.start();
  await new Promise((r) => setImmediate(r));
  writes.length = 0;
  const header = Buffer.alloc(RELAY_HEADER_SIZE, 0xaa);
  const big = Buffer.alloc(10_000, 0xbb);
  const expected: Buffer[] = [];
  for (let i = 0; i < 100; i++) {
    header[25] = i;
    const p = Buffer.from([i, i, i]);
    session.writeSend(header, p);
    expected.push(Buffer.from(header), p);
  }
  session.writeSend(header, big);
  expected.push(Buffer.from(header), big);
  session.ping(Buffer.from('x'));
  expected.push(encodePing(Buffer.from('x')));
  header[25] = 200;
  session.writeSend(header, Buffer.from([7]));
  expected.push(Buffer.from(header), Buffer.from([7]));
  assert.is(session.writableLength > 0, true);
  await new Promise((r) => setImmediate(r));
  assert.is(writes.length, 1, 'one writev for the turn');
  const chunks = writes[0]!;
  assert.equal(Buffer.concat(chunks), Buffer.concat(expected));
  assert.ok(chunks.includes(big), 'the large payload is written as given');
  assert.ok(chunks.length <= 5, `${chunks.length} chunks`);
  session.abort(new PosternError('POSTERN_ERR_CLOSED' as never, 'test over'));
});

test.run();
