import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import type { RouterOptions } from '../../src/router/options.js';
import { readClose, readError, readRouteError } from '../../src/protocol/control.js';
import { encodeDeliver, encodePing, encodePreamble, encodeSend, encodeSource } from '../../src/protocol/encoder.js';
import { FrameType, WireCode } from '../../src/protocol/frame.js';
import { routerIdOf } from '../../src/protocol/id.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { acceptProof, dialProof, encodeLinkAuth, encodeLinkHello, linkNonce, readLinkHello } from '../../src/protocol/link.js';
import { eventually, RawClient } from '../helpers/raw.js';
import { createLogger } from '../../src/net/log.js';
import { ControlCodec } from '../../src/protocol/control.js';
import { hexBuf, vector } from '../protocol/helpers.js';

const codec = new ControlCodec();

const SECRET = 'correct horse battery staple';
const M = suite('mesh');

const routers: Router[] = [];
const clients: RawClient[] = [];

async function start(routerId: number, peers: string[], extra: RouterOptions = {}): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId, peers, meshSecret: SECRET, linkRetryMin: 20, linkRetryMax: 100, ...extra });
  await r.listen();
  routers.push(r);
  return r;
}

function addr(r: Router): string {
  return `127.0.0.1:${r.address()!.port}`;
}

async function agent(r: Router): Promise<{ c: RawClient; id: Buffer }> {
  const c = await RawClient.tcp(r.address()!.port);
  clients.push(c);
  const reg = await c.register();
  return { c, id: Buffer.from(reg.id) };
}

M.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

function errorOf(f: { type: number; bytes: Buffer }): { code: number; seq: number; id: Buffer } {
  assert.is(f.type, FrameType.ERROR);
  return readError(f.bytes, 0, f.bytes.length);
}

M('three routers: agents on each reach agents on the others, both ways, with sender IDs intact', async () => {
  const r1 = await start(1, []);
  const r2 = await start(2, [addr(r1)]);
  const r3 = await start(3, [addr(r1), addr(r2)]);
  await eventually(() => r1.links().length === 2 && r2.links().length === 2 && r3.links().length === 2, 3000, 'links up');
  const a = [await agent(r1), await agent(r2), await agent(r3)];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      if (i === j) continue;
      a[i]!.c.write(...encodeSend(a[j]!.id, i * 10 + j, Buffer.from(`from ${i} to ${j}`)));
    }
  }
  for (let j = 0; j < 3; j++) {
    await a[j]!.c.until(() => a[j]!.c.frames.length === 2, 3000, `deliveries at ${j}`);
    const got = a[j]!.c.frames.map((f) => f.bytes).sort(Buffer.compare);
    const want = [0, 1, 2]
      .filter((i) => i !== j)
      .map((i) => Buffer.concat(encodeDeliver(a[i]!.id, Buffer.from(`from ${i} to ${j}`))))
      .sort(Buffer.compare);
    assert.equal(got, want);
  }
  const l = r1.links();
  assert.ok(l.every((x) => x.bytesOut > 0 || x.bytesIn > 0));
});

M('runs across a link: SENDs from two agents and an anonymous one, interleaved and in runs, arrive in order under their own senders', async () => {
  const r1 = await start(1, []);
  const r2 = await start(2, [addr(r1)]);
  await eventually(() => r1.links().length === 1 && r2.links().length === 1, 3000, 'link');
  const b = await agent(r2);
  const c2 = await agent(r2);
  const x = await agent(r1);
  const y = await agent(r1);
  const anon = await RawClient.tcp(r1.address()!.port);
  clients.push(anon);
  anon.write(encodePreamble(1), ...anon.codec.encodeRegister({ anonymous: true }));
  assert.is((await anon.next()).type, FrameType.REGISTERED);
  // Each sender writes runs to b with single SENDs to c2 between them, all in one write, so
  // the link carries long runs, short ones and SOURCE frames between senders.
  const n = 300;
  const script = (tag: number): Buffer => {
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(...encodeSend(i % 50 === 49 ? c2.id : b.id, i + 1, Buffer.of(tag, i >> 8, i & 0xff)));
    return Buffer.concat(parts);
  };
  x.c.write(script(1));
  y.c.write(script(2));
  anon.write(script(3));
  const perSender = n - n / 50;
  await b.c.until(() => b.c.frames.length === 3 * perSender && c2.c.frames.length === 3 * (n / 50), 5000, 'deliveries');
  const next = new Map<number, number>();
  const handles = new Set<string>();
  for (const f of b.c.frames) {
    assert.is(f.type, FrameType.DELIVER);
    const tag = f.bytes[26]!;
    const i = (f.bytes[27]! << 8) | f.bytes[28]!;
    let want = next.get(tag) ?? 0;
    if (want % 50 === 49) want++;
    assert.is(i, want, `sender ${tag} in order`);
    next.set(tag, want + 1);
    const from = f.bytes.subarray(6, 22);
    if (tag === 1) assert.equal(from, x.id);
    else if (tag === 2) assert.equal(from, y.id);
    else {
      // anonymous: a reply handle of r1, flagged ANONYMOUS, never an agent's ID
      assert.is(f.flags & 0x01, 0x01);
      assert.is(routerIdOf(from), 1);
      assert.not.equal(from, x.id);
      assert.not.equal(from, y.id);
      handles.add(from.toString('hex'));
    }
    if (tag !== 3) assert.is(f.flags, 0);
  }
  assert.is(handles.size, perSender, 'a fresh handle per anonymous message');
});

M('errors travel back with the seq: unknown destination on the far router arrives before the flush PONG', async () => {
  const r1 = await start(1, []);
  const r2 = await start(2, [addr(r1)]);
  await eventually(() => r1.links().length === 1, 3000, 'link');
  const a = await agent(r1);
  const dest = Buffer.from('00000002ffffffffffffffffffffffff', 'hex');
  a.c.write(...encodeSend(dest, 31337, Buffer.from('anyone?')), encodePing(Buffer.from('flush')));
  const e = errorOf(await a.c.next());
  assert.is(e.code, WireCode.UNKNOWN_DESTINATION);
  assert.is(e.seq, 31337);
  assert.equal(Buffer.from(e.id), dest);
  const p = await a.c.next();
  assert.is(p.type, FrameType.PONG);
  assert.equal(p.bytes.subarray(6), Buffer.from('flush'));
  assert.ok(r2.stats.errors[WireCode.UNKNOWN_DESTINATION] === 1);
});

M('a router nobody links to: UNREACHABLE_ROUTER at once', async () => {
  const r1 = await start(1, []);
  const a = await agent(r1);
  a.c.write(...encodeSend(Buffer.from('00000009000000000000000000000001', 'hex'), 5, Buffer.from('x')));
  const e = errorOf(await a.c.next());
  assert.is(e.code, WireCode.UNREACHABLE_ROUTER);
  assert.is(e.seq, 5);
});

M('kill a router: senders elsewhere get UNREACHABLE_ROUTER; restart it: messages flow again, nothing restarted', async () => {
  const r1 = await start(1, []);
  const port1 = r1.address()!.port;
  const r2 = await start(2, [addr(r1)]);
  await eventually(() => r1.links().length === 1, 3000, 'link');
  const a = await agent(r2);
  const b = await agent(r1);
  a.c.write(...encodeSend(b.id, 1, Buffer.from('before')));
  assert.is((await b.c.next()).type, FrameType.DELIVER);
  // stop r1
  routers.splice(routers.indexOf(r1), 1);
  await r1.close();
  await eventually(() => r2.links().length === 0, 3000, 'link down');
  a.c.write(...encodeSend(b.id, 2, Buffer.from('during')));
  const e = errorOf(await a.c.next());
  assert.is(e.code, WireCode.UNREACHABLE_ROUTER);
  assert.is(e.seq, 2);
  // restart on the same port with the same ID
  const r1b = await start(1, [], { port: port1 });
  await eventually(() => r2.links().length === 1, 5000, 'link back');
  const b2 = await agent(r1b);
  a.c.write(...encodeSend(b2.id, 3, Buffer.from('after')));
  const d = await b2.c.next();
  assert.is(d.type, FrameType.DELIVER);
  assert.equal(d.bytes.subarray(6, 22), a.id);
});

M('wrong mesh secret: link refused with LINK_AUTH_FAILED, nothing relayed', async () => {
  const r1 = await start(1, []);
  const r2 = await start(2, [addr(r1)], { meshSecret: 'not the right secret at all' });
  await eventually(() => r2.peersDown()[0]?.lastError === 'LINK_AUTH_FAILED', 3000, 'refusal');
  assert.is(r1.links().length, 0);
  assert.is(r2.links().length, 0);
  const a = await agent(r2);
  const b = await agent(r1);
  a.c.write(...encodeSend(b.id, 8, Buffer.from('x')));
  assert.is(errorOf(await a.c.next()).code, WireCode.UNREACHABLE_ROUTER);
  assert.is(r1.stats.relayed, 0);
});

M('a peer with this router ID is refused with DUPLICATE_ROUTER_ID; a router without a secret refuses links', async () => {
  const r1 = await start(1, []);
  const r1b = await start(1, [addr(r1)]);
  await eventually(() => r1b.peersDown()[0]?.lastError === 'DUPLICATE_ROUTER_ID', 3000, 'refusal');
  const lonely = new Router({ host: '127.0.0.1', port: 0, routerId: 5 });
  await lonely.listen();
  routers.push(lonely);
  const r6 = await start(6, [addr(lonely)]);
  await eventually(() => r6.peersDown()[0]?.lastError === 'LINK_AUTH_FAILED', 3000, 'refusal');
});

M('two routers with one router ID peered with a third: the second link is refused with DUPLICATE_ROUTER_ID on both sides and logged as an error; a real reconnect still links', async () => {
  const lines: Array<{ level: string; msg: string; code?: string; router?: string }> = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (l) => void lines.push(JSON.parse(l)) });
  const r1 = await start(1, [], { logger });
  const r2a = await start(2, [addr(r1)], { logger });
  await eventually(() => r1.links().length === 1, 3000, 'first router 2 linked');
  const r2b = await start(2, [addr(r1)], { logger });
  // the acceptor (r1) refuses the second router 2; r2b hears DUPLICATE_ROUTER_ID
  await eventually(() => r2b.peersDown()[0]?.lastError === 'DUPLICATE_ROUTER_ID', 3000, 'refusal at the dialler');
  assert.is(r1.links().length, 1);
  assert.is(r2b.links().length, 0);
  assert.ok(lines.some((l) => l.level === 'error' && l.msg === 'link refused: duplicate router ID' && l.router === '00000002'), 'error logged by the refusing router');
  assert.ok(lines.some((l) => l.level === 'error' && l.code === 'DUPLICATE_ROUTER_ID' && l.msg === 'link closed by peer'), 'error logged by the refused router');
  // messages to r2a's agents still work from r1
  const a = await agent(r2a);
  const b = await agent(r1);
  b.c.write(...encodeSend(a.id, 1, Buffer.from('to the first router 2')));
  assert.is((await a.c.next()).type, FrameType.DELIVER);
  // a dialler that reaches two routers with one ID: it refuses the second itself
  const r3 = await start(3, [addr(r2a), addr(r2b)], { logger });
  await eventually(() => r3.links().length === 1 && r3.peersDown().some((p) => p.lastError === 'DUPLICATE_ROUTER_ID'), 3000, 'refusal at the acceptor');
  await r3.close();
  // router 2 goes away for good; another router 2 (a restart) then links
  await r2b.close();
  await r2a.close();
  await eventually(() => r1.links().length === 0, 3000, 'old link down');
  const again = await start(2, [addr(r1)], { logger });
  await eventually(() => r1.links().length === 1 && again.links().length === 1, 3000, 'the restarted router 2 linked');
});

M('logs: links are logged as link events with hex router IDs, close codes are wire-code names', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (l) => void lines.push(JSON.parse(l)) });
  const r1 = await start(0x1a, [], { logger });
  const r2 = await start(0x2b, [addr(r1)]);
  await eventually(() => r1.links().length === 1, 3000, 'link');
  const a = await agent(r1);
  a.c.destroy();
  await r2.close();
  await eventually(() => r1.links().length === 0 && r1.connections === 0, 3000, 'link and agent gone');
  assert.ok(lines.some((l) => l['msg'] === 'link up' && l['router'] === '0000002b'), 'link up with hex router ID');
  assert.ok(lines.some((l) => l['msg'] === 'link closed by peer' && l['router'] === '0000002b' && l['code'] === 'GOING_AWAY'), 'link close as a link event');
  assert.ok(lines.some((l) => l['msg'] === 'agent disconnected' && l['code'] === 'CONNECTION_LOST'));
  for (const l of lines) {
    assert.not.ok(String(l['msg']).startsWith('agent') && l['router'] !== undefined, `a link logged as an agent: ${JSON.stringify(l)}`);
    if (l['code'] !== undefined) assert.not.ok(String(l['code']).startsWith('POSTERN_ERR_'), `code not a wire-code name: ${JSON.stringify(l)}`);
    if (l['router'] !== undefined) assert.match(String(l['router']), /^[0-9a-f]{8}$/);
  }
});

M('the instance tag: LINK_HELLO with it matches its vector and decodes; a bad tag is MALFORMED', () => {
  const v = vector('link-hello-instance');
  const b = v.decoded!['body'] as Record<string, string | number>;
  const bytes = Buffer.concat(encodeLinkHello(codec, b['router'] as number, hexBuf(b['nonce'] as string), b['maxFrame'] as number, hexBuf(b['instance'] as string)));
  assert.is(bytes.toString('hex'), v.hex);
  assert.is(readLinkHello(codec, bytes, 0, bytes.length, false).instance!.toString('hex'), b['instance']);
  const bad = Buffer.concat(codec.encodeMap(FrameType.LINK_HELLO, { router: 7, nonce: Buffer.alloc(32), maxFrame: 1 << 20, instance: Buffer.alloc(15) }));
  try {
    readLinkHello(codec, bad, 0, bad.length, false);
    assert.unreachable('accepted');
  } catch (err) {
    assert.is((err as PosternError).code, ErrorCode.MALFORMED);
  }
});

M('a link peer that misroutes: SOURCE hops at the limit gets ROUTE_ERROR(HOP_LIMIT) back', async () => {
  const r2 = await start(2, []);
  const r3 = await start(3, [addr(r2)]);
  await eventually(() => r2.links().length === 1, 3000, 'link');
  const c = await agent(r3);
  // a hand-made router 9 links to r2
  const link = await RawClient.tcp(r2.address()!.port);
  clients.push(link);
  const nonce = linkNonce();
  link.write(encodePreamble(1), ...encodeLinkHello(link.codec, 9, nonce, 1 << 20));
  const ch = await link.next();
  assert.is(ch.type, FrameType.LINK_CHALLENGE);
  const hello = readLinkHello(link.codec, ch.bytes, 0, ch.bytes.length, true);
  assert.equal(hello.proof, acceptProof(Buffer.from(SECRET), nonce, hello.nonce, 9, 2));
  link.write(...encodeLinkAuth(link.codec, dialProof(Buffer.from(SECRET), hello.nonce, nonce, 2, 9)));
  assert.is((await link.next()).type, FrameType.LINK_READY);
  const src = Buffer.from('00000009aaaaaaaaaaaaaaaaaaaaaaaa', 'hex');
  link.write(encodeSource(src, 2), ...encodeSend(c.id, 77, Buffer.from('loop?')));
  const f = await link.next();
  assert.is(f.type, FrameType.ROUTE_ERROR);
  const re = readRouteError(f.bytes, 0, f.bytes.length);
  assert.is(re.code, WireCode.HOP_LIMIT);
  assert.is(re.seq, 77);
  assert.equal(Buffer.from(re.src), src);
  assert.equal(Buffer.from(re.id), c.id);
  // with one hop it goes through, and the receiver sees the SOURCE's ID as the sender
  link.write(encodeSource(src, 1), ...encodeSend(c.id, 78, Buffer.from('ok')));
  const d = await c.c.next();
  assert.equal(d.bytes, Buffer.concat(encodeDeliver(src, Buffer.from('ok'))));
  assert.is(routerIdOf(d.bytes, 6), 9);
  // an agent may not send link frames
  const x = await agent(r2);
  x.c.write(encodeSource(src, 1));
  const cl = await x.c.next();
  assert.is(cl.type, FrameType.CLOSE);
  assert.is(readClose(cl.bytes, 0, cl.bytes.length).code, WireCode.MALFORMED);
});

M('mesh options are validated', () => {
  for (const bad of [{ peers: ['nope'] }, { peers: ['127.0.0.1:1'] }, { meshSecret: 'short' }, { meshHopLimit: 0 }] as RouterOptions[]) {
    try {
      new Router(bad);
      assert.unreachable(JSON.stringify(bad));
    } catch (err) {
      assert.is((err as PosternError).code, ErrorCode.INVALID_OPTION);
    }
  }
});

M.run();
