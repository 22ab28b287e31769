import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { duplexPair, type Duplex } from 'node:stream';
import { connect, type Agent, type Message, type Status } from '../../src/agent/agent.js';
import { Router } from '../../src/router/router.js';
import { ManualClock } from '../../src/net/clock.js';
import { ErrorCode, type PosternError } from '../../src/protocol/errors.js';
import { WireCode } from '../../src/protocol/frame.js';
import { newAgentId } from '../../src/protocol/id.js';
import { recordStatus, ticks, until } from './fake-router.js';

/** Real time, but short: a bounded wait for an event-driven condition. */
async function waitFor(pred: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function startRouter(opts: ConstructorParameters<typeof Router>[0] = {}): Promise<[Router, string]> {
  const router = new Router({ host: '127.0.0.1', port: 0, ...opts });
  const addr = await router.listen();
  return [router, `127.0.0.1:${addr.port}`];
}

async function take(it: AsyncIterator<Message>, n: number): Promise<Message[]> {
  const out: Message[] = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done === true) break;
    out.push(r.value);
  }
  return out;
}

test('two agents through a real router: IDs carry the router ID, messages flow both ways', async () => {
  const [router, addr] = await startRouter({ routerId: 0xdeadbeef });
  const a = await connect({ router: addr });
  const b = await connect({ router: addr });
  assert.ok(a.id.startsWith('deadbeef') && b.id.startsWith('deadbeef'));
  assert.is.not(a.id, b.id);
  assert.is(a.routerInfo.routerId, 0xdeadbeef);
  assert.is(a.routerInfo.maxFrame, 1048576);
  assert.is(a.routerInfo.maxPayload, 1048576 - 26);
  a.send(b.id, 'ping from a');
  b.send(a.id, Buffer.from([0, 1, 2, 255]));
  a.send(a.id, 'to myself');
  const [mb] = await take(b.messages(), 1);
  assert.is(mb!.from, a.id);
  assert.is(mb!.data.toString(), 'ping from a');
  const ma = await take(a.messages(), 2);
  const fromB = ma.find((m) => m.from === b.id)!;
  assert.equal([...fromB.data], [0, 1, 2, 255]);
  assert.is(ma.find((m) => m.from === a.id)!.data.toString(), 'to myself');
  // the largest payload goes through, one more byte is refused locally
  const big = Buffer.alloc(a.routerInfo.maxPayload, 7);
  a.send(b.id, big);
  const [mbig] = await take(b.messages(), 1);
  assert.is(mbig!.data.length, big.length);
  assert.ok(mbig!.data.equals(big));
  assert.throws(() => a.send(b.id, Buffer.alloc(a.routerInfo.maxPayload + 1)), (e: PosternError) => e.code === ErrorCode.FRAME_TOO_LARGE);
  await a.close();
  await b.close();
  await router.close();
});

test('unknown destination: undeliverable carries code, seq and to; flush resolves after the errors', async () => {
  const [router, addr] = await startRouter();
  const a = await connect({ router: addr });
  const b = await connect({ router: addr });
  const ghost = newAgentId(router.routerId).toString('hex');
  const errs: PosternError[] = [];
  a.on('undeliverable', (e) => errs.push(e));
  const seqs: number[] = [];
  for (let i = 0; i < 50; i++) {
    seqs.push(a.send(i % 2 === 0 ? ghost : b.id, `m${i}`));
  }
  await a.flush();
  assert.is(errs.length, 25, 'every ERROR arrived before the PONG');
  assert.equal(errs.map((e) => e.seq), seqs.filter((_, i) => i % 2 === 0));
  for (const e of errs) {
    assert.is(e.code, ErrorCode.UNKNOWN_DESTINATION);
    assert.is(e.wireCode, WireCode.UNKNOWN_DESTINATION);
    assert.is(e.to, ghost);
  }
  const got = await take(b.messages(), 25);
  assert.equal(got.map((m) => m.data.toString()), seqs.flatMap((_, i) => (i % 2 === 1 ? [`m${i}`] : [])));
  await a.close();
  await b.close();
  await router.close();
});

test('reconnect after a router restart on the same port: GOING_AWAY, retries, new ID from the new router', async () => {
  // Same router ID after the restart: the old IDs are not reissued (96 random bits each).
  const [router1, addr] = await startRouter({ routerId: 1 });
  const port = router1.address()!.port;
  const a = await connect({ router: addr, reconnectDelay: 5, reconnectMaxDelay: 20 });
  const b = await connect({ router: addr, reconnectDelay: 5, reconnectMaxDelay: 20 });
  const statuses = recordStatus(a);
  const oldA = a.id;
  const oldB = b.id;
  await router1.close();
  await waitFor(() => statuses.filter((s) => s.type === 'connecting').length >= 2, 3000, 'failed retries');
  const disc = statuses[0] as Extract<Status, { type: 'disconnected' }>;
  assert.is(disc.type, 'disconnected');
  assert.is(disc.error.code, ErrorCode.GOING_AWAY);
  assert.throws(() => a.send(oldB, 'x'), (e: PosternError) => e.code === ErrorCode.NOT_CONNECTED);
  const router2 = new Router({ host: '127.0.0.1', port, routerId: 1 });
  await router2.listen();
  await waitFor(() => a.connected && b.connected, 3000, 'reconnected');
  assert.ok(a.id.startsWith('00000001'));
  assert.is.not(a.id, oldA);
  assert.is.not(b.id, oldB);
  const retry = statuses.find((s) => s.type === 'reconnecting' && s.attempt === 2) as Extract<Status, { type: 'reconnecting' }>;
  assert.is(retry.error.code, ErrorCode.CONNECTION_LOST, 'refused attempts report why');
  assert.is(statuses[statuses.length - 1]!.type, 'registered');
  // the old ID is gone; the new one works
  const errs: PosternError[] = [];
  a.on('undeliverable', (e) => errs.push(e));
  a.send(oldB, 'to the old id');
  a.send(b.id, 'to the new id');
  await a.flush();
  assert.is(errs.length, 1);
  assert.is(errs[0]!.code, ErrorCode.UNKNOWN_DESTINATION);
  const [m] = await take(b.messages(), 1);
  assert.is(m!.data.toString(), 'to the new id');
  assert.is(m!.from, a.id);
  await a.close();
  await b.close();
  await router2.close();
});

/**
 * An in-memory link between agent and router.handle() whose two directions can be cut
 * (bytes silently dropped), to make one side hear nothing without closing anything.
 */
function cuttableLink(router: Router): { connect: () => Duplex; cut: { toAgent: boolean; toRouter: boolean }; dropAll(): void } {
  const cut = { toAgent: false, toRouter: false };
  const live = new Set<Duplex>();
  return {
    cut,
    /** Every connection so far ends abruptly on both sides, as when a network path dies. */
    dropAll: () => {
      for (const d of live) d.destroy();
      live.clear();
    },
    connect: () => {
      const [agentSide, mid1] = duplexPair();
      const [mid2, routerSide] = duplexPair();
      mid1.on('data', (c: Buffer) => {
        if (!cut.toRouter) mid2.write(c);
      });
      mid2.on('data', (c: Buffer) => {
        if (!cut.toAgent) mid1.write(c);
      });
      mid1.on('end', () => mid2.end());
      mid2.on('end', () => mid1.end());
      router.handle(routerSide);
      live.add(agentSide).add(routerSide);
      return agentSide;
    },
  };
}

test('keepalive with a ManualClock: idle connections survive; a silent router is dropped with KEEPALIVE_TIMEOUT and the ID resumed', async () => {
  const clock = new ManualClock();
  const router = new Router({ clock, keepaliveInterval: 1000, port: 0 });
  const link = cuttableLink(router);
  // backoff: floor(0.5 * 1001) = 500 ms before the reconnect attempt
  const a = await connect({ createConnection: link.connect, clock, random: () => 0.5, reconnectDelay: 1000 });
  assert.is(a.routerInfo.keepalive, 1000);
  assert.is(a.routerInfo.timeout, 1500);
  const statuses = recordStatus(a);
  // Idle but healthy: many intervals pass, PINGs and PONGs keep both sides happy.
  for (let i = 0; i < 20; i++) {
    clock.advance(250);
    await ticks(3);
  }
  assert.ok(a.connected);
  assert.equal(statuses, []);
  // The router goes silent towards the agent: the agent gives up after `timeout`.
  const first = a.id;
  link.cut.toAgent = true;
  for (let i = 0; i < 8 && a.connected; i++) {
    clock.advance(250);
    await ticks(3);
  }
  const d = statuses[0] as Extract<Status, { type: 'disconnected' }>;
  assert.is(d?.type, 'disconnected');
  assert.is(d.error.code, ErrorCode.KEEPALIVE_TIMEOUT);
  link.cut.toAgent = false;
  clock.advance(500);
  await until(() => a.connected);
  // CLOSE(KEEPALIVE_TIMEOUT) is not a consenting close, so the router parked the ID. [P-12.4]
  assert.is(a.id, first);
  const reg = statuses.find((st) => st.type === 'registered') as Extract<Status, { type: 'registered' }>;
  assert.is(reg.resumed, true);
  await ticks(5);
  assert.is(router.agents, 1);
  await a.close();
  await router.close();
});

test('keepalive with a ManualClock: the router drops an agent it cannot hear; the agent reconnects', async () => {
  const clock = new ManualClock();
  const router = new Router({ clock, keepaliveInterval: 1000, port: 0 });
  const link = cuttableLink(router);
  // backoff: floor(0.5 * 1001) = 500 ms before the reconnect attempt
  const a = await connect({ createConnection: link.connect, clock, random: () => 0.5, reconnectDelay: 1000 });
  const statuses = recordStatus(a);
  link.cut.toRouter = true;
  for (let i = 0; i < 8 && a.connected; i++) {
    clock.advance(250);
    await ticks(3);
  }
  const d = statuses[0] as Extract<Status, { type: 'disconnected' }>;
  assert.is(d?.type, 'disconnected');
  assert.is(d.error.code, ErrorCode.KEEPALIVE_TIMEOUT);
  assert.is(d.error.wireCode, WireCode.KEEPALIVE_TIMEOUT);
  link.cut.toRouter = false;
  clock.advance(500);
  await until(() => a.connected);
  await a.close();
  await router.close();
});

test('backpressure end to end: a consumer that does not read pauses the socket, the sender stalls, memory stays bounded, nothing is lost', async () => {
  const [router, addr] = await startRouter({ maxOutbound: 64 * 1024 });
  const maxQueue = 8;
  const a = await connect({ router: addr });
  const b = await connect({ router: addr, maxQueue });
  const payload = Buffer.alloc(16 * 1024, 1);
  const total = 2000; // 32 MiB: far more than the socket buffers and router queues hold
  let sent = 0;
  let failure: unknown;
  const pump = (async () => {
    for (; sent < total; sent++) {
      while (!a.writable) await once(a, 'drain');
      payload.writeUInt32BE(sent, 0);
      a.send(b.id, Buffer.from(payload));
    }
  })().catch((err: unknown) => {
    failure = err;
  });
  // Wait until the sender makes no progress for a while: it is held back end to end.
  let last = -1;
  let still = 0;
  await waitFor(() => {
    if (sent === last) still++;
    else {
      still = 0;
      last = sent;
    }
    return still >= 25;
  }, 5000, 'the sender to stall');
  assert.ok(sent < total, `sender stalled at ${sent}/${total}`);
  assert.ok(b.receivePaused);
  // one socket read (<= 64 KiB) beyond maxQueue at most
  assert.ok(b.queued >= maxQueue && b.queued <= maxQueue + 5, `queued ${b.queued}`);
  assert.not.ok(a.writable);
  // Now read everything: the pump finishes and every message arrives once, in order.
  let n = 0;
  for await (const m of b) {
    assert.is(m.data.readUInt32BE(0), n);
    n++;
    if (n === total) break;
  }
  await pump;
  assert.is(failure, undefined);
  assert.is(n, total);
  assert.not.ok(b.receivePaused);
  await a.close();
  await b.close();
  await router.close();
});

test('slow consumer: the router drops a reader that never reads; the sender gets DESTINATION_SLOW with the seq; the reader is dropped and reconnects', async () => {
  const clock = new ManualClock();
  const [router, addr] = await startRouter({ clock, maxOutbound: 64 * 1024, slowConsumerTimeout: 1000, closeTimeout: 60000 });
  const a = await connect({ router: addr });
  const b = await connect({ router: addr, maxQueue: 4, reconnectDelay: 1, reconnectMaxDelay: 5 });
  const bStatus = recordStatus(b);
  const oldB = b.id;
  const slow: PosternError[] = [];
  const unknown: PosternError[] = [];
  a.on('undeliverable', (e) => (e.code === ErrorCode.DESTINATION_SLOW ? slow : unknown).push(e));
  const payload = Buffer.alloc(16 * 1024, 2);
  const seqs: number[] = [];
  let stop = false;
  const pump = (async () => {
    while (!stop && seqs.length < 4000) {
      while (!a.writable && !stop) await Promise.race([once(a, 'drain'), new Promise((r) => setTimeout(r, 20))]);
      if (!stop) seqs.push(a.send(oldB, payload));
    }
  })();
  let last = -1;
  let still = 0;
  await waitFor(() => {
    if (seqs.length === last) still++;
    else {
      still = 0;
      last = seqs.length;
    }
    return still >= 25;
  }, 5000, 'the sender to stall');
  assert.ok(b.receivePaused);
  for (let i = 0; i < 30 && slow.length === 0; i++) {
    clock.advance(100);
    await ticks(3);
  }
  // One DESTINATION_SLOW per SEND dropped with the reader's queue, each naming its own seq.
  await waitFor(() => slow.length >= 1, 3000, 'DESTINATION_SLOW');
  stop = true;
  await pump;
  assert.is(slow[0]!.to, oldB);
  for (const e of slow) assert.ok(seqs.includes(e.seq!), 'the seq of a SEND the agent made');
  assert.is(new Set(slow.map((e) => e.seq)).size, slow.length);
  // B still holds what it had; once it reads again it reaches the end of the connection and reconnects.
  await waitFor(() => {
    while (b.queued > 0) void b.messages().next();
    return bStatus.some((st) => st.type === 'registered');
  }, 5000, 'the reader to reconnect');
  const d = bStatus.find((st) => st.type === 'disconnected') as Extract<Status, { type: 'disconnected' }>;
  // The router destroys a slow consumer's socket right after queueing CLOSE (to free its
  // backlog at once), so the CLOSE usually never arrives: the agent sees the connection end.
  assert.ok(d.error.code === ErrorCode.SLOW_CONSUMER || d.error.code === ErrorCode.CONNECTION_LOST, d.error.code);
  assert.is.not(b.id, oldB);
  await a.close();
  await b.close();
  await router.close();
});

test('resume: a dropped connection gets its ID back and the messages the router held meanwhile', async () => {
  const [router, addr] = await startRouter();
  const link = cuttableLink(router);
  const a = await connect({ createConnection: link.connect, reconnectDelay: 50, reconnectMaxDelay: 50, random: () => 0.999 });
  const b = await connect({ router: addr });
  const statuses = recordStatus(a);
  const first = a.id;
  link.dropAll();
  await waitFor(() => !a.connected, 2000, 'the drop to be noticed');
  // while a is away, its ID stays registered and the router holds what is sent to it
  for (let i = 0; i < 3; i++) b.send(first, `held ${i}`);
  const errs: PosternError[] = [];
  b.on('undeliverable', (e) => errs.push(e));
  await b.flush();
  assert.equal(errs, []);
  await waitFor(() => a.connected, 3000, 'the resume');
  assert.is(a.id, first);
  const reg = statuses.find((st) => st.type === 'registered') as Extract<Status, { type: 'registered' }>;
  assert.is(reg.resumed, true);
  const got = await take(a.messages(), 3);
  assert.equal(got.map((m) => m.data.toString()), ['held 0', 'held 1', 'held 2']);
  assert.ok(got.every((m) => m.from === b.id));
  await a.close();
  await b.close();
  await router.close();
});

test('drain: agents flush, leave with CLOSE(NORMAL) and move to the alternate router', async () => {
  const [r1, addr1] = await startRouter({ routerId: 11 });
  const [r2, addr2] = await startRouter({ routerId: 22 });
  const a = await connect({ router: addr1 });
  const b = await connect({ router: addr1 });
  const statuses = recordStatus(a);
  a.send(b.id, 'sent before the drain');
  const [m] = await take(b.messages(), 1);
  assert.is(m!.data.toString(), 'sent before the drain');
  await r1.drain({ after: 20, grace: 2000, alternates: [addr2] });
  await waitFor(() => a.connected && b.connected, 3000, 'both on the alternate');
  assert.ok(a.id.startsWith('00000016') && b.id.startsWith('00000016'));
  const d = statuses.find((st) => st.type === 'disconnected') as Extract<Status, { type: 'disconnected' }>;
  assert.is(d.error.code, ErrorCode.DRAINING);
  const r = statuses.find((st) => st.type === 'reconnecting') as Extract<Status, { type: 'reconnecting' }>;
  assert.ok(r.delayMs >= 0 && r.delayMs <= 20);
  assert.is(r1.stats.closes[WireCode.GOING_AWAY] ?? 0, 0, 'nobody had to be pushed out');
  a.send(b.id, 'on the new router');
  const [m2] = await take(b.messages(), 1);
  assert.is(m2!.data.toString(), 'on the new router');
  await a.close();
  await b.close();
  await r2.close();
});

test('key directory: lookup returns the registered key, or the coded reason', async () => {
  const [router, addr] = await startRouter();
  const key = new Uint8Array(32).map((_, i) => i + 1);
  const a = await connect({ router: addr });
  const b = await connect({ router: addr, publicKey: key });
  assert.equal([...(await a.lookup(b.id))], [...key]);
  const e1 = await a.lookup(a.id).then(() => undefined, (e: PosternError) => e);
  assert.is(e1?.code, ErrorCode.NO_KEY);
  const e2 = await a.lookup(newAgentId(router.routerId)).then(() => undefined, (e: PosternError) => e);
  assert.is(e2?.code, ErrorCode.UNKNOWN_DESTINATION);
  const e3 = await a.lookup('nope').then(() => undefined, (e: PosternError) => e);
  assert.is(e3?.code, ErrorCode.INVALID_ID);
  await a.close();
  await b.close();
  await router.close();
});

test('anonymous sends: the receiver sees a reply handle, and a reply reaches the sender', async () => {
  const [router, addr] = await startRouter();
  const a = await connect({ router: addr });
  const b = await connect({ router: addr });
  a.send(b.id, 'who am I?', { anonymous: true });
  const [m] = await take(b.messages(), 1);
  assert.ok(m!.anonymous);
  assert.is.not(m!.from, a.id);
  b.send(m!.from, 'someone');
  const [reply] = await take(a.messages(), 1);
  assert.is(reply!.data.toString(), 'someone');
  assert.is(reply!.from, b.id);
  assert.not.ok(reply!.anonymous);
  await a.close();
  await b.close();
  await router.close();
});

test('anonymous connection: no ID, every send under a reply handle, replies come back', async () => {
  const [router, addr] = await startRouter();
  const anon = await connect({ router: addr, anonymous: true });
  const b = await connect({ router: addr });
  assert.is(anon.id, '0'.repeat(32));
  anon.send(b.id, 'hello from nobody');
  const [m] = await take(b.messages(), 1);
  assert.ok(m!.anonymous);
  b.send(m!.from, 'hello nobody');
  const [reply] = await take(anon.messages(), 1);
  assert.is(reply!.data.toString(), 'hello nobody');
  await anon.close();
  await b.close();
  await router.close();
});

test('admission: without the token connect fails for good with ADMISSION_DENIED; with it, it works', async () => {
  const [router, addr] = await startRouter({ admissionTokens: ['open-sesame-123'] });
  const err = await connect({ router: addr }).then(() => undefined, (e: PosternError) => e);
  assert.is(err?.code, ErrorCode.ADMISSION_DENIED);
  const a = await connect({ router: addr, token: 'open-sesame-123' });
  assert.ok(a.connected);
  await a.close();
  await router.close();
});

test('close: the router sees the agent leave; iteration ends', async () => {
  const [router, addr] = await startRouter();
  const a: Agent = await connect({ router: addr });
  await waitFor(() => router.agents === 1);
  const done = (async () => {
    const got: Message[] = [];
    for await (const m of a) got.push(m);
    return got;
  })();
  await a.close();
  assert.equal(await done, []);
  await waitFor(() => router.agents === 0 && router.connections === 0, 3000, 'router to forget the agent');
  await router.close();
});

test.run();
