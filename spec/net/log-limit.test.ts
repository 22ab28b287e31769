import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/net/clock.js';
import type { LogFields, Logger } from '../../src/net/log.js';
import { limitLog } from '../../src/net/log-limit.js';
import { Router } from '../../src/router/router.js';
import { duplexPair, eventually } from '../helpers/raw.js';

const L = suite('log rate limit');

type Line = [level: string, msg: string, fields: LogFields | undefined];

function recorder(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (msg: string, fields?: LogFields) => void lines.push([level, msg, fields]);
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

L('the first lines of a kind pass, the rest are counted and summarised when the interval ends', () => {
  const clock = new ManualClock();
  const { logger, lines } = recorder();
  const log = limitLog(logger, { clock, interval: 10_000, burst: 3 });
  for (let i = 0; i < 100; i++) log.warn('not a postern client', { remote: `10.0.0.${i}`, code: 'POSTERN_ERR_BAD_MAGIC' });
  assert.is(lines.length, 3);
  clock.advance(9_999);
  assert.is(lines.length, 3);
  clock.advance(1);
  assert.equal(lines[3], ['warn', 'not a postern client: 97 more like this in the last 10 s', { code: 'POSTERN_ERR_BAD_MAGIC', more: 97 }]);
  // A new interval: the burst is allowed again, and a quiet interval writes no summary.
  log.warn('not a postern client', { code: 'POSTERN_ERR_BAD_MAGIC' });
  assert.is(lines.length, 5);
  clock.advance(10_000);
  assert.is(lines.length, 5);
  assert.is(clock.pending, 0, 'no timer while quiet');
});

L('kinds count apart by message, level and code; other messages always pass', () => {
  const clock = new ManualClock();
  const { logger, lines } = recorder();
  const log = limitLog(logger, { clock, burst: 1 });
  for (let i = 0; i < 5; i++) {
    log.info('closing connection', { code: 'HANDSHAKE_TIMEOUT' });
    log.info('closing connection', { code: 'SLOW_CONSUMER' });
    log.info('link up', { router: String(i) });
  }
  assert.is(lines.filter((l) => l[1] === 'link up').length, 5);
  assert.is(lines.filter((l) => l[1] === 'closing connection').length, 2);
  log.flush();
  const summaries = lines.filter((l) => l[1].startsWith('closing connection: '));
  assert.equal(
    summaries.map((l) => [l[0], l[2]]),
    [
      ['info', { code: 'HANDSHAKE_TIMEOUT', more: 4 }],
      ['info', { code: 'SLOW_CONSUMER', more: 4 }],
    ],
  );
  assert.is(clock.pending, 0);
});

L('registrations are limited too: a registration flood is one of the floods', () => {
  const clock = new ManualClock();
  const { logger, lines } = recorder();
  const log = limitLog(logger, { clock, burst: 2 });
  for (let i = 0; i < 50; i++) log.info('agent registered', { agent: String(i) });
  clock.advance(10_000);
  assert.equal(
    lines.map((l) => l[1]),
    ['agent registered', 'agent registered', 'agent registered: 48 more like this in the last 10 s'],
  );
});

L('the router summarises a flood of strangers instead of writing two lines each', async () => {
  const clock = new ManualClock();
  const { logger, lines } = recorder();
  const r = new Router({ routerId: 5, clock, logger });
  const ends = [];
  for (let i = 0; i < 50; i++) {
    const [mine, theirs] = duplexPair();
    r.handle(theirs, undefined, '');
    mine.on('data', () => {});
    mine.on('error', () => {});
    mine.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    ends.push(mine);
  }
  await eventually(() => r.stats.closes[64] === 50, 2000, 'all refused');
  assert.ok(lines.length <= 20, `at most the bursts were written (${lines.length} lines)`);
  for (const e of ends) e.destroy();
  const closed = r.close();
  clock.advance(10_000);
  await closed;
  const summary = lines.find((l) => /^not a postern client: \d+ more like this/.test(l[1]));
  assert.ok(summary !== undefined, 'the rest summarised at close');
  assert.is(summary[2]?.['more'], 40);
});

L.run();
