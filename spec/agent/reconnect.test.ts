import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReconnectLoop } from '../../src/agent/reconnect.js';
import type { BackoffPolicy } from '../../src/net/backoff.js';
import { ManualClock } from '../../src/net/clock.js';

const full: BackoffPolicy = { initialDelay: 100, maxDelay: 1000, jitter: 'full' };
const hi = (): number => 0.9999999999;

function loop(clock: ManualClock, attempt: (n: number) => Promise<void>, maxAttempts = Infinity) {
  const log: string[] = [];
  const l = new ReconnectLoop(
    { clock, policy: full, maxAttempts, random: hi },
    {
      attempt: (n) => {
        log.push(`attempt ${n}`);
        return attempt(n);
      },
      isPermanent: (err) => (err as Error).message === 'permanent',
      onWait: (n, d) => log.push(`wait ${n} ${d}`),
      onGiveUp: (err) => log.push(`give up ${(err as Error).message}`),
    },
  );
  return { l, log };
}

const flush = () => new Promise<void>((r) => setImmediate(r));

test('loop: waits the backoff before each attempt and stops on success', async () => {
  const clock = new ManualClock();
  const { l, log } = loop(clock, (n) => (n < 3 ? Promise.reject(new Error('no')) : Promise.resolve()));
  const done = l.start();
  assert.equal(log, ['wait 1 100']);
  clock.advance(99);
  await flush();
  assert.equal(log, ['wait 1 100']);
  clock.advance(1);
  await flush();
  assert.equal(log, ['wait 1 100', 'attempt 1', 'wait 2 200']);
  clock.advance(200);
  await flush();
  clock.advance(400);
  await done;
  assert.equal(log, ['wait 1 100', 'attempt 1', 'wait 2 200', 'attempt 2', 'wait 3 400', 'attempt 3']);
  assert.not.ok(l.running);
  assert.is(clock.pending, 0);
});

test('loop: single flight — start() while running returns the same run', async () => {
  const clock = new ManualClock();
  const { l, log } = loop(clock, () => Promise.resolve());
  const a = l.start();
  const b = l.start();
  assert.is(a, b);
  clock.advance(100);
  await a;
  assert.equal(log.filter((x) => x.startsWith('attempt')), ['attempt 1']);
});

test('loop: a permanent error gives up at once; maxAttempts bounds the rest', async () => {
  const clock = new ManualClock();
  const p = loop(clock, () => Promise.reject(new Error('permanent')));
  const d1 = p.l.start();
  clock.advance(100);
  await d1;
  assert.equal(p.log, ['wait 1 100', 'attempt 1', 'give up permanent']);

  const q = loop(clock, () => Promise.reject(new Error('again')), 2);
  const d2 = q.l.start();
  clock.advance(100);
  await flush();
  clock.advance(200);
  await d2;
  assert.equal(q.log, ['wait 1 100', 'attempt 1', 'wait 2 200', 'attempt 2', 'give up again']);
});

test('loop: stop() cancels the wait and ignores an attempt in flight', async () => {
  const clock = new ManualClock();
  const s1 = loop(clock, () => Promise.resolve());
  const d1 = s1.l.start();
  s1.l.stop();
  await d1;
  assert.is(clock.pending, 0);
  assert.equal(s1.log, ['wait 1 100']);

  let fail!: (e: Error) => void;
  const s2 = loop(clock, () => new Promise<void>((_, rej) => (fail = rej)));
  const d2 = s2.l.start();
  clock.advance(100);
  await flush();
  s2.l.stop();
  fail(new Error('late'));
  await d2;
  assert.equal(s2.log, ['wait 1 100', 'attempt 1']);
  assert.is(clock.pending, 0);
  // and it can start again afterwards
  void s2.l.start();
  assert.ok(s2.l.running);
  s2.l.stop();
});

test('loop: firstDelay replaces the first backoff only', async () => {
  const clock = new ManualClock();
  const { l, log } = loop(clock, (n) => (n < 2 ? Promise.reject(new Error('no')) : Promise.resolve()));
  const done = l.start(7);
  clock.advance(7);
  await flush();
  clock.advance(200);
  await done;
  assert.equal(log, ['wait 1 7', 'attempt 1', 'wait 2 200', 'attempt 2']);
});

test('loop: stop() from inside onWait leaves no timer and no stale run', async () => {
  const clock = new ManualClock();
  let l!: ReconnectLoop;
  let attempts = 0;
  l = new ReconnectLoop(
    { clock, policy: full, maxAttempts: Infinity, random: hi },
    {
      attempt: () => {
        attempts++;
        return Promise.resolve();
      },
      isPermanent: () => false,
      onWait: () => l.stop(),
      onGiveUp: () => {},
    },
  );
  await l.start();
  assert.not.ok(l.running);
  assert.is(clock.pending, 0);
  assert.is(attempts, 0);
});

test.run();
