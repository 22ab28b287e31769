import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type AddressInfo } from 'node:net';
import { duplexPair } from 'node:stream';
import { connect, type Agent, type Message, type Status } from '../../src/agent/agent.js';
import { ManualClock } from '../../src/net/clock.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { FrameType, WireCode } from '../../src/protocol/frame.js';
import { encodeDeliver, encodeError, encodePreamble, encodeSend } from '../../src/protocol/encoder.js';
import { newAgentId } from '../../src/protocol/id.js';
import { FakeRouter, recordStatus, ticks, until } from './fake-router.js';

async function rejectsWith(p: Promise<unknown>, code: string): Promise<PosternError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, PosternError);
    assert.is((err as PosternError).code, code);
    return err as PosternError;
  }
  assert.unreachable(`expected rejection with ${code}`);
  throw new Error('unreachable');
}

function throwsCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, PosternError);
    assert.is((err as PosternError).code, code);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

async function pair(router = new FakeRouter(), extra: Parameters<typeof connect>[0] = {}): Promise<[Agent, Agent, FakeRouter]> {
  const a = await connect({ createConnection: router.connect, ...extra });
  const b = await connect({ createConnection: router.connect, ...extra });
  return [a, b, router];
}

test('connect: resolves registered with the announced ID and limits', async () => {
  const router = new FakeRouter({ routerId: 0x01020304, maxFrame: 2048, keepalive: 1000, timeout: 1500 });
  const a = await connect({ createConnection: router.connect });
  assert.match(a.id, /^01020304[0-9a-f]{24}$/);
  assert.is(a.idBytes.toString('hex'), a.id);
  assert.equal(a.routerInfo, { routerId: 0x01020304, maxFrame: 2048, maxPayload: 2022, keepalive: 1000, timeout: 1500 });
  assert.ok(a.connected);
  assert.ok(a.writable);
  // preamble v1 then REGISTER, nothing else
  assert.is(router.last.preambleVersion, 1);
  assert.equal(router.last.frames.map((f) => f.type), [FrameType.REGISTER]);
  await a.close();
});

test('send/receive both ways; seq starts at 1 and increments; iterator and event', async () => {
  const [a, b] = await pair();
  assert.is(a.send(b.id, 'hello'), 1);
  assert.is(a.send(b.idBytes, Uint8Array.of(1, 2, 3)), 2);
  const it = b.messages();
  const m1 = (await it.next()).value as Message;
  const m2 = (await it.next()).value as Message;
  assert.is(m1.from, a.id);
  assert.is(m1.data.toString(), 'hello');
  assert.equal([...m2.data], [1, 2, 3]);
  const got: Message[] = [];
  a.on('message', (m) => got.push(m));
  assert.is(b.send(a.id.toUpperCase(), 'back'), 1);
  await until(() => got.length === 1);
  assert.is(got[0]!.from, b.id);
  assert.is(got[0]!.data.toString(), 'back');
  await a.close();
  await b.close();
});

test('send writes one SEND frame: header with dest and seq, flags 0, payload as given', async () => {
  const [a, b, router] = await pair();
  const payload = Buffer.from('payload bytes');
  const seq = a.send(b.id, payload);
  await a.flush();
  const conn = router.conns[0]!;
  const sends = conn.of(FrameType.SEND);
  assert.is(sends.length, 1);
  assert.equal(sends[0]!.bytes, Buffer.concat(encodeSend(b.idBytes, seq, payload)));
  assert.is(sends[0]!.bytes[5], 0);
  await a.close();
  await b.close();
});

test('send: synchronous coded errors, seq not consumed by a refused send', async () => {
  const router = new FakeRouter({ maxFrame: 2048 });
  const [a, b] = await pair(router);
  throwsCode(() => a.send('nothex', 'x'), ErrorCode.INVALID_ID);
  throwsCode(() => a.send('00000000' + 'ab'.repeat(12), 'x'), ErrorCode.INVALID_ID);
  throwsCode(() => a.send(new Uint8Array(15), 'x'), ErrorCode.INVALID_ID);
  throwsCode(() => a.send(b.id + '0', 'x'), ErrorCode.INVALID_ID);
  throwsCode(() => a.send(b.id, 42 as unknown as string), ErrorCode.INVALID_ARGUMENT);
  throwsCode(() => a.send(b.id, Buffer.alloc(2048 - 26 + 1)), ErrorCode.FRAME_TOO_LARGE);
  assert.is(a.send(b.id, Buffer.alloc(2048 - 26)), 1);
  const it = b.messages();
  assert.is(((await it.next()).value as Message).data.length, 2022);
  await a.close();
  throwsCode(() => a.send(b.id, 'x'), ErrorCode.CLOSED);
  await b.close();
});

test('seq wraps from 2^32-1 to 1, never 0', async () => {
  const [a, b, router] = await pair();
  (a as unknown as { seq: number }).seq = 0xfffffffe;
  assert.is(a.send(b.id, 'x'), 0xffffffff);
  assert.is(a.send(b.id, 'y'), 1);
  await a.flush();
  const seqs = router.conns[0]!.of(FrameType.SEND).map((f) => f.bytes.readUInt32BE(22));
  assert.equal(seqs, [0xffffffff, 1]);
  await a.close();
  await b.close();
});

test("a throwing listener ('message', 'undeliverable') surfaces as an uncaught exception and does not break the connection", async () => {
  const [a, b] = await pair();
  const boom = new Error('listener bug');
  const caught: unknown[] = [];
  const listeners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', (e) => caught.push(e));
  let n = 0;
  try {
    b.on('message', () => {
      if (n++ === 0) throw boom;
    });
    b.on('undeliverable', () => {
      throw boom;
    });
    a.send(b.id, '1');
    a.send(b.id, '2');
    b.send(newAgentId(0x7f).toString('hex'), 'nobody');
    await b.flush();
    await until(() => n === 2 && caught.length === 2);
  } finally {
    process.removeAllListeners('uncaughtException');
    for (const l of listeners) process.on('uncaughtException', l);
  }
  assert.is(caught[0], boom);
  assert.is(caught[1], boom);
  assert.ok(b.connected);
  await a.close();
  await b.close();
});

test('undeliverable: ERROR(UNKNOWN_DESTINATION) carries code, seq and to; flush resolves after it', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect });
  const ghost = newAgentId(router.routerId).toString('hex');
  const errs: PosternError[] = [];
  a.on('undeliverable', (e) => errs.push(e));
  a.send(ghost, 'one');
  const seq = a.send(ghost, 'two');
  await a.flush();
  assert.is(errs.length, 2);
  assert.is(errs[1]!.code, ErrorCode.UNKNOWN_DESTINATION);
  assert.is(errs[1]!.wireCode, WireCode.UNKNOWN_DESTINATION);
  assert.is(errs[1]!.seq, seq);
  assert.is(errs[1]!.to, ghost);
  await a.close();
});

test('ERROR without a seq goes to warning, not undeliverable', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect });
  const warnings: PosternError[] = [];
  const undeliverable: PosternError[] = [];
  a.on('warning', (e) => warnings.push(e));
  a.on('undeliverable', (e) => undeliverable.push(e));
  router.last.error(WireCode.ALREADY_REGISTERED, 0, null, 'again');
  router.last.error(250, 0, null);
  await until(() => warnings.length === 2);
  assert.is(warnings[0]!.code, ErrorCode.ALREADY_REGISTERED);
  assert.is(warnings[0]!.seq, 0);
  assert.is(warnings[0]!.to, undefined);
  assert.is(warnings[1]!.code, ErrorCode.UNKNOWN_CODE);
  assert.is(warnings[1]!.wireCode, 250);
  assert.is(undeliverable.length, 0);
  await a.close();
});

test("router PING is answered with PONG echoing the payload; stray PONGs are ignored", async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect });
  router.last.ping(Buffer.from('echo-me'));
  router.last.write(Buffer.from([0, 0, 0, 7, FrameType.PONG, 0, 0x66, 0, 0, 0, 99]));
  await until(() => router.last.of(FrameType.PONG).length === 1);
  assert.equal(router.last.of(FrameType.PONG)[0]!.bytes, Buffer.from([0, 0, 0, 9, FrameType.PONG, 0, ...Buffer.from('echo-me')]));
  assert.ok(a.connected);
  await a.close();
});

test('flush: PING carries a counter; rejects NOT_SENT when the connection drops first', async () => {
  const router = new FakeRouter({ pong: false });
  const clock = new ManualClock();
  const a = await connect({ createConnection: router.connect, clock, random: () => 0 });
  const f1 = a.flush();
  const f2 = a.flush();
  await until(() => router.last.of(FrameType.PING).length === 2);
  const pings = router.last.of(FrameType.PING).map((f) => f.bytes.subarray(6));
  assert.is(pings[0]!.length, 5);
  assert.not.equal(pings[0], pings[1]);
  router.last.destroy();
  const e = await rejectsWith(f1, ErrorCode.NOT_SENT);
  assert.is((e.cause as PosternError).code, ErrorCode.CONNECTION_LOST);
  await rejectsWith(f2, ErrorCode.NOT_SENT);
  await rejectsWith(a.flush(), ErrorCode.NOT_CONNECTED);
  await a.close();
  await rejectsWith(a.flush(), ErrorCode.CLOSED);
});

test('close: CLOSE(NORMAL) on the wire, iterators finish after queued messages, closed() resolves', async () => {
  const [a, b, router] = await pair();
  const statuses = recordStatus(b);
  a.send(b.id, 'left in queue');
  await a.flush();
  await until(() => b.queued === 1);
  await b.close();
  const closeFrames = router.conns[1]!.of(FrameType.CLOSE);
  assert.is(closeFrames.length, 1);
  assert.equal(closeFrames[0]!.bytes, Buffer.from([0, 0, 0, 4, FrameType.CLOSE, 0, 0, 0]));
  const got: string[] = [];
  for await (const m of b) got.push(m.data.toString());
  assert.equal(got, ['left in queue']);
  assert.is(await b.closed(), undefined);
  assert.equal(statuses.map((s) => s.type), ['closed']);
  assert.ok(b.isClosed);
  await b.close(); // idempotent
  throwsCode(() => b.send(a.id, 'x'), ErrorCode.CLOSED);
  await a.close();
});

test('close ends a waiting iterator and a status iterator', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect });
  const st = a.status();
  const pending = a.messages().next();
  await a.close();
  assert.equal(await pending, { done: true, value: undefined });
  assert.equal(await st.next(), { done: false, value: { type: 'closed', error: undefined } });
  assert.is((await st.next()).done, true);
  assert.is((await a.status().next()).done, true);
});

test('an iterator returned early does not swallow the next message', async () => {
  const [a, b] = await pair();
  const it1 = b.messages();
  const p1 = it1.next();
  await it1.return!();
  assert.equal(await p1, { done: true, value: undefined });
  a.send(b.id, 'for it2');
  const it2 = b.messages();
  assert.is(((await it2.next()).value as Message).data.toString(), 'for it2');
  await a.close();
  await b.close();
});

test("a 'message' listener takes over messages already queued", async () => {
  const [a, b] = await pair();
  a.send(b.id, '1');
  a.send(b.id, '2');
  await a.flush();
  await until(() => b.queued === 2);
  const got: string[] = [];
  b.on('message', (m) => got.push(m.data.toString()));
  a.send(b.id, '3');
  await until(() => got.length === 3);
  assert.equal(got, ['1', '2', '3']);
  assert.is(b.queued, 0);
  await a.close();
  await b.close();
});

test('message data are views that later reads do not clobber', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect });
  const from = newAgentId(router.routerId);
  // Two frames in one chunk, then a third frame split across chunks.
  const chunk = Buffer.concat([...encodeDeliver(from, Buffer.from('first')), ...encodeDeliver(from, Buffer.from('second'))]);
  router.last.write(chunk);
  const third = Buffer.concat(encodeDeliver(from, Buffer.from('third!')));
  router.last.write(third.subarray(0, 10));
  router.last.write(third.subarray(10));
  const it = a.messages();
  const ms: Message[] = [];
  for (let i = 0; i < 3; i++) ms.push((await it.next()).value as Message);
  // later reads (another chunk, another straddling frame) must not touch earlier views
  const fourth = Buffer.concat(encodeDeliver(from, Buffer.from('fourth')));
  router.last.write(fourth.subarray(0, 3));
  router.last.write(fourth.subarray(3));
  router.last.deliver(from, 'fifth');
  ms.push((await it.next()).value as Message, (await it.next()).value as Message);
  assert.equal(ms.map((m) => m.data.toString()), ['first', 'second', 'third!', 'fourth', 'fifth']);
  assert.is(ms[0]!.from, from.toString('hex'));
  await a.close();
});

test('backpressure: a full queue pauses reading, draining resumes, nothing lost, order kept', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, maxQueue: 4 });
  const from = newAgentId(router.routerId);
  const N = 40;
  for (let i = 0; i < N; i++) router.last.deliver(from, `m${i}`);
  await until(() => a.receivePaused, 2000, 'pause');
  await ticks(20);
  // paused: the queue stops growing (one chunk's frames at most beyond the limit)
  const held = a.queued;
  assert.ok(held >= 4 && held < N, `held ${held}`);
  await ticks(20);
  assert.is(a.queued, held);
  const it = a.messages();
  const got: string[] = [];
  for (let i = 0; i < N; i++) got.push(((await it.next()).value as Message).data.toString());
  assert.equal(got, Array.from({ length: N }, (_, i) => `m${i}`));
  assert.not.ok(a.receivePaused);
  await a.close();
});

test('close() while reading is paused does not wait for the close timeout', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, clock, maxQueue: 2 });
  const from = newAgentId(router.routerId);
  for (let i = 0; i < 50; i++) router.last.deliver(from, Buffer.alloc(1000));
  await until(() => a.receivePaused);
  await a.close(); // the clock never moves: only the router's end can finish this
  assert.ok(a.isClosed);
  assert.is(router.last.of(FrameType.CLOSE).length, 1);
});

test('backpressure survives a reconnect: a full queue still lets the next connection register', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, clock, random: () => 0, maxQueue: 2 });
  const from = newAgentId(router.routerId);
  for (let i = 0; i < 4; i++) router.last.deliver(from, `old${i}`);
  await until(() => a.receivePaused);
  // A CLOSE would sit unread behind the queued data (as on TCP); a reset is noticed at once.
  router.last.destroy();
  await until(() => !a.connected);
  clock.advance(0);
  await until(() => a.connected, 2000, 'registered while the queue is full');
  assert.ok(a.receivePaused);
  router.last.deliver(from, 'new');
  const got: string[] = [];
  for await (const m of a) {
    got.push(m.data.toString());
    if (m.data.toString() === 'new') break;
  }
  assert.ok(got.length >= 3 && got[got.length - 1] === 'new', got.join());
  assert.not.ok(a.receivePaused);
  await a.close();
});

test('keepalive: PING after keepalive ms of silence, CLOSE(KEEPALIVE_TIMEOUT) after timeout, then reconnect', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter({ keepalive: 1000, timeout: 1500, pong: false });
  const a = await connect({ createConnection: router.connect, clock, random: () => 0 });
  const statuses = recordStatus(a);
  const first = a.id;
  clock.advance(999);
  await ticks();
  assert.is(router.conns[0]!.of(FrameType.PING).length, 0);
  clock.advance(1);
  await until(() => router.conns[0]!.of(FrameType.PING).length === 1);
  clock.advance(400);
  await ticks();
  assert.is(router.conns[0]!.of(FrameType.PING).length, 1, 'one PING per silence');
  clock.advance(100);
  await until(() => router.conns[0]!.of(FrameType.CLOSE).length === 1);
  const close = router.conns[0]!.of(FrameType.CLOSE)[0]!.bytes;
  assert.is(close.readUInt16BE(6), WireCode.KEEPALIVE_TIMEOUT);
  const disc = statuses.find((s) => s.type === 'disconnected');
  assert.is(disc?.type === 'disconnected' && disc.error.code, ErrorCode.KEEPALIVE_TIMEOUT);
  clock.advance(0); // backoff delay is 0 with random() = 0
  await until(() => a.connected && a.id !== first);
  assert.is(router.conns.length, 2);
  await a.close();
});

test('keepalive: anything received resets the silence', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter({ keepalive: 1000, timeout: 1500, pong: false });
  const a = await connect({ createConnection: router.connect, clock });
  for (let i = 0; i < 5; i++) {
    clock.advance(900);
    router.last.error(WireCode.ALREADY_REGISTERED, 0, null);
    await ticks();
  }
  assert.is(router.last.of(FrameType.PING).length, 0);
  assert.ok(a.connected);
  await a.close();
});

test('reconnect: router CLOSE(GOING_AWAY) -> disconnected, reconnecting, connecting, registered with a new ID', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, clock, random: () => 0.5, reconnectDelay: 100 });
  const st = a.status();
  const first = a.id;
  router.last.close(WireCode.GOING_AWAY, 'restart');
  await until(() => !a.connected);
  throwsCode(() => a.send(first, 'x'), ErrorCode.NOT_CONNECTED);
  assert.not.ok(a.writable);
  clock.advance(50);
  await until(() => a.connected);
  assert.is.not(a.id, first);
  const types: unknown[] = [];
  for (let i = 0; i < 4; i++) types.push((await st.next()).value);
  assert.is((types[0] as { type: string }).type, 'disconnected');
  assert.is((types[0] as { error: PosternError }).error.code, ErrorCode.GOING_AWAY);
  assert.equal({ ...(types[1] as object), error: undefined }, { type: 'reconnecting', attempt: 1, delayMs: 50, error: undefined });
  assert.equal(types[2], { type: 'connecting', attempt: 1 });
  assert.equal(types[3], { type: 'registered', id: a.id, router: a.routerInfo, resumed: false });
  assert.ok(a.send(first, 'works again') >= 1);
  await a.close();
});

test('reconnect: single flight with exponential backoff while the router refuses, gives up after maxReconnectAttempts', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter();
  const a = await connect({
    createConnection: router.connect,
    clock,
    random: () => 0.999999,
    reconnectDelay: 100,
    reconnectMaxDelay: 350,
    maxReconnectAttempts: 4,
  });
  const statuses = recordStatus(a);
  router.accepting = false;
  router.last.destroy();
  await until(() => statuses.length >= 2);
  for (let i = 0; i < 4; i++) {
    clock.advance(400);
    await ticks();
  }
  const err = await a.closed();
  assert.is(err?.code, ErrorCode.CONNECTION_LOST);
  const delays = statuses.flatMap((s) => (s.type === 'reconnecting' ? [s.delayMs] : []));
  assert.equal(delays, [100, 200, 350, 350]);
  assert.is(statuses.filter((s) => s.type === 'connecting').length, 4);
  assert.is(statuses[statuses.length - 1]!.type, 'closed');
  assert.is(router.conns.length, 1);
});

test('reconnecting holds the process open (a ref\'d handle) until registered or closed', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, clock, random: () => 0 });
  const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timeouts();
  router.last.close(WireCode.GOING_AWAY);
  await until(() => !a.connected);
  assert.is(timeouts(), before + 1);
  clock.advance(0);
  await until(() => a.connected);
  assert.is(timeouts(), before);
  router.last.close(WireCode.GOING_AWAY);
  await until(() => !a.connected);
  assert.is(timeouts(), before + 1);
  await a.close();
  assert.is(timeouts(), before);
});

test('reconnect: disabled -> closed with the error', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, reconnect: false });
  router.last.close(WireCode.GOING_AWAY);
  const err = await a.closed();
  assert.is(err?.code, ErrorCode.GOING_AWAY);
  assert.ok(a.isClosed);
});

test('permanent CLOSE codes (BAD_MAGIC, UNSUPPORTED_VERSION) are not retried', async () => {
  for (const code of [WireCode.BAD_MAGIC, WireCode.UNSUPPORTED_VERSION]) {
    const router = new FakeRouter();
    const a = await connect({ createConnection: router.connect, reconnectDelay: 0 });
    router.last.close(code);
    const err = await a.closed();
    assert.is(err?.wireCode, code);
    assert.is(router.conns.length, 1);
  }
});

test('a frame routers never send (SEND) -> CLOSE(MALFORMED), then reconnect', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, clock, random: () => 0 });
  const statuses = recordStatus(a);
  router.last.write(encodeSend(newAgentId(1), 1, Buffer.from('x')));
  await until(() => router.conns[0]!.of(FrameType.CLOSE).length === 1);
  assert.is(router.conns[0]!.of(FrameType.CLOSE)[0]!.bytes.readUInt16BE(6), WireCode.MALFORMED);
  const d = statuses[0]!;
  assert.is(d.type === 'disconnected' && d.error.code, ErrorCode.MALFORMED);
  clock.advance(0);
  await until(() => a.connected);
  await a.close();
});

test('DRAIN: stop sending, flush, CLOSE(NORMAL), reconnect after a random delay within `after`', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, clock, random: () => 0.5 });
  const statuses = recordStatus(a);
  const first = router.last;
  const peer = newAgentId(router.routerId).toString('hex');
  a.send(peer, 'before the drain');
  first.write(router.codec.encodeDrain({ after: 1000, grace: 5000, alternates: [] }));
  await until(() => !a.connected);
  throwsCode(() => a.send(peer, 'x'), ErrorCode.NOT_CONNECTED);
  await until(() => first.of(FrameType.CLOSE).length === 1);
  // PING (the flush) went out before the CLOSE, and the CLOSE is NORMAL
  const types = first.frames.map((f) => f.type);
  assert.ok(types.lastIndexOf(FrameType.PING) < types.indexOf(FrameType.CLOSE));
  assert.is(first.of(FrameType.CLOSE)[0]!.bytes.readUInt16BE(6), WireCode.NORMAL);
  const d = statuses[0] as Extract<Status, { type: 'disconnected' }>;
  assert.is(d.error.code, ErrorCode.DRAINING);
  const r = statuses[1] as Extract<Status, { type: 'reconnecting' }>;
  assert.is(r.delayMs, 500);
  clock.advance(499);
  await ticks();
  assert.is(router.conns.length, 1);
  clock.advance(1);
  await until(() => a.connected);
  assert.is(router.conns.length, 2);
  await a.close();
});

test('a malformed DRAIN body is MALFORMED', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, reconnect: false });
  router.last.write(router.codec.encodeMap(FrameType.DRAIN, { after: 'soon', grace: 1 }));
  const err = await a.closed();
  assert.is(err?.code, ErrorCode.MALFORMED);
  assert.is(router.last.of(FrameType.CLOSE)[0]!.bytes.readUInt16BE(6), WireCode.MALFORMED);
});

test('connect rejects: ERROR(RATE_LIMITED) to our REGISTER ends the attempt with RATE_LIMITED', async () => {
  const [agentSide, peer] = duplexPair();
  peer.on('data', () => {});
  peer.write(Buffer.concat([encodePreamble(1), encodeError(WireCode.RATE_LIMITED, 0, null, 'slow down')]));
  await rejectsWith(connect({ createConnection: () => agentSide }), ErrorCode.RATE_LIMITED);
});

test('DELIVER flags become message.anonymous / sealed; send options become SEND flags', async () => {
  const [a, b, router] = await pair();
  a.send(b.id, 'x', { anonymous: true, sticky: true, sealed: true });
  a.send(b.id, 'y');
  await a.flush();
  const flags = router.conns[0]!.of(FrameType.SEND).map((f) => f.bytes[5]);
  assert.equal(flags, [0x07, 0]);
  const from = newAgentId(router.routerId);
  router.conns[1]!.write(encodeDeliver(from, Buffer.from('anon'), 0x01 | 0x04));
  const ms = await (async () => {
    const it = b.messages();
    const out: Message[] = [];
    for (let i = 0; i < 3; i++) out.push((await it.next()).value as Message);
    return out;
  })();
  const anon = ms.find((m) => m.data.toString() === 'anon')!;
  assert.is(anon.anonymous, true);
  assert.is(anon.sealed, true);
  const plain = ms.find((m) => m.data.toString() === 'y')!;
  assert.is(plain.anonymous, false);
  assert.is(plain.sealed, false);
  await a.close();
  await b.close();
});

test('REGISTER carries token, anonymous and key when configured', async () => {
  const router = new FakeRouter();
  const key = new Uint8Array(32).fill(9);
  const a = await connect({ createConnection: router.connect, token: 'let-me-in-please', publicKey: key });
  const reg = router.last.of(FrameType.REGISTER)[0]!.bytes;
  const body = router.codec.decodeMap(reg, 0, reg.length, 'REGISTER');
  assert.is(body['token'], 'let-me-in-please');
  assert.equal([...(body['key'] as Uint8Array)], [...key]);
  assert.is(body['anonymous'], undefined);
  assert.is(body['resume'], undefined);
  await a.close();
});

test('connect rejects: CONNECT_TIMEOUT when REGISTERED never comes', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter({ register: false });
  const p = connect({ createConnection: router.connect, clock, connectTimeout: 5000 });
  await until(() => router.conns.length === 1 && router.last.frames.length === 1);
  clock.advance(5000);
  await rejectsWith(p, ErrorCode.CONNECT_TIMEOUT);
});

test('connect rejects: BAD_MAGIC when the peer is not a postern router (HTTP)', async () => {
  const [agentSide, peer] = duplexPair();
  peer.on('data', () => {});
  peer.write('HTTP/1.1 400 Bad Request\r\n\r\n');
  const err = await rejectsWith(connect({ createConnection: () => agentSide }), ErrorCode.BAD_MAGIC);
  assert.ok(err instanceof PosternError);
});

test('connect rejects: UNSUPPORTED_VERSION, and the agent says so with CLOSE', async () => {
  const router = new FakeRouter({ version: 2 });
  await rejectsWith(connect({ createConnection: router.connect }), ErrorCode.UNSUPPORTED_VERSION);
  await until(() => router.last.of(FrameType.CLOSE).length === 1);
  assert.is(router.last.of(FrameType.CLOSE)[0]!.bytes.readUInt16BE(6), WireCode.UNSUPPORTED_VERSION);
});

test('connect rejects: a bad version followed by CLOSE reports the CLOSE code [P-2.3]', async () => {
  const [agentSide, peer] = duplexPair();
  peer.on('data', () => {});
  peer.write(Buffer.concat([encodePreamble(9), Buffer.from([0, 0, 0, 4, FrameType.CLOSE, 0, 0, WireCode.HANDSHAKE_TIMEOUT])]));
  await rejectsWith(connect({ createConnection: () => agentSide }), ErrorCode.HANDSHAKE_TIMEOUT);
  // a bad version followed by something else: UNSUPPORTED_VERSION, whatever that frame is
  const [agentSide2, peer2] = duplexPair();
  peer2.on('data', () => {});
  peer2.write(Buffer.concat([encodePreamble(9), Buffer.from([0, 0, 0, 2, 0x42, 0])]));
  await rejectsWith(connect({ createConnection: () => agentSide2 }), ErrorCode.UNSUPPORTED_VERSION);
});

test('connect rejects: router CLOSE(BAD_MAGIC) during the handshake', async () => {
  const [agentSide, peer] = duplexPair();
  peer.on('data', () => {});
  peer.write(encodePreamble(1));
  peer.end(Buffer.from([0, 0, 0, 4, FrameType.CLOSE, 0, 0, WireCode.BAD_MAGIC]));
  await rejectsWith(connect({ createConnection: () => agentSide }), ErrorCode.BAD_MAGIC);
});

test('connect rejects: refused TCP connection is CONNECTION_LOST with the socket error as cause', async () => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const err = await rejectsWith(connect({ router: `127.0.0.1:${port}` }), ErrorCode.CONNECTION_LOST);
  assert.is((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
});

test('connect rejects: createConnection throwing is CONNECTION_LOST; bad options are INVALID_OPTION', async () => {
  const router = new FakeRouter();
  router.accepting = false;
  await rejectsWith(connect({ createConnection: router.connect }), ErrorCode.CONNECTION_LOST);
  await rejectsWith(connect({ maxQueue: 0 }), ErrorCode.INVALID_OPTION);
});

test('abort signal: before connect, during connect, after connect', async () => {
  const router = new FakeRouter({ register: false });
  await rejectsWith(connect({ createConnection: router.connect, signal: AbortSignal.abort() }), ErrorCode.CLOSED);
  const ac = new AbortController();
  const p = connect({ createConnection: router.connect, signal: ac.signal });
  await until(() => router.conns.length === 1);
  ac.abort();
  await rejectsWith(p, ErrorCode.CLOSED);
  const ok = new FakeRouter();
  const ac2 = new AbortController();
  const a = await connect({ createConnection: ok.connect, signal: ac2.signal });
  ac2.abort();
  await a.closed();
  assert.ok(a.isClosed);
  assert.is(ok.last.of(FrameType.CLOSE).length, 1);
});

test('status iterator: a lagging consumer loses the oldest events and sees the count', async () => {
  const clock = new ManualClock();
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, clock, random: () => 0, maxStatusQueue: 2 });
  const st = a.status();
  for (let i = 0; i < 3; i++) {
    router.last.close(WireCode.GOING_AWAY);
    await until(() => !a.connected);
    clock.advance(0);
    await until(() => a.connected);
  }
  // 3 x (disconnected, reconnecting, connecting, registered) = 12 events, 2 kept
  assert.is(st.dropped, 10);
  assert.is(((await st.next()).value as { type: string }).type, 'connecting');
  assert.is(((await st.next()).value as { type: string }).type, 'registered');
  await a.close();
});

test('send buffer: writable/drain, and SEND_BUFFER_FULL past maxSendBuffer', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, maxSendBuffer: 64 * 1024 });
  const peer = newAgentId(router.routerId).toString('hex');
  router.last.stream.pause();
  const drains: number[] = [];
  a.on('drain', () => drains.push(1));
  const chunk = Buffer.alloc(16 * 1024);
  let threw: PosternError | undefined;
  for (let i = 0; i < 100 && threw === undefined; i++) {
    try {
      a.send(peer, chunk);
    } catch (err) {
      threw = err as PosternError;
    }
    await ticks(1);
  }
  assert.is(threw?.code, ErrorCode.SEND_BUFFER_FULL);
  assert.not.ok(a.writable);
  router.last.stream.resume();
  await until(() => drains.length === 1, 5000, 'drain');
  assert.ok(a.writable);
  await a.close();
});

test.run();
