/**
 * Nothing the router accepted is dropped without telling its sender (§9.4): a receiver
 * that stops reading is closed as a slow consumer, and every SEND of its sender is then
 * either delivered or answered with an ERROR naming its seq. Real TCP on 127.0.0.1.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import type { RouterOptions } from '../../src/router/options.js';
import { encodePing, encodeSend } from '../../src/protocol/encoder.js';
import { FrameType, RELAY_HEADER_SIZE, WireCode } from '../../src/protocol/frame.js';
import { readClose, readError } from '../../src/protocol/control.js';
import { eventually, RawClient } from '../helpers/raw.js';
import { linkUp } from '../helpers/link.js';

const D = suite('messages dropped with a connection are reported');

const routers: Router[] = [];
const clients: RawClient[] = [];
D.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

async function start(extra: RouterOptions): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 0x71, maxOutbound: 64 * 1024, keepaliveInterval: 60_000, ...extra });
  await r.listen();
  routers.push(r);
  return r;
}

async function client(r: Router): Promise<[RawClient, Buffer]> {
  const c = await RawClient.tcp(r.address()!.port);
  clients.push(c);
  return [c, Buffer.from((await c.register()).id)];
}

/** The seqs of the DELIVERs `c` got (each payload starts with its seq). */
function deliveredSeqs(c: RawClient): number[] {
  return c.frames.filter((f) => f.type === FrameType.DELIVER).map((f) => f.bytes.readUInt32BE(RELAY_HEADER_SIZE));
}

/**
 * Sender S sends `n` SENDs of 256 B to a receiver that stopped reading, in batches, as
 * fast as its socket takes them, until all are written. Returns once the router closed the
 * receiver as a slow consumer.
 */
async function sendToStoppedReader(r: Router, s: RawClient, to: Buffer, n: number): Promise<void> {
  let seq = 0;
  while (seq < n) {
    if (s.stream.writableLength < 512 * 1024) {
      const parts: Buffer[] = [];
      for (let j = 0; j < 256 && seq < n; j++) {
        const payload = Buffer.alloc(256, 0xab);
        payload.writeUInt32BE(++seq, 0);
        parts.push(...encodeSend(to, seq, payload));
      }
      s.write(Buffer.concat(parts));
    }
    await new Promise((res) => setTimeout(res, 1));
  }
  await eventually(() => r.stats.slowConsumers === 1, 10_000, 'the slow consumer to be closed');
}

/** Waits for S's flush (PING/PONG: every earlier SEND answered, §6.5) and returns the ERRORs it got. */
async function errorsAfterFlush(s: RawClient): Promise<Array<{ code: number; seq: number; id: Buffer }>> {
  s.write(encodePing(Buffer.from('flush')));
  await s.until(() => s.frames.some((f) => f.type === FrameType.PONG), 10_000, 'PONG');
  return s.frames.filter((f) => f.type === FrameType.ERROR).map((f) => {
    const e = readError(f.bytes, 0, f.bytes.length);
    return { code: e.code, seq: e.seq, id: Buffer.from(e.id) };
  });
}

D('a receiver that stops reading: after the cut, delivered + ERRORs with their seq account for every SEND', async () => {
  const r = await start({ slowConsumerTimeout: 300, closeTimeout: 5000 });
  const [recv, rid] = await client(r);
  const [s] = await client(r);
  recv.stream.pause();
  const n = 40_000; // 11 MB: more than the loopback socket buffers and the router's queue hold
  await sendToStoppedReader(r, s, rid, n);
  const errors = await errorsAfterFlush(s);
  // Now the receiver reads what reached it before the router let the connection go.
  recv.stream.resume();
  await recv.until(() => recv.ended || recv.closed, 10_000, 'the end of the receiver connection');
  const delivered = deliveredSeqs(recv);
  const seen = new Set<number>();
  for (const q of delivered) {
    assert.not.ok(seen.has(q), `seq ${q} twice`);
    seen.add(q);
  }
  let slow = 0;
  for (const e of errors) {
    assert.ok(e.code === WireCode.DESTINATION_SLOW || e.code === WireCode.UNKNOWN_DESTINATION, `code ${e.code}`);
    assert.equal(e.id, rid);
    assert.not.ok(seen.has(e.seq), `seq ${e.seq} both delivered and reported`);
    seen.add(e.seq);
    if (e.code === WireCode.DESTINATION_SLOW) slow++;
  }
  assert.ok(slow > 0, "some SENDs were dropped with the queue and reported");
  if (process.env["POSTERN_REPORT"] !== undefined) console.log(JSON.stringify({ n, delivered: delivered.length, destinationSlow: slow, unknown: errors.length - slow }));
  assert.is(delivered.length + errors.length, n, `delivered ${delivered.length} + errors ${errors.length}`);
  for (let q = 1; q <= n; q++) if (!seen.has(q)) assert.unreachable(`seq ${q} neither delivered nor reported`);
  assert.is(r.stats.dropped.connectionEnded, slow);
});

D('a slow consumer that reads again while it is being closed gets everything, then CLOSE(SLOW_CONSUMER)', async () => {
  const r = await start({ slowConsumerTimeout: 300, closeTimeout: 5000 });
  const [recv, rid] = await client(r);
  const [s] = await client(r);
  recv.stream.pause();
  // resume reading as soon as the router has decided (it waits 30 ms before dropping)
  const t = setInterval(() => {
    if (r.stats.slowConsumers === 1) {
      clearInterval(t);
      recv.stream.resume();
    }
  }, 1);
  const n = 20_000;
  await sendToStoppedReader(r, s, rid, n);
  await recv.until(() => recv.ended || recv.closed, 10_000, 'the end of the receiver connection');
  clearInterval(t);
  const errors = await errorsAfterFlush(s);
  const delivered = deliveredSeqs(recv);
  assert.is(delivered.length + errors.length, n);
  const close = recv.frames.find((f) => f.type === FrameType.CLOSE);
  if (errors.every((e) => e.code !== WireCode.DESTINATION_SLOW)) {
    // nothing was dropped: the CLOSE came after the last DELIVER
    assert.ok(close !== undefined, 'CLOSE(SLOW_CONSUMER) arrived');
    assert.is(readClose(close!.bytes, 0, close!.bytes.length).code, WireCode.SLOW_CONSUMER);
    assert.is(recv.frames[recv.frames.length - 1]!.type, FrameType.CLOSE);
  }
});


D('across a link: a slow consumer on the far router; the sender hears of each dropped SEND by ROUTE_ERROR', async () => {
  const secret = 'a mesh secret for the dropped test';
  const r1 = await start({ slowConsumerTimeout: 300, closeTimeout: 5000, meshSecret: secret });
  const r2 = new Router({ host: '127.0.0.1', port: 0, routerId: 0x72, meshSecret: secret, peers: [`127.0.0.1:${r1.address()!.port}`], linkRetryMin: 20, linkRetryMax: 100 });
  await r2.listen();
  routers.push(r2);
  await eventually(() => r1.links().length === 1 && r2.links().length === 1, 3000, 'link up');
  const [recv, rid] = await client(r1);
  const [s] = await client(r2);
  recv.stream.pause();
  const n = 30_000;
  await sendToStoppedReader(r1, s, rid, n);
  const errors = await errorsAfterFlush(s);
  recv.stream.resume();
  await recv.until(() => recv.ended || recv.closed, 10_000, 'the end of the receiver connection');
  const seen = new Set(deliveredSeqs(recv));
  let slow = 0;
  for (const e of errors) {
    assert.not.ok(seen.has(e.seq), `seq ${e.seq} twice`);
    seen.add(e.seq);
    if (e.code === WireCode.DESTINATION_SLOW) slow++;
  }
  assert.ok(slow > 0, 'DESTINATION_SLOW came back over the link');
  assert.is(seen.size, n, `delivered + reported = ${seen.size} of ${n}`);
});

D('a link that goes down with SENDs queued: their senders get UNREACHABLE_ROUTER with their seqs', async () => {
  const secret = 'a mesh secret for the dropped test';
  const r = await start({ meshSecret: secret, slowConsumerTimeout: 60_000 });
  const link = await RawClient.tcp(r.address()!.port);
  clients.push(link);
  await linkUp(link, 0x09, secret);
  await eventually(() => r.links().length === 1, 2000, 'link up');
  link.stream.pause(); // the peer router stops reading
  const [s] = await client(r);
  const far = Buffer.from('00000009bbbbbbbbbbbbbbbbbbbbbbbb', 'hex');
  const n = 30_000;
  let seq = 0;
  while (seq < n) {
    const parts: Buffer[] = [];
    for (let j = 0; j < 500 && seq < n; j++) parts.push(...encodeSend(far, ++seq, Buffer.alloc(256)));
    s.write(Buffer.concat(parts));
    await new Promise((res) => setTimeout(res, 2));
  }
  await eventually(() => r.queues().maxOutboundBytes > 64 * 1024, 5000, 'a queue towards the link');
  // The link ends: the router drops what it still held for it and tells the sender.
  link.stream.resume();
  link.stream.destroy();
  await eventually(() => r.links().length === 0, 3000, 'link down');
  const errors = await errorsAfterFlush(s);
  const unreachable = errors.filter((e) => e.code === WireCode.UNREACHABLE_ROUTER);
  assert.ok(unreachable.length > 0, 'UNREACHABLE_ROUTER for queued SENDs');
  assert.is(new Set(unreachable.map((e) => e.seq)).size, unreachable.length, 'each seq once');
  for (const e of unreachable) {
    assert.ok(e.seq >= 1 && e.seq <= n);
    assert.equal(e.id, far);
  }
});

D.run();
