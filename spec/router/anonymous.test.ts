import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { readError } from '../../src/protocol/control.js';
import { encodePreamble, encodeSend } from '../../src/protocol/encoder.js';
import { Flag, FrameType, RELAY_HEADER_SIZE, WireCode } from '../../src/protocol/frame.js';
import { routerIdOf } from '../../src/protocol/id.js';
import { createLogger } from '../../src/net/log.js';
import { eventually, RawClient } from '../helpers/raw.js';

const A = suite('anonymity');
const SECRET = 'a mesh secret for the tests';
const routers: Router[] = [];
const clients: RawClient[] = [];
let logLines: string[] = [];

async function start(routerId: number, peers: string[] = []): Promise<Router> {
  const r = new Router({
    host: '127.0.0.1',
    port: 0,
    routerId,
    peers,
    meshSecret: SECRET,
    linkRetryMin: 20,
    linkRetryMax: 100,
    logger: createLogger({ level: 'debug', format: 'json', write: (l) => void logLines.push(l) }),
  });
  await r.listen();
  routers.push(r);
  return r;
}

async function connect(r: Router, body: Record<string, unknown> = {}): Promise<{ c: RawClient; id: Buffer; anonymous: boolean }> {
  const c = await RawClient.tcp(r.address()!.port);
  clients.push(c);
  c.write(encodePreamble(1), ...c.codec.encodeRegister(body));
  const f = await c.next();
  assert.is(f.type, FrameType.REGISTERED);
  const reg = c.codec.decodeRegistered(f.bytes, 0, f.bytes.length);
  return { c, id: Buffer.from(reg.id), anonymous: reg.anonymous === true };
}

A.before.each(() => {
  logLines = [];
});

A.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

function localPortOf(c: RawClient): number {
  return (c.stream as unknown as { localPort: number }).localPort;
}

function containsPort(bytes: Buffer, port: number): boolean {
  const be = Buffer.alloc(2);
  be.writeUInt16BE(port);
  const le = Buffer.alloc(2);
  le.writeUInt16LE(port);
  return bytes.includes(be) || bytes.includes(le) || bytes.includes(Buffer.from(String(port)));
}

A('an anonymous connection gets no ID; the receiver gets a fresh reply handle per message that routes back while it lives', async () => {
  const r = await start(1);
  const anon = await connect(r, { anonymous: true });
  assert.ok(anon.anonymous);
  assert.equal(anon.id, Buffer.alloc(16));
  const b = await connect(r);
  anon.c.write(...encodeSend(b.id, 1, Buffer.from('who am I?')), ...encodeSend(b.id, 2, Buffer.from('again')));
  const d1 = await b.c.next();
  const d2 = await b.c.next();
  for (const d of [d1, d2]) {
    assert.is(d.type, FrameType.DELIVER);
    assert.is(d.flags, Flag.ANONYMOUS);
    assert.is(routerIdOf(d.bytes, 6), 1);
    // the raw bytes hold header, handle, zero seq, payload: no address, no port, no connection ID
    assert.equal(d.bytes.subarray(22, 26), Buffer.alloc(4));
    assert.not.ok(containsPort(d.bytes.subarray(6, 22), localPortOf(anon.c)));
  }
  const h1 = d1.bytes.subarray(6, 22);
  const h2 = d2.bytes.subarray(6, 22);
  assert.not.equal(h1, h2); // not linkable across messages
  // the receiver replies to the handle; the anonymous sender gets it from b's real ID
  b.c.write(...encodeSend(h1, 3, Buffer.from('you are anonymous')));
  const reply = await anon.c.next();
  assert.is(reply.type, FrameType.DELIVER);
  assert.is(reply.flags, 0);
  assert.equal(reply.bytes.subarray(6, 22), b.id);
  assert.equal(reply.bytes.subarray(RELAY_HEADER_SIZE), Buffer.from('you are anonymous'));
  // after the anonymous connection closes, the handle reaches nothing
  anon.c.destroy();
  await eventually(() => r.connections === 1, 2000, 'anonymous connection gone');
  b.c.write(...encodeSend(h2, 4, Buffer.from('hello?')));
  const e = await b.c.next();
  assert.is(readError(e.bytes, 0, e.bytes.length).code, WireCode.UNKNOWN_DESTINATION);
  assert.is(readError(e.bytes, 0, e.bytes.length).seq, 4);
  // nothing logged the anonymous connection's address
  const port = String(localPortOf(anon.c));
  assert.ok(logLines.some((l) => l.includes('anonymous agent connected')));
  assert.not.ok(logLines.some((l) => l.includes('anonymous') && l.includes(port)));
});

A('a registered agent sends one message anonymously; STICKY reuses one handle; a stranger gets nothing from a handle', async () => {
  const r = await start(1);
  const a = await connect(r);
  const b = await connect(r);
  a.c.write(...encodeSend(b.id, 1, Buffer.from('plain')), ...encodeSend(b.id, 2, Buffer.from('anon'), Flag.ANONYMOUS | Flag.SEALED));
  a.c.write(...encodeSend(b.id, 3, Buffer.from('s1'), Flag.ANONYMOUS | Flag.STICKY), ...encodeSend(b.id, 4, Buffer.from('s2'), Flag.ANONYMOUS | Flag.STICKY));
  const [plain, anon, s1, s2] = [await b.c.next(), await b.c.next(), await b.c.next(), await b.c.next()];
  assert.equal(plain.bytes.subarray(6, 22), a.id);
  assert.is(anon.flags, Flag.ANONYMOUS | Flag.SEALED);
  assert.not.equal(anon.bytes.subarray(6, 22), a.id);
  assert.equal(s1.bytes.subarray(6, 22), s2.bytes.subarray(6, 22));
  assert.not.equal(s1.bytes.subarray(6, 22), anon.bytes.subarray(6, 22));
  // a stranger cannot learn the sender behind a handle: LOOKUP on it is unknown
  const stranger = await connect(r);
  stranger.c.write(...stranger.c.codec.encodeLookup({ ref: 9, id: anon.bytes.subarray(6, 22) }));
  const e = await stranger.c.next();
  assert.is(readError(e.bytes, 0, e.bytes.length).code, WireCode.UNKNOWN_DESTINATION);
});

A('handles are bounded per connection: the oldest is retired', async () => {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 4, maxHandles: 2 });
  await r.listen();
  routers.push(r);
  const anon = await connect(r, { anonymous: true });
  const b = await connect(r);
  for (let i = 1; i <= 3; i++) anon.c.write(...encodeSend(b.id, i, Buffer.from([i])));
  const hs = [await b.c.next(), await b.c.next(), await b.c.next()].map((f) => Buffer.from(f.bytes.subarray(6, 22)));
  b.c.write(...encodeSend(hs[0]!, 10, Buffer.from('old')), ...encodeSend(hs[2]!, 11, Buffer.from('new')));
  const e = await b.c.next();
  assert.is(readError(e.bytes, 0, e.bytes.length).code, WireCode.UNKNOWN_DESTINATION);
  assert.is(readError(e.bytes, 0, e.bytes.length).seq, 10);
  assert.equal((await anon.c.next()).bytes.subarray(RELAY_HEADER_SIZE), Buffer.from('new'));
});

A('key directory: LOOKUP answers the registered key, NO_KEY, UNKNOWN_DESTINATION; works across the mesh', async () => {
  const r1 = await start(1);
  const r2 = await start(2, [`127.0.0.1:${r1.address()!.port}`]);
  await eventually(() => r1.links().length === 1, 3000, 'link');
  const key = Buffer.alloc(32, 0x42);
  const withKey = await connect(r1, { key });
  const noKey = await connect(r1);
  const q = await connect(r2);
  q.c.write(...q.c.codec.encodeLookup({ ref: 1, id: withKey.id }));
  const res = await q.c.next();
  assert.is(res.type, FrameType.LOOKUP_RESULT);
  const body = q.c.codec.decodeLookupResult(res.bytes, 0, res.bytes.length);
  assert.is(body.ref, 1);
  assert.equal(Buffer.from(body.key), key);
  assert.equal(Buffer.from(body.id), withKey.id);
  assert.is(body.to, undefined);
  q.c.write(...q.c.codec.encodeLookup({ ref: 2, id: noKey.id }));
  const e = await q.c.next();
  assert.is(readError(e.bytes, 0, e.bytes.length).code, WireCode.NO_KEY);
  assert.is(readError(e.bytes, 0, e.bytes.length).seq, 2);
  q.c.write(...q.c.codec.encodeLookup({ ref: 3, id: Buffer.from('00000001ffffffffffffffffffffffff', 'hex') }));
  assert.is(readError((await q.c.next()).bytes, 0, 60).code, WireCode.UNKNOWN_DESTINATION);
  // a malformed key at registration closes with MALFORMED
  const bad = await RawClient.tcp(r1.address()!.port);
  clients.push(bad);
  bad.write(encodePreamble(1), ...bad.codec.encodeRegister({ key: Buffer.alloc(5) }));
  const cl = await bad.next();
  assert.is(cl.type, FrameType.CLOSE);
  assert.is(cl.bytes.readUInt16BE(6), WireCode.MALFORMED);
});

A('anonymous across the mesh: the far receiver sees only a handle, and its reply comes back', async () => {
  const r1 = await start(1);
  const r2 = await start(2, [`127.0.0.1:${r1.address()!.port}`]);
  await eventually(() => r1.links().length === 1 && r2.links().length === 1, 3000, 'link');
  const anon = await connect(r1, { anonymous: true });
  const b = await connect(r2);
  anon.c.write(...encodeSend(b.id, 1, Buffer.from('across'), Flag.SEALED));
  const d = await b.c.next();
  assert.is(d.flags, Flag.ANONYMOUS | Flag.SEALED);
  const handle = d.bytes.subarray(6, 22);
  assert.is(routerIdOf(handle), 1);
  b.c.write(...encodeSend(handle, 2, Buffer.from('back')));
  const back = await anon.c.next();
  assert.equal(back.bytes.subarray(6, 22), b.id);
  assert.equal(back.bytes.subarray(RELAY_HEADER_SIZE), Buffer.from('back'));
});

A.run();
