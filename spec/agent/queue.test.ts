import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BoundedQueue } from '../../src/agent/queue.js';

test('FIFO through shift() and next(); a waiting consumer gets the item directly', async () => {
  const q = new BoundedQueue<number>({ capacity: 4, overflow: 'backpressure' });
  q.push(1);
  q.push(2);
  assert.is(q.shift(), 1);
  assert.equal(await q.next(), { done: false, value: 2 });
  const w1 = q.next();
  const w2 = q.next();
  assert.ok(q.hasWaiters);
  q.push(3);
  q.push(4);
  assert.equal(await w1, { done: false, value: 3 });
  assert.equal(await w2, { done: false, value: 4 });
  assert.is(q.length, 0);
  assert.is(q.shift(), undefined);
});

test('backpressure: push() says full at capacity, keeps the item, onDrain once at low water', () => {
  let drains = 0;
  const q = new BoundedQueue<number>({ capacity: 4, overflow: 'backpressure', onDrain: () => drains++ });
  assert.equal([1, 2, 3].map((i) => q.push(i)), [true, true, true]);
  assert.is(q.push(4), false);
  assert.is(q.push(5), false, 'overshoot kept, still full');
  assert.is(q.length, 5);
  q.shift();
  q.shift();
  assert.is(drains, 0);
  q.shift(); // 2 left = floor(4/2)
  assert.is(drains, 1);
  q.shift();
  q.shift();
  assert.is(drains, 1);
  assert.is(q.dropped, 0);
});

test('drop-oldest: never more than capacity, counts what it drops', async () => {
  const q = new BoundedQueue<number>({ capacity: 3, overflow: 'drop-oldest' });
  for (let i = 1; i <= 10; i++) assert.ok(q.push(i));
  assert.is(q.length, 3);
  assert.is(q.dropped, 7);
  const got: number[] = [];
  q.end();
  for await (const x of q) got.push(x);
  assert.equal(got, [8, 9, 10]);
});

test('end(): waiters get done now; items left are still taken, then done; push after end is refused', async () => {
  const q = new BoundedQueue<string>({ capacity: 2, overflow: 'backpressure' });
  const w = q.next();
  q.end();
  assert.equal(await w, { done: true, value: undefined });
  const r = new BoundedQueue<string>({ capacity: 2, overflow: 'backpressure' });
  r.push('a');
  r.end();
  assert.is(r.push('b'), false);
  assert.ok(r.isEnded);
  assert.equal(await r.next(), { done: false, value: 'a' });
  assert.equal(await r.next(), { done: true, value: undefined });
});

test('release(owner) ends only that owner\'s waits; the item goes to the next consumer', async () => {
  const q = new BoundedQueue<number>({ capacity: 2, overflow: 'backpressure' });
  const a = {};
  const b = {};
  const wa = q.next(a);
  const wb = q.next(b);
  q.release(a);
  assert.equal(await wa, { done: true, value: undefined });
  q.push(7);
  assert.equal(await wb, { done: false, value: 7 });
});

test('return() ends and clears; long runs stay O(1) and compact', async () => {
  const q = new BoundedQueue<number>({ capacity: 100000, overflow: 'drop-oldest' });
  for (let i = 0; i < 50000; i++) q.push(i);
  for (let i = 0; i < 49990; i++) assert.is(q.shift(), i);
  assert.is(q.length, 10);
  for await (const x of q) {
    assert.is(x, 49990);
    break; // calls return()
  }
  assert.is(q.length, 0);
  assert.ok(q.isEnded);
  assert.throws(() => new BoundedQueue({ capacity: 0, overflow: 'drop-oldest' }), RangeError);
});

test.run();
