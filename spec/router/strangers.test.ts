import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { ManualClock } from '../../src/net/clock.js';
import { readClose } from '../../src/protocol/control.js';
import { FrameType, PREAMBLE_SIZE, WireCode } from '../../src/protocol/frame.js';
import { duplexPair, eventually } from '../helpers/raw.js';

// Turning a stranger away must cost next to nothing, since a flood of
// them comes at hundreds a second.
const S = suite('strangers');

function stranger(r: Router, bytes: Buffer): Buffer[] {
  const [mine, theirs] = duplexPair();
  r.handle(theirs, undefined, '');
  const got: Buffer[] = [];
  mine.on('data', (c: Buffer) => got.push(c));
  mine.on('error', () => {});
  mine.write(bytes);
  return got;
}

S('every stranger gets the same reply buffer, built once, and the same coded CLOSE', async () => {
  const r = new Router({ routerId: 3, clock: new ManualClock() });
  const http = [stranger(r, Buffer.from('GET / HTTP/1.1\r\n\r\n')), stranger(r, Buffer.from('POST / HTTP/1.1\r\n\r\n'))];
  const bin = [stranger(r, Buffer.from([0x00, 1, 2, 3])), stranger(r, Buffer.from([0xff, 9]))];
  await eventually(() => [...http, ...bin].every((g) => g.length > 0), 2000, 'replies');
  assert.ok(http[0]![0] === http[1]![0], 'one HTTP reply buffer for all');
  assert.match(http[0]![0]!.toString('latin1'), /^HTTP\/1\.1 400 /);
  assert.ok(bin[0]![0] === bin[1]![0], 'one CLOSE buffer for all');
  const reply = bin[0]![0]!;
  assert.is(reply[PREAMBLE_SIZE + 4], FrameType.CLOSE);
  assert.is(readClose(reply, PREAMBLE_SIZE, reply.length).code, WireCode.BAD_MAGIC);
  assert.is(r.stats.closes[WireCode.BAD_MAGIC], 4);
});

S('a stranger is ended once: no second end() when the peer FIN follows ours', async () => {
  // Each end() on an ended stream makes Node build an error with its stack: during a flood
  // of strangers that was a tenth of what each cost the router.
  const r = new Router({ routerId: 3, clock: new ManualClock() });
  const [mine, theirs] = duplexPair();
  let ends = 0;
  const end = theirs.end.bind(theirs);
  theirs.end = ((...args: Parameters<typeof theirs.end>) => {
    ends++;
    return end(...args);
  }) as typeof theirs.end;
  r.handle(theirs, undefined, '');
  mine.on('error', () => {});
  mine.resume();
  mine.write(Buffer.from([0x00, 1, 2, 3]));
  await eventually(() => ends > 0, 2000, 'the router ends');
  mine.end();
  await eventually(() => r.connections === 0, 2000, 'the connection is gone');
  assert.is(ends, 1);
});

S.run();
