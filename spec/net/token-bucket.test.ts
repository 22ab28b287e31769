import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenBucket } from '../../src/net/token-bucket.js';

test('starts full, refills at the rate, never beyond its burst', () => {
  const b = new TokenBucket(2, 10, 0);
  assert.is(b.level(10, 0), 20);
  assert.ok(b.full(10, 0));
  for (let i = 0; i < 20; i++) assert.ok(b.tryTake(1, 10, 0), `token ${i}`);
  assert.not.ok(b.tryTake(1, 10, 0));
  assert.is(b.level(10, 0), 0);
  assert.is(b.level(10, 250), 2.5);
  assert.not.ok(b.tryTake(3, 10, 250), 'takes none when short');
  assert.ok(b.tryTake(2, 10, 250));
  assert.is(b.level(10, 60_000), 20);
  assert.ok(b.full(10, 60_000));
});

test('take() goes into debt, and the debt is paid back at the rate', () => {
  const b = new TokenBucket(1, 100, 1000);
  assert.is(b.take(150, 100, 1000), -50);
  assert.is(b.level(100, 1250), -25);
  assert.is(b.take(0, 100, 1500), 0);
});

test('the rate is read at each call: a changed limit applies at once', () => {
  const b = new TokenBucket(1, 10, 0);
  assert.is(b.take(10, 10, 0), 0);
  assert.is(b.level(1000, 100), 100);
  assert.is(b.level(0, 100), 0);
});

test.run();
