import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import type { RouterOptions } from '../../src/router/options.js';
import { ManualClock } from '../../src/net/clock.js';
import { readClose } from '../../src/protocol/control.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodeSend } from '../../src/protocol/encoder.js';
import { FrameType, RELAY_HEADER_SIZE, WireCode } from '../../src/protocol/frame.js';
import { renderMetrics } from '../../src/router/metrics.js';
import { duplexPair, eventually, RawClient } from '../helpers/raw.js';

// [P-12.8] incomplete frames: a router-wide budget and a minimum rate.
const P = suite('incomplete frames');
const routers: Router[] = [];
const clients: RawClient[] = [];

P.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

function mem(r: Router): RawClient {
  const [mine, theirs] = duplexPair();
  r.handle(theirs, undefined, '');
  const c = new RawClient(mine);
  clients.push(c);
  return c;
}

function closeCode(f: { type: number; bytes: Buffer }): number {
  assert.is(f.type, FrameType.CLOSE);
  return readClose(f.bytes, 0, f.bytes.length).code;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A SEND of `total` bytes (whole frame) to `to`. */
function send(to: Uint8Array, total: number): Buffer {
  return Buffer.concat(encodeSend(to, 1, Buffer.alloc(total - RELAY_HEADER_SIZE, 7)));
}

P('decoder: reserved is the declared size of the frame in progress, and stop() lets it go', () => {
  const d = new Decoder({ frame() {} }, { maxFrame: 1 << 20 });
  const f = send(Buffer.alloc(16), 5000);
  d.push(f.subarray(0, 3));
  assert.is(d.reserved, 0, 'a header alone reserves nothing');
  d.push(f.subarray(3, 100));
  assert.is(d.reserved, 5000);
  assert.is(d.buffered, 100);
  d.stop();
  assert.is(d.reserved, 0);
  assert.is(d.buffered, 0);
});

P('budget: the frame that would go over it closes its connection with OVERLOADED; the others finish', async () => {
  const clock = new ManualClock();
  const r = new Router({ routerId: 9, clock, maxFrame: 65_536, partialBytesBudget: 3 * 65_536 + 100 });
  routers.push(r);
  const dest = mem(r);
  const { id } = await dest.register();
  const senders = [mem(r), mem(r), mem(r), mem(r)];
  for (const s of senders) await s.register();
  const frame = send(id, 65_536);
  for (const s of senders.slice(0, 3)) s.write(frame.subarray(0, 1000));
  await eventually(() => r.partialBytes === 3 * 65_536, 2000, 'three frames reserved');
  const last = senders[3]!;
  last.write(frame.subarray(0, 1000));
  assert.is(closeCode(await last.next()), WireCode.OVERLOADED);
  assert.is(r.partialBytes, 3 * 65_536, 'the refused frame holds nothing');
  assert.is(r.stats.closes[WireCode.OVERLOADED], 1);
  // The frames already held are left alone: they complete and are delivered.
  for (const s of senders.slice(0, 3)) s.write(frame.subarray(1000));
  for (let i = 0; i < 3; i++) assert.is((await dest.next()).type, FrameType.DELIVER);
  assert.is(r.partialBytes, 0);
  // Room again: a new connection's frame is taken.
  const again = mem(r);
  await again.register();
  again.write(frame.subarray(0, 70));
  await eventually(() => r.partialBytes === 65_536, 2000, 'reserved again');
  again.destroy();
  await eventually(() => r.partialBytes === 0, 2000, 'released when the connection is lost');
});

P('budget: a smaller frame that does not fit closes the holders of larger ones, largest first', async () => {
  const clock = new ManualClock();
  const r = new Router({ routerId: 9, clock, maxFrame: 65_536, partialBytesBudget: 100_000 });
  routers.push(r);
  const dest = mem(r);
  const { id } = await dest.register();
  const [big, mid, small] = [mem(r), mem(r), mem(r)];
  for (const s of [big, mid, small]) await s.register();
  big.write(send(id, 60_000).subarray(0, 100));
  mid.write(send(id, 35_000).subarray(0, 100));
  await eventually(() => r.partialBytes === 95_000, 2000, 'two frames reserved');
  // 10,000 more do not fit: the 60,000-byte frame goes, the 35,000-byte one stays.
  const frame = send(id, 10_000);
  small.write(frame.subarray(0, 100));
  assert.is(closeCode(await big.next()), WireCode.OVERLOADED);
  await eventually(() => r.partialBytes === 45_000, 2000, 'the largest released');
  assert.is(mid.frames.length, 0);
  small.write(frame.subarray(100));
  assert.is((await dest.next()).type, FrameType.DELIVER);
  assert.is(r.partialBytes, 35_000);
});

P('minimum rate: a trickled frame is closed with FRAME_TOO_SLOW and its memory released; a slow but steady one completes', async () => {
  const clock = new ManualClock();
  const r = new Router({ routerId: 9, clock, minFrameRate: 1024, frameRateWindow: 10_000, keepaliveInterval: 30_000 });
  routers.push(r);
  const dest = mem(r);
  const { id } = await dest.register();
  const trickler = mem(r);
  await trickler.register();
  const steady = mem(r);
  await steady.register();
  const frame = send(id, 1 << 20);
  trickler.write(frame.subarray(0, frame.length - 16));
  steady.write(frame.subarray(0, 100));
  await eventually(() => r.partialBytes === 2 << 20, 2000, 'two frames reserved');
  let at = 100;
  // One byte every 5 s keeps keepalive happy but not the minimum rate; 2 KiB/s does.
  for (let s = 1; s <= 30 && trickler.frames.length === 0; s++) {
    if (s % 5 === 0) trickler.write(frame.subarray(frame.length - 16, frame.length - 15));
    steady.write(frame.subarray(at, at + 2048));
    at += 2048;
    await tick();
    clock.advance(1000);
    await tick();
  }
  assert.is(closeCode(await trickler.next()), WireCode.FRAME_TOO_SLOW);
  assert.ok(clock.now() <= 25_000, `closed within two windows (at ${clock.now()} ms)`);
  await eventually(() => r.partialBytes === 1 << 20, 2000, 'the trickler released');
  assert.match(renderMetrics(r), /postern_partial_frame_bytes 1048576/);
  assert.match(renderMetrics(r), /postern_closes_total\{code="FRAME_TOO_SLOW"\} 1/);
  steady.write(frame.subarray(at));
  assert.is((await dest.next()).type, FrameType.DELIVER);
  assert.is(r.partialBytes, 0);
  assert.is(steady.frames.length, 0, 'the steady sender was not closed');
});

P('minimum rate: time a sender is paused by its rate limit does not count against it', async () => {
  const clock = new ManualClock();
  const r = new Router({ routerId: 9, clock, minFrameRate: 1024, frameRateWindow: 2000, maxByteRate: 100 });
  routers.push(r);
  const dest = mem(r);
  const { id } = await dest.register();
  const s = mem(r);
  await s.register();
  // 2,000 bytes against a bucket of 100 B/s: reading pauses for about 19 s.
  s.write(send(id, 60_000).subarray(0, 2000));
  await eventually(() => r.partialBytes === 60_000, 2000, 'a frame begun');
  for (let i = 0; i < 15; i++) {
    clock.advance(1000);
    await tick();
  }
  assert.is(s.frames.length, 0, 'not closed while paused');
  assert.is(r.stats.rateLimited, 1);
  // Reading resumes; from then on the frame must come at the minimum rate again.
  for (let i = 0; i < 10 && s.frames.length === 0; i++) {
    clock.advance(1000);
    await tick();
  }
  assert.is(closeCode(await s.next()), WireCode.FRAME_TOO_SLOW);
});

P('over TCP: a stalled frame is closed with FRAME_TOO_SLOW by the real clock', async () => {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 9, minFrameRate: 1024, frameRateWindow: 300, handshakeTimeout: 1000 });
  routers.push(r);
  await r.listen();
  const c = await RawClient.tcp(r.address()!.port);
  clients.push(c);
  const { id } = await c.register();
  c.write(send(id, 200_000).subarray(0, 50_000));
  assert.is(closeCode(await c.next(3000)), WireCode.FRAME_TOO_SLOW);
  await eventually(() => r.partialBytes === 0 && r.connections === 0, 3000, 'released');
});

P('options: the budget and rate are validated', () => {
  assert.throws(() => new Router({ partialBytesBudget: 10 } as RouterOptions), (e: { code?: string }) => e.code === 'POSTERN_ERR_INVALID_OPTION');
  assert.throws(() => new Router({ minFrameRate: -1 }), (e: { code?: string }) => e.code === 'POSTERN_ERR_INVALID_OPTION');
  assert.throws(() => new Router({ frameRateWindow: 0 }), (e: { code?: string }) => e.code === 'POSTERN_ERR_INVALID_OPTION');
});

P.run();
