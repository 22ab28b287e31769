import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Heartbeat } from '../../src/agent/heartbeat.js';
import { ManualClock } from '../../src/net/clock.js';

function setup(keepalive = 1000, timeout = 1500) {
  const clock = new ManualClock();
  const log: string[] = [];
  const hb = new Heartbeat(clock, { ping: () => log.push(`ping@${clock.now()}`), expire: () => log.push(`expire@${clock.now()}`) }, keepalive, timeout);
  return { clock, log, hb };
}

test('silence: one PING at keepalive, expire at timeout, nothing after', () => {
  const { clock, log } = setup();
  clock.advance(999);
  assert.equal(log, []);
  clock.advance(1);
  assert.equal(log, ['ping@1000']);
  clock.advance(499);
  assert.equal(log, ['ping@1000']);
  clock.advance(1);
  assert.equal(log, ['ping@1000', 'expire@1500']);
  clock.advance(10000);
  assert.equal(log, ['ping@1000', 'expire@1500']);
  assert.is(clock.pending, 0);
});

test('anything received restarts the silence, and re-enables the PING', () => {
  const { clock, log, hb } = setup();
  clock.advance(900);
  hb.received();
  clock.advance(900); // 1800: 900 since last receipt
  assert.equal(log, []);
  clock.advance(100); // 1900
  assert.equal(log, ['ping@1900']);
  hb.received(); // the PONG
  clock.advance(1000); // 2900
  assert.equal(log, ['ping@1900', 'ping@2900']);
  clock.advance(500);
  assert.equal(log, ['ping@1900', 'ping@2900', 'expire@3400']);
});

test('received() touches no timer: one pending timer however many receipts', () => {
  const { clock, hb } = setup();
  for (let i = 0; i < 1000; i++) hb.received();
  assert.is(clock.pending, 1);
});

test('paused: never expires, PINGs every keepalive; resume counts as a receipt', () => {
  const { clock, log, hb } = setup();
  hb.pause();
  clock.advance(3500);
  assert.equal(log, ['ping@1000', 'ping@2000', 'ping@3000']);
  hb.resume(); // at 3500
  clock.advance(1400);
  assert.equal(log.length, 4);
  assert.is(log[3], 'ping@4500');
  clock.advance(100);
  assert.is(log[4], 'expire@5000');
});

test('stop() cancels everything', () => {
  const { clock, log, hb } = setup();
  hb.stop();
  clock.advance(10000);
  assert.equal(log, []);
  assert.is(clock.pending, 0);
});

test.run();
