import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffDelay, type BackoffPolicy } from '../../src/net/backoff.js';

const full: BackoffPolicy = { initialDelay: 100, maxDelay: 1000, jitter: 'full' };
const deco: BackoffPolicy = { initialDelay: 100, maxDelay: 1000, jitter: 'decorrelated' };
const lo = (): number => 0;
const hi = (): number => 0.9999999999;

test('full jitter: ceiling doubles per attempt up to maxDelay; floor is 0', () => {
  assert.equal([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(full, n, 0, hi)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal([1, 2, 3, 10].map((n) => backoffDelay(full, n, 0, lo)), [0, 0, 0, 0]);
  assert.is(backoffDelay(full, 3, 0, () => 0.5), 200);
});

test('full jitter: huge attempt numbers stay bounded and finite', () => {
  assert.is(backoffDelay(full, 1e9, 0, hi), 1000);
  assert.is(backoffDelay({ initialDelay: 0x7fffffff, maxDelay: 0x7fffffff, jitter: 'full' }, 5000, 0, hi), 0x7fffffff);
});

test('decorrelated jitter: between initialDelay and 3x previous, capped', () => {
  assert.is(backoffDelay(deco, 1, 100, lo), 100);
  assert.is(backoffDelay(deco, 1, 100, hi), 300);
  assert.is(backoffDelay(deco, 2, 300, hi), 900);
  assert.is(backoffDelay(deco, 3, 900, hi), 1000);
  assert.is(backoffDelay(deco, 4, 1000, lo), 100);
});

test('every delay is an integer within 0..maxDelay, whatever random() returns', () => {
  const weird = [0, 0.3, 0.999, 1, 2, -1, NaN, Infinity];
  for (const policy of [full, deco]) {
    let prev = policy.initialDelay;
    for (let n = 1; n < 200; n++) {
      const r = weird[n % weird.length]!;
      const d = backoffDelay(policy, n, prev, () => r);
      assert.ok(Number.isInteger(d) && d >= 0 && d <= policy.maxDelay, `${policy.jitter} n=${n} r=${r} d=${d}`);
      prev = d;
    }
  }
});

test.run();
