/**
 * Rules an outside implementer found ambiguous, as the router now enforces them:
 * REGISTER keys are typed (§4.1, §11.1), LOOKUP refs are u32 other than 0 (§11.4), and
 * deadlines are never acted on early (§2.5, §8.2).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { encodeFrame, encodePreamble } from '../../src/protocol/encoder.js';
import { FrameType, WireCode } from '../../src/protocol/frame.js';
import { readError } from '../../src/protocol/control.js';
import { ManualClock } from '../../src/net/clock.js';
import { duplexPair, RawClient, type RawFrame } from '../helpers/raw.js';

const T = suite('register and lookup rules');

function closeCode(f: RawFrame): number {
  assert.is(f.type, FrameType.CLOSE, `expected CLOSE, got type ${f.type}`);
  return f.bytes.readUInt16BE(6);
}

function client(r: Router): RawClient {
  const [mine, theirs] = duplexPair();
  r.handle(theirs);
  return new RawClient(mine);
}

/** Sends a preamble and a REGISTER whose body is the given MessagePack hex. */
async function registerHex(r: Router, bodyHex: string): Promise<RawFrame> {
  const c = client(r);
  c.write(encodePreamble(1), Buffer.concat(encodeFrame(FrameType.REGISTER, Buffer.from(bodyHex, 'hex'))));
  return c.next();
}

const KEY = 'c420' + '11'.repeat(32);
// a1 61 = "a"; a9 616e6f6e796d6f7573 = "anonymous"; a3 6b6579 = "key"
const ANON = 'a9616e6f6e796d6f7573';

T('anonymous that is not a boolean is MALFORMED, never a visible registration', async () => {
  const r = new Router({ routerId: 7 });
  for (const v of ['01', 'a3796573', 'c0', '90']) {
    assert.is(closeCode(await registerHex(r, '81' + ANON + v)), WireCode.MALFORMED, `anonymous = ${v}`);
  }
  assert.is(r.agents, 0);
  await r.close();
});

T('anonymous: true with key is MALFORMED rather than dropping the key', async () => {
  const r = new Router({ routerId: 7 });
  assert.is(closeCode(await registerHex(r, '82' + ANON + 'c3' + 'a36b6579' + KEY)), WireCode.MALFORMED);
  // either one alone is fine
  assert.is((await registerHex(r, '81' + ANON + 'c3')).type, FrameType.REGISTERED);
  assert.is((await registerHex(r, '81a36b6579' + KEY)).type, FrameType.REGISTERED);
  await r.close();
});

T('unknown keys are skipped whatever their value, extension values and nested maps included', async () => {
  const r = new Router({ routerId: 7 });
  for (const v of ['d40100', 'c7030501020' + '3', 'd6ffffffffff', '81a178c3', '81c3c3', 'cb3ff8000000000000']) {
    assert.is((await registerHex(r, '81a178' + v)).type, FrameType.REGISTERED, `x = ${v}`);
  }
  await r.close();
});

T('a non-string key at the top level is MALFORMED', async () => {
  const r = new Router({ routerId: 7 });
  for (const k of ['01', 'c3', 'c401aa', '90']) {
    assert.is(closeCode(await registerHex(r, '81' + k + 'c3')), WireCode.MALFORMED, `key ${k}`);
  }
  await r.close();
});

T('defined keys with values of the wrong type are MALFORMED', async () => {
  const r = new Router({ routerId: 7 });
  // token: 5; id: 15 bytes; resume: a string; key: 31 bytes
  for (const body of ['81a5746f6b656e05', '81a26964c40f' + '00'.repeat(15), '81a6726573756d65a178', '81a36b6579c41f' + '11'.repeat(31)]) {
    assert.is(closeCode(await registerHex(r, body)), WireCode.MALFORMED, body);
  }
  await r.close();
});

async function lookupRef(refHex: string): Promise<RawFrame> {
  const r = new Router({ routerId: 7 });
  const c = client(r);
  await c.register();
  // {ref: <refHex>, id: 16 bytes of this router}
  const body = Buffer.from('82a3726566' + refHex + 'a26964c410' + '00000007' + 'ab'.repeat(12), 'hex');
  c.write(Buffer.concat(encodeFrame(FrameType.LOOKUP, body)));
  const f = await c.next();
  await r.close();
  return f;
}

T('LOOKUP ref is a u32 other than 0: 0 and 2^32 are MALFORMED, 2^32-1 is echoed', async () => {
  assert.is(closeCode(await lookupRef('00')), WireCode.MALFORMED);
  assert.is(closeCode(await lookupRef('cf0000000100000000')), WireCode.MALFORMED);
  const f = await lookupRef('ceffffffff');
  assert.is(f.type, FrameType.ERROR);
  const e = readError(f.bytes, 0, f.bytes.length);
  assert.is(e.code, WireCode.UNKNOWN_DESTINATION);
  assert.is(e.seq, 0xffffffff);
});

const D = suite('deadlines are never early');

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((res) => setImmediate(res));
}

D('handshake timeout: a connection opened between sweeps is closed at its deadline, not before', async () => {
  const clock = new ManualClock();
  // sweep period: min(1000, 500) / 10 = 50 ms
  const r = new Router({ routerId: 7, keepaliveInterval: 1000, handshakeTimeout: 500, clock });
  const first = client(r);
  first.write(encodePreamble(1));
  await settle();
  clock.advance(30);
  const late = client(r);
  late.write(encodePreamble(1));
  await settle();
  // `late` opened at 30: its deadline is 530. The sweep at 500 sees 470 ms.
  clock.advance(470);
  await settle();
  assert.ok(late.frames.every((f) => f.type !== FrameType.CLOSE), 'closed before its deadline');
  clock.advance(29);
  await settle();
  assert.ok(late.frames.every((f) => f.type !== FrameType.CLOSE), 'closed before its deadline');
  clock.advance(50); // one sweep period after the deadline at most
  await settle();
  assert.is(closeCode(late.frames.at(-1)!), WireCode.HANDSHAKE_TIMEOUT);
  await r.close();
});

D('keepalive timeout: closed at 1.5 x interval of silence, not before', async () => {
  const clock = new ManualClock();
  const r = new Router({ routerId: 7, keepaliveInterval: 1000, handshakeTimeout: 500, clock });
  const keep = client(r);
  await keep.register();
  clock.advance(30);
  const a = client(r);
  await a.register();
  const since = clock.now();
  // keep `keep` alive so the sweep keeps running; watch `a`
  for (let t = 0; t < 1499; t += 50) {
    clock.advance(Math.min(50, 1499 - t));
    await settle();
  }
  assert.is(clock.now() - since, 1499);
  assert.ok(a.frames.every((f) => f.type !== FrameType.CLOSE), 'closed before 1500 ms of silence');
  clock.advance(51);
  await settle();
  assert.is(closeCode(a.frames.at(-1)!), WireCode.KEEPALIVE_TIMEOUT);
  await r.close();
});

T.run();
D.run();
