import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { ManualClock } from '../../src/net/clock.js';
import { readClose, readError } from '../../src/protocol/control.js';
import { encodeClose, encodeDeliver, encodeFrame, encodePing, encodePreamble, encodeSend, writeHeader } from '../../src/protocol/encoder.js';
import { FrameType, MAGIC, PRE_REGISTER_MAX_FRAME, RELAY_HEADER_SIZE, WireCode } from '../../src/protocol/frame.js';
import { formatId, routerIdOf } from '../../src/protocol/id.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { duplexPair, eventually, RawClient } from '../helpers/raw.js';

const T = suite('router');

let router: Router;
let port = 0;
const clients: RawClient[] = [];

async function client(): Promise<RawClient> {
  const c = await RawClient.tcp(port);
  clients.push(c);
  return c;
}

T.before.each(async () => {
  router = new Router({ host: '127.0.0.1', port: 0, routerId: 0x0a0b0c0d });
  port = (await router.listen()).port;
});

T.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await router.close();
});

function closeCode(f: { type: number; bytes: Buffer }): number {
  assert.is(f.type, FrameType.CLOSE);
  return readClose(f.bytes, 0, f.bytes.length).code;
}

T('registration: preamble answered, REGISTERED announces id, router, limits, keepalive', async () => {
  const a = await client();
  const reg = await a.register();
  assert.is(a.version, 1);
  assert.is(reg.router, 0x0a0b0c0d);
  assert.is(routerIdOf(reg.id), 0x0a0b0c0d);
  assert.is(reg.maxFrame, 1024 * 1024);
  assert.is(reg.keepalive, 30000);
  assert.is(reg.timeout, 45000);
  const b = await client();
  const regB = await b.register();
  assert.is.not(formatId(reg.id), formatId(regB.id));
  assert.is(router.agents, 2);
});

T('relay: a SEND arrives as a DELIVER of the same size carrying only the sender ID and payload', async () => {
  const a = await client();
  const b = await client();
  const ra = await a.register();
  const rb = await b.register();
  const payload = Buffer.from('hello, postern');
  const send = Buffer.concat(encodeSend(rb.id, 77, payload));
  a.write(send);
  const d = await b.next();
  assert.equal(d.bytes, Buffer.concat(encodeDeliver(ra.id, payload)));
  assert.is(d.bytes.length, send.length);
  // Nothing in it but header, sender ID, zero seq and the payload: no address, no port.
  assert.equal(d.bytes.subarray(RELAY_HEADER_SIZE), payload);
});

T('relay: many frames in one write and frames split byte by byte arrive complete and in order', async () => {
  const a = await client();
  const b = await client();
  await a.register();
  const rb = await b.register();
  const n = 2000;
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const p = Buffer.alloc(4 + (i % 50));
    p.writeUInt32BE(i, 0);
    parts.push(...encodeSend(rb.id, i + 1, p));
  }
  a.write(Buffer.concat(parts));
  // and a few more one byte at a time, so frames straddle chunks
  const tail = Buffer.concat(encodeSend(rb.id, n + 1, Buffer.from([0, 0, 0x07, 0xd0, 1, 2, 3])));
  for (const byte of tail) a.write(Buffer.of(byte));
  await b.until(() => b.frames.length === n + 1, 5000, 'all deliveries');
  for (let i = 0; i <= n; i++) {
    const f = b.frames[i]!;
    assert.is(f.type, FrameType.DELIVER);
    assert.is(f.bytes.readUInt32BE(RELAY_HEADER_SIZE), i);
  }
  assert.is(router.stats.relayed, n + 1);
});

T('relay: frames for different destinations interleaved in one read go to the right agents', async () => {
  const a = await client();
  const b = await client();
  const c = await client();
  const ra = await a.register();
  const rb = await b.register();
  const rc = await c.register();
  const parts: Buffer[] = [];
  for (let i = 0; i < 300; i++) parts.push(...encodeSend(i % 3 === 0 ? rb.id : i % 3 === 1 ? rc.id : ra.id, i, Buffer.from([i & 0xff])));
  a.write(Buffer.concat(parts));
  await b.until(() => b.frames.length === 100 && c.frames.length === 100 && a.frames.length === 100, 3000, 'deliveries');
  for (const [cl, r] of [[b, 0], [c, 1], [a, 2]] as const) {
    cl.frames.forEach((f, j) => assert.is(f.bytes[RELAY_HEADER_SIZE], (j * 3 + r) & 0xff));
  }
});

T('unknown destination: ERROR with the seq and the destination, connection stays open', async () => {
  const a = await client();
  await a.register();
  const dest = Buffer.from('0a0b0c0d00112233445566778899aabb', 'hex');
  a.write(...encodeSend(dest, 4242, Buffer.from('x')), encodePing(Buffer.from('after')));
  const e = await a.next();
  assert.is(e.type, FrameType.ERROR);
  const err = readError(e.bytes, 0, e.bytes.length);
  assert.is(err.code, WireCode.UNKNOWN_DESTINATION);
  assert.is(err.seq, 4242);
  assert.equal(Buffer.from(err.id), dest);
  // the PONG for a PING sent after the SEND comes after the ERROR [P-6.5]
  const p = await a.next();
  assert.is(p.type, FrameType.PONG);
  assert.equal(p.bytes.subarray(6), Buffer.from('after'));
});

T('SEND before REGISTER: NOT_REGISTERED with seq; second REGISTER: ALREADY_REGISTERED; flags: UNSUPPORTED_FLAGS', async () => {
  const a = await client();
  a.write(encodePreamble(1), ...encodeSend(Buffer.alloc(16, 1), 9, Buffer.from('x')));
  const e = await a.next();
  assert.is(readError(e.bytes, 0, e.bytes.length).code, WireCode.NOT_REGISTERED);
  assert.is(readError(e.bytes, 0, e.bytes.length).seq, 9);
  a.write(...a.codec.encodeRegister({}));
  const reg = await a.next();
  assert.is(reg.type, FrameType.REGISTERED);
  const body = a.codec.decodeRegistered(reg.bytes, 0, reg.bytes.length);
  a.write(...a.codec.encodeRegister({}));
  const e2 = await a.next();
  assert.is(readError(e2.bytes, 0, e2.bytes.length).code, WireCode.ALREADY_REGISTERED);
  a.write(...encodeSend(body.id, 10, Buffer.from('x'), 0x80));
  const e3 = await a.next();
  assert.is(readError(e3.bytes, 0, e3.bytes.length).code, WireCode.UNSUPPORTED_FLAGS);
  assert.is(readError(e3.bytes, 0, e3.bytes.length).seq, 10);
});

T('HTTP request: a readable HTTP 400 naming the code, then close; other agents unaffected', async () => {
  const a = await client();
  const b = await client();
  await a.register();
  const rb = await b.register();
  const h = await client();
  h.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await h.until(() => h.ended, 2000, 'end');
  assert.match(h.rawText(), /^HTTP\/1\.1 400 /);
  assert.match(h.rawText(), ErrorCode.BAD_MAGIC);
  a.write(...encodeSend(rb.id, 1, Buffer.from('still here')));
  assert.is((await b.next()).type, FrameType.DELIVER);
});

T('TLS ClientHello and random bytes: preamble + CLOSE(BAD_MAGIC) at the first byte', async () => {
  for (const bytes of [Buffer.from('160301020001', 'hex'), randomBytes(1024 * 1024)]) {
    // not 0x89 (the magic) and not A-Z (which gets the HTTP answer instead)
    if (bytes[0] === MAGIC[0] || (bytes[0]! >= 0x41 && bytes[0]! <= 0x5a)) bytes[0] = 0;
    const c = await client();
    c.write(bytes);
    const f = await c.next();
    assert.is(c.version, 1);
    assert.is(closeCode(f), WireCode.BAD_MAGIC);
    await c.until(() => c.closed, 3000, 'close');
  }
  await eventually(() => router.connections === 0, 3000, 'router side closed');
});

T('version negotiation: v0 refused with UNSUPPORTED_VERSION, v9 answered with v1', async () => {
  const a = await client();
  a.write(encodePreamble(0));
  const f = await a.next();
  assert.is(a.version, 1);
  assert.is(closeCode(f), WireCode.UNSUPPORTED_VERSION);
  const b = await client();
  b.write(encodePreamble(9), ...b.codec.encodeRegister({}));
  assert.is((await b.next()).type, FrameType.REGISTERED);
  assert.is(b.version, 1);
});

T('oversized frames close with FRAME_TOO_LARGE, before and after registration, without buffering them', async () => {
  const a = await client();
  const big = Buffer.alloc(6);
  writeHeader(big, 0, FrameType.REGISTER, 0, PRE_REGISTER_MAX_FRAME);
  a.write(encodePreamble(1), big);
  assert.is(closeCode(await a.next()), WireCode.FRAME_TOO_LARGE);
  const b = await client();
  await b.register();
  const huge = Buffer.alloc(6);
  huge.writeUInt32BE(0xfffffff0, 0);
  huge[4] = FrameType.SEND;
  b.write(huge);
  assert.is(closeCode(await b.next()), WireCode.FRAME_TOO_LARGE);
});

T('unknown critical type closes with UNKNOWN_FRAME; unknown optional type is skipped', async () => {
  const a = await client();
  await a.register();
  a.write(...encodeFrame(0x9a, Buffer.alloc(100, 7)), encodePing(Buffer.from('ok')));
  const p = await a.next();
  assert.is(p.type, FrameType.PONG);
  a.write(...encodeFrame(0x7a, Buffer.alloc(3)));
  assert.is(closeCode(await a.next()), WireCode.UNKNOWN_FRAME);
});

T('router-only frames from an agent close with MALFORMED', async () => {
  const a = await client();
  const r = await a.register();
  a.write(...encodeDeliver(r.id, Buffer.from('x')));
  assert.is(closeCode(await a.next()), WireCode.MALFORMED);
});

T('a CLOSE from the agent ends the connection quietly', async () => {
  const a = await client();
  await a.register();
  a.write(encodeClose(WireCode.NORMAL, 'bye'));
  await a.until(() => a.ended, 2000, 'end');
  assert.is(a.frames.length, 0);
});

T('close(): every agent gets CLOSE(GOING_AWAY) and the promise resolves', async () => {
  const a = await client();
  await a.register();
  const b = await client();
  await router.close();
  assert.is(closeCode(await a.next()), WireCode.GOING_AWAY);
  assert.is(closeCode(await b.next()), WireCode.GOING_AWAY);
  assert.is(router.connections, 0);
  try {
    await router.listen();
    assert.unreachable('listen after close');
  } catch (err) {
    assert.is((err as PosternError).code, ErrorCode.CLOSED);
  }
});

T('options are validated with coded errors naming the option', () => {
  for (const bad of [{ port: -1 }, { routerId: 0 }, { maxFrame: 10 }, { keepaliveInterval: 1.5 }, { nope: 1 }, { logger: {} }] as object[]) {
    try {
      new Router(bad);
      assert.unreachable(JSON.stringify(bad));
    } catch (err) {
      assert.is((err as PosternError).code, ErrorCode.INVALID_OPTION);
    }
  }
});

T('listen() on a busy port rejects', async () => {
  const other = new Router({ host: '127.0.0.1', port });
  try {
    await other.listen();
    assert.unreachable('second listen');
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'EADDRINUSE');
  }
  await other.close();
});

T.run();

// ---- keepalive and deadlines, with a manual clock and in-memory streams -------------

const K = suite('router keepalive');

/** Lets in-memory stream events run before the manual clock moves. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((res) => setImmediate(res));
}

function memRouter(clock: ManualClock, extra: object = {}): Router {
  return new Router({ routerId: 7, keepaliveInterval: 1000, handshakeTimeout: 500, clock, ...extra });
}

function memClient(r: Router): RawClient {
  const [mine, theirs] = duplexPair();
  r.handle(theirs);
  return new RawClient(mine);
}

K('a silent agent is pinged after the interval and closed at 1.5x, never later', async () => {
  const clock = new ManualClock();
  const r = memRouter(clock);
  const a = memClient(r);
  await a.register();
  clock.advance(999);
  await new Promise((res) => setImmediate(res));
  assert.is(a.frames.length, 0);
  clock.advance(101);
  const p = await a.next();
  assert.is(p.type, FrameType.PING);
  clock.advance(400);
  assert.is(closeCode(await a.next()), WireCode.KEEPALIVE_TIMEOUT);
  assert.is(r.stats.keepaliveExpiries, 1);
  assert.ok(clock.now() <= 1500);
  await r.close();
});

K('an agent that answers pings stays', async () => {
  const clock = new ManualClock();
  const r = memRouter(clock);
  const a = memClient(r);
  await a.register();
  for (let i = 0; i < 10; i++) {
    clock.advance(1100);
    const p = await a.next();
    assert.is(p.type, FrameType.PING);
    a.write(Buffer.concat([Buffer.from([0, 0, 0, 2, FrameType.PONG, 0])]));
    await new Promise((res) => setImmediate(res));
  }
  assert.is(r.agents, 1);
  assert.is(r.stats.keepaliveExpiries, 0);
  await r.close();
});

K('half a preamble then silence: closed with HANDSHAKE_TIMEOUT', async () => {
  const clock = new ManualClock();
  const r = memRouter(clock);
  const a = memClient(r);
  a.write(Buffer.from(MAGIC.subarray(0, 3)));
  clock.advance(500);
  assert.is(closeCode(await a.next()), WireCode.HANDSHAKE_TIMEOUT);
  await r.close();
});

K('half a frame after registration then silence: closed by keepalive, others unaffected', async () => {
  const clock = new ManualClock();
  const r = memRouter(clock);
  const a = memClient(r);
  const b = memClient(r);
  await a.register();
  const rb = await b.register();
  a.write(Buffer.concat(encodeSend(rb.id, 1, Buffer.alloc(100))).subarray(0, 40));
  await settle();
  clock.advance(1100);
  assert.is((await b.next()).type, FrameType.PING);
  b.write(Buffer.from([0, 0, 0, 2, FrameType.PONG, 0]));
  await settle();
  clock.advance(400);
  const frames: number[] = [];
  for (;;) {
    const f = await a.next();
    frames.push(f.type);
    if (f.type === FrameType.CLOSE) {
      assert.is(readClose(f.bytes, 0, f.bytes.length).code, WireCode.KEEPALIVE_TIMEOUT);
      break;
    }
  }
  assert.is(r.agents, 1);
  await r.close();
});

K('slow consumer: senders are paused, then the reader is evicted and blocked senders get DESTINATION_SLOW', async () => {
  const clock = new ManualClock();
  const r = memRouter(clock, { maxOutbound: 64 * 1024, slowConsumerTimeout: 2000, keepaliveInterval: 100000 });
  const sender = memClient(r);
  const [mine, theirs] = duplexPair();
  r.handle(theirs);
  const reader = new RawClient(mine);
  await sender.register();
  const rr = await reader.register();
  reader.stream.pause(); // stops reading: the router's queue to it grows
  const payload = Buffer.alloc(1000);
  let seq = 0;
  // in small batches across event-loop turns, as a socket would deliver them
  for (let i = 0; i < 40; i++) {
    for (let j = 0; j < 10; j++) sender.write(...encodeSend(rr.id, ++seq, payload));
    await settle();
  }
  await new Promise((res) => setTimeout(res, 50));
  // The router has stopped reading from the sender: far fewer than 400 relayed.
  const relayed = r.stats.relayed;
  assert.ok(relayed < 400, `relayed ${relayed}`);
  clock.advance(2000);
  // CLOSE is queued; the reader gets a tenth of slowConsumerTimeout to take it, then its queue is dropped.
  await settle();
  clock.advance(200);
  const e = await sender.next();
  assert.is(e.type, FrameType.ERROR);
  const err = readError(e.bytes, 0, e.bytes.length);
  assert.is(err.code, WireCode.DESTINATION_SLOW);
  assert.ok(err.seq >= 1 && err.seq <= 400);
  assert.equal(Buffer.from(err.id), rr.id);
  assert.is(r.stats.slowConsumers, 1);
  // the sender keeps working: later SENDs to the evicted reader are UNKNOWN_DESTINATION
  await sender.until(() => sender.frames.some((f) => f.type === FrameType.ERROR && readError(f.bytes, 0, f.bytes.length).code === WireCode.UNKNOWN_DESTINATION), 3000, 'unknown destination');
  await r.close();
});

K.run();
