/**
 * The agent's receive queue as a user sees it: fair across senders (round-robin per sender
 * ID, anonymous senders sharing one turn), bounded in messages and in bytes, and pausing the
 * socket only for a message that does not fit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Agent, type Message } from '../../src/agent/agent.js';
import { encodeDeliver } from '../../src/protocol/encoder.js';
import { Flag } from '../../src/protocol/frame.js';
import { formatId, newAgentId } from '../../src/protocol/id.js';
import { FakeRouter, ticks, until } from './fake-router.js';

const MiB = 1024 * 1024;

async function take(a: Agent, n: number): Promise<Message[]> {
  const it = a.messages();
  const out: Message[] = [];
  for (let i = 0; i < n; i++) out.push((await it.next()).value as Message);
  await it.return!();
  return out;
}

test('fair: behind a flood of 500 from one sender, another sender\'s messages come next but one, not after the flood', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect });
  const flood = newAgentId(router.routerId);
  const other = newAgentId(router.routerId);
  const frames: Buffer[] = [];
  for (let i = 0; i < 500; i++) frames.push(...encodeDeliver(flood, Buffer.from(`f${i}`)));
  for (let i = 0; i < 3; i++) frames.push(...encodeDeliver(other, Buffer.from(`o${i}`)));
  router.last.write(Buffer.concat(frames));
  await until(() => a.queued === 503, 2000, 'all queued');
  const got = (await take(a, 503)).map((m) => m.data.toString());
  assert.equal(got.slice(0, 6), ['f0', 'o0', 'f1', 'o1', 'f2', 'o2']);
  // order per sender is kept
  assert.equal(got.filter((t) => t[0] === 'f'), Array.from({ length: 500 }, (_, i) => `f${i}`));
  await a.close();
});

test('fair: anonymous senders share one turn, so a flood under fresh reply handles does not push a registered sender back', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect });
  const frames: Buffer[] = [];
  // Each anonymous message has a fresh handle (no STICKY): a turn per handle would be a turn per message.
  for (let i = 0; i < 200; i++) frames.push(...encodeDeliver(newAgentId(router.routerId), Buffer.from(`anon${i}`), Flag.ANONYMOUS));
  const known = newAgentId(router.routerId);
  frames.push(...encodeDeliver(known, Buffer.from('known')));
  router.last.write(Buffer.concat(frames));
  await until(() => a.queued === 201, 2000, 'all queued');
  const got = await take(a, 201);
  assert.equal(got.slice(0, 2).map((m) => m.data.toString()), ['anon0', 'known']);
  assert.is(got[1]!.from, formatId(known));
  assert.equal(got.filter((m) => m.anonymous).map((m) => m.data.toString()), Array.from({ length: 200 }, (_, i) => `anon${i}`));
  await a.close();
});

test('bounded in bytes: 1 MiB messages pause reading at maxQueueBytes, long before maxQueue; all arrive once read', async () => {
  const router = new FakeRouter({ maxFrame: 4 * MiB });
  const a = await connect({ createConnection: router.connect, maxQueue: 1024, maxQueueBytes: 4 * MiB });
  const from = newAgentId(router.routerId);
  const N = 24;
  for (let i = 0; i < N; i++) router.last.deliver(from, Buffer.alloc(MiB, i));
  await until(() => a.receivePaused, 5000, 'paused on bytes');
  await ticks(20);
  // The message that found the queue full is kept (the overshoot is at most what one read held).
  assert.ok(a.queued >= 4 && a.queued <= 6, `queued ${a.queued}`);
  assert.ok(a.queuedBytes <= 6 * MiB, `queued ${a.queuedBytes} bytes`);
  const held = a.queued;
  await ticks(20);
  assert.is(a.queued, held, 'paused: the queue does not grow');
  const got = await take(a, N);
  assert.equal(got.map((m) => m.data[0]), Array.from({ length: N }, (_, i) => i));
  assert.ok(got.every((m) => m.data.length === MiB));
  assert.not.ok(a.receivePaused);
  assert.is(a.queuedBytes, 0);
  await a.close();
});

test('a full queue alone does not pause reading; the next message that does not fit does', async () => {
  const router = new FakeRouter();
  const a = await connect({ createConnection: router.connect, maxQueue: 4 });
  const from = newAgentId(router.routerId);
  for (let i = 0; i < 4; i++) router.last.deliver(from, `m${i}`);
  await until(() => a.queued === 4, 2000, 'four queued');
  await ticks(20);
  assert.not.ok(a.receivePaused, 'full, still reading');
  router.last.deliver(from, 'm4');
  await until(() => a.receivePaused, 2000, 'paused');
  assert.is(a.queued, 5, 'the fifth is kept, not dropped');
  const got = await take(a, 5);
  assert.equal(got.map((m) => m.data.toString()), ['m0', 'm1', 'm2', 'm3', 'm4']);
  assert.not.ok(a.receivePaused);
  await a.close();
});

test.run();
