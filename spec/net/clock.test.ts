import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock, systemClock } from '../../src/net/clock.js';

test('ManualClock: time moves only on advance', () => {
  const c = new ManualClock();
  assert.is(c.now(), 0);
  c.advance(250);
  assert.is(c.now(), 250);
  c.advance(0);
  assert.is(c.now(), 250);
});

test('ManualClock: timers fire when due, in due order, with now() at their due time', () => {
  const c = new ManualClock();
  const log: string[] = [];
  c.setTimeout(() => log.push(`b@${c.now()}`), 200);
  c.setTimeout(() => log.push(`a@${c.now()}`), 100);
  c.setTimeout(() => log.push(`c@${c.now()}`), 300);
  assert.is(c.pending, 3);
  c.advance(99);
  assert.equal(log, []);
  c.advance(1);
  assert.equal(log, ['a@100']);
  c.advance(1000);
  assert.equal(log, ['a@100', 'b@200', 'c@300']);
  assert.is(c.now(), 1100);
  assert.is(c.pending, 0);
});

test('ManualClock: equal due times fire in the order they were set', () => {
  const c = new ManualClock();
  const log: number[] = [];
  for (let i = 0; i < 5; i++) c.setTimeout(() => log.push(i), 10);
  c.advance(10);
  assert.equal(log, [0, 1, 2, 3, 4]);
});

test('ManualClock: cancel', () => {
  const c = new ManualClock();
  let fired = 0;
  const t = c.setTimeout(() => fired++, 10);
  t.cancel();
  assert.is(c.pending, 0);
  c.advance(100);
  assert.is(fired, 0);
  t.cancel();
});

test('ManualClock: refresh restarts the full delay from now, and re-arms a fired timer', () => {
  const c = new ManualClock();
  let fired = 0;
  const t = c.setTimeout(() => fired++, 100);
  c.advance(60);
  t.refresh();
  c.advance(60);
  assert.is(fired, 0, 'refreshed at 60, due at 160');
  c.advance(40);
  assert.is(fired, 1);
  assert.is(c.now(), 160);
  t.refresh();
  assert.is(c.pending, 1);
  c.advance(100);
  assert.is(fired, 2);
});

test('ManualClock: a timer set by a callback fires in the same advance when it falls due', () => {
  const c = new ManualClock();
  const log: number[] = [];
  c.setTimeout(() => {
    log.push(c.now());
    c.setTimeout(() => log.push(c.now()), 30);
  }, 50);
  c.advance(100);
  assert.equal(log, [50, 80]);
  c.setTimeout(() => log.push(c.now()), 0);
  c.advance(0);
  assert.equal(log, [50, 80, 100]);
});

test('ManualClock: a callback that refreshes its own timer (keepalive) fires once per period', () => {
  const c = new ManualClock();
  let n = 0;
  const t = c.setTimeout(() => {
    n++;
    t.refresh();
  }, 1000);
  c.advance(10_500);
  assert.is(n, 10);
  t.cancel();
  c.advance(5000);
  assert.is(n, 10);
});

test('systemClock: monotonic now(), timers fire and cancel', async () => {
  const a = systemClock.now();
  let fired = 0;
  const cancelled = systemClock.setTimeout(() => fired++, 1);
  cancelled.cancel();
  // systemClock's timers are unref'd: hold the process open with a ref'd one meanwhile.
  const hold = setTimeout(() => undefined, 1000);
  await new Promise<void>((resolve) => {
    const t = systemClock.setTimeout(resolve, 5);
    t.refresh(); // restarts the delay; the timer still fires once
  });
  clearTimeout(hold);
  assert.ok(systemClock.now() >= a + 4);
  assert.is(fired, 0);
});

test.run();
