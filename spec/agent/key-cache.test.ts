import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyCache } from '../../src/agent/key-cache.js';

const k = (n: number): Buffer => Buffer.alloc(32, n);

test('keeps the most recently used entries up to capacity', () => {
  const c = new KeyCache(2);
  c.set('a', k(1));
  c.set('b', k(2));
  assert.ok(c.get('a')!.equals(k(1))); // a is now the most recent
  c.set('c', k(3));
  assert.is(c.size, 2);
  assert.is(c.get('b'), undefined, 'b was the least recently used');
  assert.ok(c.get('a')!.equals(k(1)));
  assert.ok(c.get('c')!.equals(k(3)));
  c.set('a', k(9));
  assert.ok(c.get('a')!.equals(k(9)), 'set replaces');
  c.delete('a');
  assert.is(c.get('a'), undefined);
  assert.is(c.size, 1);
});

test('capacity 0 caches nothing', () => {
  const c = new KeyCache(0);
  c.set('a', k(1));
  assert.is(c.size, 0);
  assert.is(c.get('a'), undefined);
});

test.run();
