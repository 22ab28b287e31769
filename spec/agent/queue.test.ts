import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BoundedQueue, FairQueue } from '../../src/agent/queue.js';

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

interface Item {
  from: string;
  n: number;
  size: number;
}

function fair(capacity: number, maxBytes: number, onDrain?: () => void): FairQueue<Item> {
  return new FairQueue<Item>({ capacity, maxBytes, weigh: (i) => i.size, key: (i) => i.from, onDrain });
}

const drain = (q: FairQueue<Item>): string[] => {
  const out: string[] = [];
  for (let i = q.shift(); i !== undefined; i = q.shift()) out.push(`${i.from}${i.n}`);
  return out;
};

test('fair: senders take turns, one item each; order kept per sender; a sender that joins late is next but one', () => {
  const q = fair(1000, 1e9);
  for (let n = 0; n < 5; n++) q.push({ from: 'f', n, size: 1 });
  q.push({ from: 'o', n: 0, size: 1 });
  q.push({ from: 'o', n: 1, size: 1 });
  assert.is(q.senders, 2);
  assert.is(q.shift()!.from, 'f');
  q.push({ from: 'x', n: 0, size: 1 });
  assert.equal(drain(q), ['o0', 'f1', 'x0', 'o1', 'f2', 'f3', 'f4']);
  assert.is(q.senders, 0, 'a sender with nothing waiting has no lane');
  assert.is(q.bytes, 0);
});

test('fair: a flood of 10 000 from one sender delays another sender by one item, not the flood', () => {
  const q = fair(100_000, 1e9);
  for (let n = 0; n < 10_000; n++) q.push({ from: 'flood', n, size: 1 });
  for (let n = 0; n < 3; n++) q.push({ from: 'other', n, size: 1 });
  const order = drain(q);
  assert.equal(order.slice(0, 6), ['flood0', 'other0', 'flood1', 'other1', 'flood2', 'other2']);
  assert.equal(order.filter((x) => x.startsWith('flood')), Array.from({ length: 10_000 }, (_, n) => `flood${n}`));
});

test('fair: lanes never outnumber the items waiting (no map grows past the bound)', () => {
  const q = fair(64, 1e9);
  let most = 0;
  for (let round = 0; round < 50; round++) {
    for (let n = 0; n < 64; n++) q.push({ from: `s${round}-${n}`, n, size: 1 });
    while (q.length > 10) q.shift();
    most = Math.max(most, q.senders);
    assert.ok(q.senders <= q.length);
  }
  drain(q);
  assert.is(q.senders, 0);
  assert.ok(most <= 64);
});

test('fair, bounded in items: full at capacity, the next push says stop (kept), onDrain once at half', () => {
  let drains = 0;
  const q = fair(4, 1e9, () => drains++);
  assert.equal([0, 1, 2, 3].map((n) => q.push({ from: n % 2 ? 'a' : 'b', n, size: 1 })), [true, true, true, true]);
  assert.ok(q.isFull, 'full, but a full queue alone does not stop the producer');
  assert.is(q.push({ from: 'a', n: 4, size: 1 }), false);
  assert.is(q.push({ from: 'c', n: 5, size: 1 }), false, 'overshoot kept, still stopped');
  assert.is(q.length, 6);
  q.shift();
  q.shift();
  q.shift();
  assert.is(drains, 0);
  q.shift(); // 2 left = floor(4 / 2)
  assert.is(drains, 1);
  assert.is(q.push({ from: 'a', n: 6, size: 1 }), true);
  assert.is(drains, 1);
});

test('fair, bounded in bytes: large items fill it long before capacity; drains at half the bytes', () => {
  let drains = 0;
  const MiB = 1024 * 1024;
  const q = fair(1024, 4 * MiB, () => drains++);
  const pushed: boolean[] = [];
  for (let n = 0; n < 6; n++) pushed.push(q.push({ from: 'big', n, size: MiB }));
  assert.equal(pushed, [true, true, true, true, false, false]);
  assert.is(q.bytes, 6 * MiB);
  q.shift();
  q.shift();
  q.shift();
  assert.is(drains, 0, '3 MiB left: above half the bytes although far below half the items');
  q.shift();
  assert.is(drains, 1);
  assert.is(q.bytes, 2 * MiB);
});

test('fair: waiters get items directly; end() and release() as for BoundedQueue; options checked', async () => {
  const q = fair(2, 10);
  const w = q.next();
  q.push({ from: 'a', n: 0, size: 1 });
  assert.equal((await w).value, { from: 'a', n: 0, size: 1 });
  assert.is(q.length, 0);
  const owner = {};
  const w2 = q.next(owner);
  q.release(owner);
  assert.equal(await w2, { done: true, value: undefined });
  q.push({ from: 'a', n: 1, size: 1 });
  q.end();
  assert.not.ok(q.push({ from: 'a', n: 2, size: 1 }));
  assert.equal((await q.next()).value, { from: 'a', n: 1, size: 1 });
  assert.equal(await q.next(), { done: true, value: undefined });
  q.clear();
  assert.is(q.length, 0);
  assert.throws(() => fair(0, 10), RangeError);
  assert.throws(() => fair(1, 0), RangeError);
});

test.run();
