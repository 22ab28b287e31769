import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import type { RouterOptions } from '../../src/router/options.js';
import { ManualClock } from '../../src/net/clock.js';
import { readClose, readError, type RegisteredBody } from '../../src/protocol/control.js';
import { encodeClose, encodePreamble, encodeSend } from '../../src/protocol/encoder.js';
import { FrameType, RELAY_HEADER_SIZE, WireCode } from '../../src/protocol/frame.js';
import { duplexPair, eventually, RawClient } from '../helpers/raw.js';

const R = suite('resume and drain');
const routers: Router[] = [];
const clients: RawClient[] = [];

async function start(extra: RouterOptions = {}): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 3, ...extra });
  await r.listen();
  routers.push(r);
  return r;
}

async function connect(r: Router, body: Record<string, unknown> = {}): Promise<{ c: RawClient; reg: RegisteredBody }> {
  const c = await RawClient.tcp(r.address()!.port);
  clients.push(c);
  c.write(encodePreamble(1), ...c.codec.encodeRegister(body));
  const f = await c.next();
  assert.is(f.type, FrameType.REGISTERED);
  return { c, reg: c.codec.decodeRegistered(f.bytes, 0, f.bytes.length) };
}

R.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

function payloads(frames: { bytes: Buffer }[]): string[] {
  return frames.map((f) => f.bytes.subarray(RELAY_HEADER_SIZE).toString());
}

R('a lost agent resumes its ID and gets what was sent meanwhile, in order', async () => {
  const r = await start();
  const a = await connect(r);
  const b = await connect(r);
  assert.ok(a.reg.resume instanceof Uint8Array);
  assert.is(a.reg.resumeGrace, 30000);
  a.c.destroy(); // no CLOSE: the path died
  await eventually(() => r.stats.parked === 1, 2000, 'parked');
  for (let i = 1; i <= 3; i++) b.c.write(...encodeSend(a.reg.id, i, Buffer.from(`m${i}`)));
  await eventually(() => r.stats.held === 3, 2000, 'held');
  const a2 = await connect(r, { resume: a.reg.resume, id: a.reg.id });
  assert.equal(a2.reg.id, a.reg.id);
  assert.is(a2.reg.resumed, true);
  await a2.c.until(() => a2.c.frames.length === 3, 2000, 'held messages');
  assert.equal(payloads(a2.c.frames.splice(0)), ['m1', 'm2', 'm3']);
  b.c.write(...encodeSend(a.reg.id, 4, Buffer.from('m4')));
  assert.equal(payloads([await a2.c.next()]), ['m4']);
  assert.is(b.c.frames.length, 0); // no errors for the held ones
  assert.is(r.stats.resumes, 1);
});

R('past the grace period every held message is reported to its sender, and the ID is gone', async () => {
  const clock = new ManualClock();
  const r = new Router({ routerId: 3, clock, resumeGrace: 1000, keepaliveInterval: 100000 });
  const mem = (): RawClient => {
    const [mine, theirs] = duplexPair();
    r.handle(theirs);
    return new RawClient(mine);
  };
  const a = mem();
  const regA = await a.register();
  const b = mem();
  await b.register();
  a.stream.destroy();
  await eventually(() => r.stats.parked === 1, 2000, 'parked');
  b.write(...encodeSend(regA.id, 7, Buffer.from('x')), ...encodeSend(regA.id, 8, Buffer.from('y')));
  await eventually(() => r.stats.held === 2, 2000, 'held');
  clock.advance(1000);
  const e1 = readError((await b.next()).bytes, 0, 60);
  const e2 = readError((await b.next()).bytes, 0, 60);
  assert.equal([e1.code, e1.seq, e2.code, e2.seq], [WireCode.NOT_DELIVERED, 7, WireCode.NOT_DELIVERED, 8]);
  assert.equal(Buffer.from(e1.id), Buffer.from(regA.id));
  b.write(...encodeSend(regA.id, 9, Buffer.from('z')));
  assert.is(readError((await b.next()).bytes, 0, 60).code, WireCode.UNKNOWN_DESTINATION);
  // a late resume gets a fresh ID
  const a2 = mem();
  a2.write(encodePreamble(1), ...a2.codec.encodeRegister({ resume: regA.resume, id: regA.id }));
  const f = await a2.next();
  const reg2 = a2.codec.decodeRegistered(f.bytes, 0, f.bytes.length);
  assert.not.equal(reg2.id, regA.id);
  assert.is(reg2.resumed, undefined);
  assert.is(r.stats.dropped.resumeExpired, 2);
  b.destroy();
  a2.destroy();
  await r.close();
});

R('holding is bounded: past holdMessages the sender gets DESTINATION_SLOW at once', async () => {
  const r = await start({ holdMessages: 2 });
  const a = await connect(r);
  const b = await connect(r);
  a.c.destroy();
  await eventually(() => r.stats.parked === 1, 2000, 'parked');
  for (let i = 1; i <= 3; i++) b.c.write(...encodeSend(a.reg.id, i, Buffer.from('m')));
  const e = readError((await b.c.next()).bytes, 0, 60);
  assert.is(e.code, WireCode.DESTINATION_SLOW);
  assert.is(e.seq, 3);
});

R('no resume for a bad token or after a normal close; a stale connection is replaced', async () => {
  const r = await start();
  const a = await connect(r);
  const bad = await connect(r, { resume: Buffer.alloc(32, 1), id: a.reg.id });
  assert.not.equal(bad.reg.id, a.reg.id);
  // replace the live (stale) connection
  const a2 = await connect(r, { resume: a.reg.resume, id: a.reg.id });
  assert.equal(a2.reg.id, a.reg.id);
  const cl = await a.c.next();
  assert.is(cl.type, FrameType.CLOSE);
  assert.is(readClose(cl.bytes, 0, cl.bytes.length).code, WireCode.GOING_AWAY);
  // a normal close: the ID is released, not parked
  a2.c.write(encodeClose(WireCode.NORMAL));
  await eventually(() => r.agents === 1, 2000, 'released');
  bad.c.write(...encodeSend(a.reg.id, 5, Buffer.from('x')));
  assert.is(readError((await bad.c.next()).bytes, 0, 60).code, WireCode.UNKNOWN_DESTINATION);
  assert.is(r.stats.parked, 0);
});

R('a restarted router with the same resume secret gives IDs back within its restart window', async () => {
  const opts = { resumeSecret: 'a persisted secret, 16+ chars', resumeGrace: 60_000 };
  const r1 = await start(opts);
  const port = r1.address()!.port;
  const a = await connect(r1);
  routers.splice(routers.indexOf(r1), 1);
  await r1.close();
  const r2 = await start({ ...opts, port });
  const a2 = await connect(r2, { resume: a.reg.resume, id: a.reg.id });
  assert.equal(a2.reg.id, a.reg.id);
  assert.is(a2.reg.resumed, true);
  // without the secret there is no window: a fresh ID
  const r3 = await start({ routerId: 3 });
  const a3 = await connect(r3, { resume: a.reg.resume, id: a.reg.id });
  assert.not.equal(a3.reg.id, a.reg.id);
});

R('a restarted router holds messages for its old IDs during the window: delivered on resume, reported when nobody comes', async () => {
  const clock = new ManualClock();
  const opts = { routerId: 3, clock, resumeSecret: 'a persisted secret, 16+ chars', resumeGrace: 1000, keepaliveInterval: 100000 };
  const r1 = new Router(opts);
  const mem = (r: Router): RawClient => {
    const [mine, theirs] = duplexPair();
    r.handle(theirs);
    return new RawClient(mine);
  };
  const a = mem(r1);
  const regA = await a.register();
  a.destroy();
  await r1.close();
  const r2 = new Router(opts);
  const b = mem(r2);
  await b.register();
  const ghost = Buffer.from(regA.id);
  ghost[15] ^= 0xff; // an ID of this router that never existed
  b.write(...encodeSend(regA.id, 1, Buffer.from('kept')), ...encodeSend(ghost, 2, Buffer.from('nobody')));
  await eventually(() => r2.stats.held === 2, 2000, 'held');
  const a2 = mem(r2);
  a2.write(encodePreamble(1), ...a2.codec.encodeRegister({ resume: regA.resume, id: regA.id }));
  const f = await a2.next();
  assert.is(a2.codec.decodeRegistered(f.bytes, 0, f.bytes.length).resumed, true);
  assert.equal(payloads([await a2.next()]), ['kept']);
  clock.advance(1000);
  const e = readError((await b.next()).bytes, 0, 60);
  assert.equal([e.code, e.seq], [WireCode.NOT_DELIVERED, 2]);
  // after the window, unknown IDs are unknown again
  b.write(...encodeSend(ghost, 3, Buffer.from('late')));
  assert.is(readError((await b.next()).bytes, 0, 60).code, WireCode.UNKNOWN_DESTINATION);
  a2.destroy();
  b.destroy();
  await r2.close();
});

R('drain: agents get DRAIN with the delay and alternates, leave, and drain() resolves; stragglers are closed after grace', async () => {
  const r = await start();
  const a = await connect(r);
  const b = await connect(r);
  const done = r.drain({ after: 50, grace: 400, alternates: ['127.0.0.1:9'] });
  for (const x of [a, b]) {
    const f = await x.c.next();
    assert.is(f.type, FrameType.DRAIN);
    assert.equal(x.c.codec.decodeDrain(f.bytes, 0, f.bytes.length), { after: 50, grace: 400, alternates: ['127.0.0.1:9'] });
  }
  a.c.write(encodeClose(WireCode.NORMAL, 'moving'));
  // b stays: closed with GOING_AWAY when the grace period ends
  const cl = await b.c.next(3000);
  assert.is(readClose(cl.bytes, 0, cl.bytes.length).code, WireCode.GOING_AWAY);
  await done;
  assert.is(r.connections, 0);
  assert.is(r.address(), null);
});

R.run();
