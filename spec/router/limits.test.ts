import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import type { RouterOptions } from '../../src/router/options.js';
import { ManualClock } from '../../src/net/clock.js';
import { readClose, readError } from '../../src/protocol/control.js';
import { encodePreamble, encodeSend } from '../../src/protocol/encoder.js';
import { FrameType, WireCode } from '../../src/protocol/frame.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { duplexPair, eventually, RawClient } from '../helpers/raw.js';

const L = suite('limits and admission');
const routers: Router[] = [];
const clients: RawClient[] = [];

async function start(extra: RouterOptions = {}): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 8, ...extra });
  await r.listen();
  routers.push(r);
  return r;
}

async function tcp(r: Router): Promise<RawClient> {
  const c = await RawClient.tcp(r.address()!.port);
  clients.push(c);
  return c;
}

function mem(r: Router, address: string): RawClient {
  const [mine, theirs] = duplexPair();
  r.handle(theirs, undefined, address);
  const c = new RawClient(mine);
  clients.push(c);
  return c;
}

L.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

function closeCode(f: { type: number; bytes: Buffer }): number {
  assert.is(f.type, FrameType.CLOSE);
  return readClose(f.bytes, 0, f.bytes.length).code;
}

L('maxConnections: the next connection gets TOO_MANY_CONNECTIONS, the others keep working', async () => {
  const r = await start({ maxConnections: 2 });
  const a = await tcp(r);
  const b = await tcp(r);
  await a.register();
  const rb = await b.register();
  const c = await tcp(r);
  c.write(encodePreamble(1));
  assert.is(closeCode(await c.next()), WireCode.TOO_MANY_CONNECTIONS);
  a.write(...encodeSend(rb.id, 1, Buffer.from('fine')));
  assert.is((await b.next()).type, FrameType.DELIVER);
  assert.is(r.stats.refused, 1);
});

L('maxConnectionsPerAddress: the second connection from one address is refused', async () => {
  const r = await start({ maxConnectionsPerAddress: 1 });
  const a = await tcp(r);
  await a.register();
  const b = await tcp(r);
  assert.is(closeCode(await b.next()), WireCode.TOO_MANY_CONNECTIONS);
});

L('registrationRate: past the burst REGISTER gets RATE_LIMITED; later it succeeds; other addresses unaffected', async () => {
  const clock = new ManualClock();
  const r = new Router({ routerId: 8, clock, registrationRate: 1, keepaliveInterval: 100000, handshakeTimeout: 100000 });
  const regs = [mem(r, '10.0.0.1'), mem(r, '10.0.0.1'), mem(r, '10.0.0.1')];
  await regs[0]!.register();
  await regs[1]!.register();
  const third = regs[2]!;
  third.write(encodePreamble(1), ...third.codec.encodeRegister({}));
  const e = await third.next();
  assert.is(readError(e.bytes, 0, e.bytes.length).code, WireCode.RATE_LIMITED);
  const other = mem(r, '10.0.0.2');
  await other.register();
  clock.advance(1000);
  third.write(...third.codec.encodeRegister({}));
  assert.is((await third.next()).type, FrameType.REGISTERED);
  assert.is(r.stats.registrationsLimited, 1);
  for (const c of clients.splice(0)) c.destroy();
  await r.close();
});

L('admission tokens: none or wrong -> ADMISSION_DENIED; right -> registered; reload swaps tokens without dropping anyone', async () => {
  const r = await start({ admissionTokens: ['first-token-123'] });
  const none = await tcp(r);
  none.write(encodePreamble(1), ...none.codec.encodeRegister({}));
  assert.is(closeCode(await none.next()), WireCode.ADMISSION_DENIED);
  const wrong = await tcp(r);
  wrong.write(encodePreamble(1), ...wrong.codec.encodeRegister({ token: 'guess-guess' }));
  assert.is(closeCode(await wrong.next()), WireCode.ADMISSION_DENIED);
  const ok = await tcp(r);
  ok.write(encodePreamble(1), ...ok.codec.encodeRegister({ token: 'first-token-123' }));
  const f = await ok.next();
  assert.is(f.type, FrameType.REGISTERED);
  const okId = ok.codec.decodeRegistered(f.bytes, 0, f.bytes.length).id;
  r.reload({ admissionTokens: ['second-token-456'] });
  const late = await tcp(r);
  late.write(encodePreamble(1), ...late.codec.encodeRegister({ token: 'first-token-123' }));
  assert.is(closeCode(await late.next()), WireCode.ADMISSION_DENIED);
  const fresh = await tcp(r);
  fresh.write(encodePreamble(1), ...fresh.codec.encodeRegister({ token: 'second-token-456' }));
  assert.is((await fresh.next()).type, FrameType.REGISTERED);
  fresh.write(...encodeSend(okId, 1, Buffer.from('still connected')));
  assert.is((await ok.next()).type, FrameType.DELIVER);
  assert.is(r.stats.admissionDenied, 3);
});

L('maxMessageRate: a flooding sender is slowed by reading less, nothing dropped, and others keep flowing', async () => {
  const clock = new ManualClock();
  const r = new Router({ routerId: 8, clock, maxMessageRate: 100, keepaliveInterval: 100000 });
  const flood = mem(r, '10.0.0.1');
  const quiet = mem(r, '10.0.0.2');
  const sink = mem(r, '10.0.0.3');
  await flood.register();
  await quiet.register();
  const rs = await sink.register();
  const burst: Buffer[] = [];
  for (let i = 1; i <= 1000; i++) burst.push(...encodeSend(rs.id, i, Buffer.from([1])));
  // written in 10 chunks so the router reads them separately
  const all = Buffer.concat(burst);
  for (let i = 0; i < 10; i++) flood.write(all.subarray((i * all.length) / 10, ((i + 1) * all.length) / 10));
  await new Promise((res) => setTimeout(res, 100));
  const early = r.stats.relayed;
  assert.ok(early < 1000, `relayed ${early} before any time passed`);
  assert.ok(r.stats.rateLimited >= 1);
  // another agent's message goes straight through
  quiet.write(...encodeSend(rs.id, 1, Buffer.from('quiet')));
  await sink.until(() => sink.frames.some((f) => f.bytes.subarray(26).toString() === 'quiet'), 2000, 'quiet message');
  // as time passes, the rest is read and relayed in order: nothing lost
  for (let t = 0; t < 20 && r.stats.relayed < 1001; t++) {
    clock.advance(1000);
    await new Promise((res) => setTimeout(res, 20));
  }
  await eventually(() => r.stats.relayed === 1001, 2000, 'all relayed');
  const seqs = sink.frames.filter((f) => f.bytes.length === 27).map((f) => f.bytes[26]);
  assert.is(seqs.length, 1000);
  for (const c of clients.splice(0)) c.destroy();
  await r.close();
});

L('reload refuses options that need a restart and bad values, changing nothing', async () => {
  const r = await start();
  const before = r.options.maxConnections;
  for (const bad of [{ port: 1 }, { maxConnections: 0 }] as object[]) {
    try {
      r.reload(bad);
      assert.unreachable(JSON.stringify(bad));
    } catch (err) {
      assert.is((err as PosternError).code, ErrorCode.INVALID_OPTION);
    }
  }
  assert.is(r.options.maxConnections, before);
  r.reload({ maxConnections: 5 });
  assert.is(r.options.maxConnections, 5);
});

L.run();
