/**
 * The relay path's shortcuts, each checked against what it must not get wrong: the
 * destination cache (a hit is a full 16-byte match on an open agent), short runs copied
 * into a destination's slab (never written over while the stream still holds them), and
 * SEALED SENDs taken by the fast path.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { readError } from '../../src/protocol/control.js';
import { encodePreamble, encodeSend, writeRelayHeader } from '../../src/protocol/encoder.js';
import { Flag, FrameType, RELAY_HEADER_SIZE, WireCode } from '../../src/protocol/frame.js';
import { RawClient } from '../helpers/raw.js';

const T = suite('relay');

let router: Router;
let port = 0;
const clients: RawClient[] = [];

async function client(): Promise<RawClient> {
  const c = await RawClient.tcp(port);
  clients.push(c);
  return c;
}

T.before.each(async () => {
  // resumeGrace 0: an agent that leaves is gone at once (no messages held for it).
  router = new Router({ host: '127.0.0.1', port: 0, routerId: 0x0a0b0c0d, maxConnectionsPerAddress: 0, registrationRate: 0, resumeGrace: 0 });
  port = (await router.listen()).port;
});

T.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await router.close();
});

/** The cache slot of an ID: the low 6 bits of its last byte (64 slots). */
const slot = (id: Uint8Array): number => id[15]! & 63;

T('destination cache: two agents in one cache slot each get only their own messages', async () => {
  // Register agents until two IDs share a slot (random IDs: a pair turns up within a few dozen).
  const seen = new Map<number, { c: RawClient; id: Uint8Array }>();
  let pair: [{ c: RawClient; id: Uint8Array }, { c: RawClient; id: Uint8Array }] | null = null;
  for (let i = 0; i < 200 && pair === null; i++) {
    const c = await client();
    const id = (await c.register()).id;
    const other = seen.get(slot(id));
    if (other !== undefined) pair = [other, { c, id }];
    else seen.set(slot(id), { c, id });
  }
  assert.ok(pair, 'two IDs in one slot');
  const [x, y] = pair;
  assert.is(slot(x.id), slot(y.id));
  assert.is.not(Buffer.from(x.id).toString('hex'), Buffer.from(y.id).toString('hex'));
  const s = await client();
  await s.register();
  // Alternating, then runs of the same destination, in one write: every SEND evicts or hits the slot.
  const order: number[] = [];
  for (let i = 0; i < 60; i++) order.push(i % 2);
  for (let i = 0; i < 30; i++) order.push(i < 15 ? 0 : 1);
  const parts: Buffer[] = [];
  order.forEach((who, i) => parts.push(...encodeSend(who === 0 ? x.id : y.id, i + 1, Buffer.of(who, i))));
  s.write(Buffer.concat(parts));
  const want = [order.filter((w) => w === 0).length, order.filter((w) => w === 1).length];
  await s.until(() => x.c.frames.length === want[0] && y.c.frames.length === want[1], 3000, 'deliveries');
  for (const [who, cl] of [x.c, y.c].entries()) {
    const idx = order.map((w, i) => (w === who ? i : -1)).filter((i) => i >= 0);
    cl.frames.forEach((f, j) => {
      assert.is(f.type, FrameType.DELIVER);
      assert.is(f.bytes[RELAY_HEADER_SIZE], who);
      assert.is(f.bytes[RELAY_HEADER_SIZE + 1], idx[j]);
    });
  }
});

T('destination cache: a cached agent that left gets UNKNOWN_DESTINATION, not a dead connection', async () => {
  const s = await client();
  await s.register();
  const d = await client();
  const id = (await d.register()).id;
  s.write(...encodeSend(id, 1, Buffer.from('first')));
  await d.until(() => d.frames.length === 1, 2000, 'first delivery');
  d.destroy();
  await s.until(() => router.agents === 1, 2000, 'the agent gone');
  s.write(...encodeSend(id, 2, Buffer.from('second')));
  const e = await s.next();
  assert.is(e.type, FrameType.ERROR);
  const err = readError(e.bytes, 0, e.bytes.length);
  assert.is(err.code, WireCode.UNKNOWN_DESTINATION);
  assert.is(err.seq, 2);
  assert.equal(Buffer.from(err.id), Buffer.from(id));
});

T('short runs copied for a reader that stops reading: every byte arrives intact once it reads again', async () => {
  // Two senders alternate between a stopped reader D and a live one E, so every run is a
  // single short frame, copied into D's slab. 9 MB for D is more than the kernel buffers
  // of a loopback connection hold, so the router's queue to D fills: slabs the stream still
  // holds must never be written over. Over maxOutbound the router also stops reading the
  // senders, so E waits for D too.
  const d = await client();
  const e = await client();
  const dId = (await d.register()).id;
  const eId = (await e.register()).id;
  const senders = [await client(), await client()];
  for (const s of senders) await s.register();
  d.stream.pause();
  const size = 200;
  const perSender = 20_000; // to each of D and E: 2 x 20,000 x 226 B = 9 MB for D
  const frame = RELAY_HEADER_SIZE + size;
  const batch = 500;
  let maxQueued = 0;
  for (let n = 0; n < perSender; n += batch) {
    for (const [si, s] of senders.entries()) {
      const buf = Buffer.alloc(2 * batch * frame);
      for (let j = 0; j < batch; j++) {
        for (const [k, dest] of [dId, eId].entries()) {
          const off = (2 * j + k) * frame;
          writeRelayHeader(buf, off, FrameType.SEND, 0, dest, n + j + 1, size);
          // The payload: sender, sequence number, and a byte pattern from both.
          buf.writeUInt32LE(si, off + RELAY_HEADER_SIZE);
          buf.writeUInt32LE(n + j, off + RELAY_HEADER_SIZE + 4);
          for (let b = 8; b < size; b++) buf[off + RELAY_HEADER_SIZE + b] = (n + j + b + si) & 0xff;
        }
      }
      s.write(buf);
    }
    maxQueued = Math.max(maxQueued, router.queues().maxOutboundBytes);
    await new Promise((r) => setImmediate(r));
  }
  await e.until(
    () => (maxQueued = Math.max(maxQueued, router.queues().maxOutboundBytes)) > 1024 * 1024,
    10_000,
    'the router to queue over 1 MiB for the stopped reader',
  );
  d.stream.resume();
  await d.until(() => d.frames.length === 2 * perSender && e.frames.length === 2 * perSender, 20_000, 'D and E deliveries');
  for (const cl of [d, e]) {
    const next = [0, 0];
    for (const f of cl.frames) {
      assert.is(f.bytes.length, frame);
      const si = f.bytes.readUInt32LE(RELAY_HEADER_SIZE);
      const q = f.bytes.readUInt32LE(RELAY_HEADER_SIZE + 4);
      assert.is(q, next[si], `sender ${si} in order`);
      next[si]!++;
      for (let b = 8; b < size; b++) {
        if (f.bytes[RELAY_HEADER_SIZE + b] !== ((q + b + si) & 0xff)) assert.unreachable(`payload byte ${b} of sender ${si} seq ${q} corrupted`);
      }
    }
  }
  for (const s of senders) assert.is(s.frames.length, 0, 'no errors to senders');
});

T('a reader that stops reading pins only what was written for it, not a slab per turn', async () => {
  // The router's queue to D holds what was written, as views of the slabs it was copied
  // into. A busy turn makes D's slabs large; afterwards, one short SEND per turn must not
  // pin a large slab each (2,000 turns x 256 KiB would be 500 MiB).
  await router.close();
  router = new Router({ host: '127.0.0.1', port: 0, routerId: 0x0a0b0c0d, maxConnectionsPerAddress: 0, registrationRate: 0, resumeGrace: 0, maxOutbound: 1 << 30, slowConsumerTimeout: 600_000 });
  port = (await router.listen()).port;
  const d = await client();
  const e = await client();
  const dId = (await d.register()).id;
  const eId = (await e.register()).id;
  const s = await client();
  await s.register();
  d.stream.pause();
  // Busy turns: 12 MB for D, alternating with E so every run is one frame, copied.
  const size = 200;
  const frame = RELAY_HEADER_SIZE + size;
  const busy = Buffer.alloc(2 * 1000 * frame);
  for (let j = 0; j < 2000; j++) writeRelayHeader(busy, j * frame, FrameType.SEND, 0, j % 2 === 0 ? dId : eId, j + 1, size);
  for (let i = 0; i < 30; i++) {
    s.write(busy);
    await new Promise((r) => setImmediate(r));
  }
  await e.until(() => e.frames.length === 30 * 1000, 10_000, 'E deliveries (busy)');
  await s.until(() => router.queues().maxOutboundBytes > 0, 5000, 'a queue for D');
  e.frames.length = 0;
  e.raw.length = 0;
  const before = process.memoryUsage().arrayBuffers;
  // Quiet turns: one SEND for D and one for E per write, a turn each.
  const quiet = Buffer.alloc(2 * (RELAY_HEADER_SIZE + 16));
  writeRelayHeader(quiet, 0, FrameType.SEND, 0, dId, 1, 16);
  writeRelayHeader(quiet, RELAY_HEADER_SIZE + 16, FrameType.SEND, 0, eId, 2, 16);
  for (let i = 0; i < 2000; i++) {
    s.write(quiet);
    await e.until(() => e.frames.length === i + 1, 5000, 'E keeps up');
  }
  await e.until(() => e.frames.length === 2000, 5000, 'E deliveries (quiet)');
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 64 * 1024 * 1024, `array buffers grew by ${(grown / 1048576).toFixed(1)} MiB over 2,000 quiet turns`);
  d.stream.resume();
  await d.until(() => d.frames.length === 30 * 1000 + 2000, 20_000, 'D deliveries');
});

T('SEALED SENDs in a run with plain ones: delivered in order, each with its own flags', async () => {
  const s = await client();
  const rs = await s.register();
  const d = await client();
  const id = (await d.register()).id;
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) parts.push(...encodeSend(id, i + 1, Buffer.of(i), i % 3 === 0 ? Flag.SEALED : 0));
  s.write(Buffer.concat(parts));
  await d.until(() => d.frames.length === 40, 2000, 'deliveries');
  d.frames.forEach((f, i) => {
    assert.is(f.type, FrameType.DELIVER);
    assert.is(f.flags, i % 3 === 0 ? Flag.SEALED : 0);
    assert.equal(f.bytes.subarray(6, 22), Buffer.from(rs.id));
    assert.is(f.bytes[RELAY_HEADER_SIZE], i);
  });
});

T('a run to an anonymous agent through its reply handle does not take a SEND to the all-zero ID', async () => {
  // The anonymous agent has no ID: the words the relay compares a run's next SEND with are
  // zeros, which must not make 00...00 an address of whoever the run goes to.
  const anon = await client();
  anon.write(encodePreamble(1), ...anon.codec.encodeRegister({ anonymous: true }));
  assert.is((await anon.next()).type, FrameType.REGISTERED);
  const b = await client();
  const bId = (await b.register()).id;
  anon.write(...encodeSend(bId, 1, Buffer.from('hi')));
  const d = await b.next();
  const handle = Buffer.from(d.bytes.subarray(6, 22));
  b.write(Buffer.concat([...encodeSend(handle, 7, Buffer.from('reply')), ...encodeSend(Buffer.alloc(16), 8, Buffer.from('stray'))]));
  const e = await b.next();
  assert.is(e.type, FrameType.ERROR);
  const err = readError(e.bytes, 0, e.bytes.length);
  assert.is(err.seq, 8);
  assert.is(err.code, WireCode.UNREACHABLE_ROUTER);
  const r = await anon.next();
  assert.equal(r.bytes.subarray(RELAY_HEADER_SIZE), Buffer.from('reply'));
  await new Promise((res) => setTimeout(res, 50));
  assert.is(anon.frames.length, 0, 'nothing else reached the anonymous agent');
});

T.run();
