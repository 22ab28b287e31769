/**
 * Streams end to end between real agents through real routers on loopback: open/accept,
 * half-close, reset, refusal codes, flow control windows, a reader stopped for longer than
 * the router's slow-consumer timeout, reconnects, requests, interleaving with messages, and
 * 100 MiB both ways (by hash) through two peered routers.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect, type Agent, type Message } from '../../src/agent/agent.js';
import { Router } from '../../src/router/router.js';
import { ErrorCode, type PosternError } from '../../src/protocol/errors.js';
import { ResetCode } from '../../src/stream/frame.js';
import type { Stream } from '../../src/stream/stream.js';
import type { AgentOptions } from '../../src/agent/options.js';
import { generateKeyPair } from '../../src/crypto/keys.js';

const routers: Router[] = [];
const agents: Agent[] = [];

async function router(opts: ConstructorParameters<typeof Router>[0] = {}): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, ...opts });
  await r.listen();
  routers.push(r);
  return r;
}

function addr(r: Router): string {
  return `127.0.0.1:${r.address()!.port}`;
}

async function agent(r: Router, opts: AgentOptions = {}): Promise<Agent> {
  const a = await connect({ router: addr(r), ...opts });
  agents.push(a);
  return a;
}

async function waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function errorOf(s: Stream): Promise<PosternError> {
  return new Promise((resolve, reject) => {
    s.once('error', (e) => resolve(e as PosternError));
    s.once('close', () => setTimeout(() => reject(new Error('closed without error')), 10));
  });
}

/** A TCP connection whose writes wait 2 ms before they reach the socket, holding their chunks meanwhile. */
function laggingConnection(port: number): () => Socket {
  return () => {
    const socket = netConnect({ host: '127.0.0.1', port });
    type W = (chunk: Buffer, enc: BufferEncoding, cb: (err?: Error | null) => void) => void;
    type Wv = (chunks: { chunk: Buffer; encoding: BufferEncoding }[], cb: (err?: Error | null) => void) => void;
    const raw = socket as unknown as { _write: W; _writev: Wv };
    const write = raw._write.bind(socket);
    const writev = raw._writev.bind(socket);
    raw._write = (chunk, enc, cb) => setTimeout(() => write(chunk, enc, cb), 2);
    raw._writev = (chunks, cb) => setTimeout(() => writev(chunks, cb), 2);
    return socket;
  };
}

/** Reads a stream to its end; resolves with the bytes. */
function readAll(s: Stream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

test.before.each((ctx) => {
  if (process.env.STREAM_TEST_TRACE) console.error('>>', (ctx as { __test__?: string }).__test__);
});

test.after.each(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

test('open, write both ways, half-close each side: both read everything, then the stream is gone', async () => {
  const r = await router();
  const a = await agent(r);
  const b = await agent(r);
  const accepted: Stream[] = [];
  b.on('stream', (s) => {
    accepted.push(s);
    void readAll(s).then((got) => {
      s.end(Buffer.concat([Buffer.from('got '), got]));
    });
  });
  const s = a.openStream(b.id, { service: 'echo' });
  const accept = new Promise<void>((resolve) => s.once('accepted', () => resolve()));
  s.end('hello stream');
  const reply = await readAll(s);
  await accept;
  assert.is(reply.toString(), 'got hello stream');
  assert.is(accepted.length, 1);
  assert.is(accepted[0]!.service, 'echo');
  assert.is(accepted[0]!.peer, a.id);
  assert.is(accepted[0]!.opener, false);
  assert.ok(s.opener && s.accepted);
  await waitFor(() => a.streamCount === 0 && b.streamCount === 0, 2000, 'streams forgotten');
  assert.is(s.resetCode, undefined);
});

test('refusals are coded: no acceptor, unknown service, dead peer, bad ID', async () => {
  const r = await router();
  const a = await agent(r);
  const b = await agent(r);
  const refused = await errorOf(a.openStream(b.id));
  assert.is(refused.code, ErrorCode.STREAM_REFUSED);
  b.on('stream', (s) => s.reset(ResetCode.UNKNOWN_SERVICE, 'no such service'));
  const unknown = a.openStream(b.id, { service: 'nope' });
  const e2 = await errorOf(unknown);
  assert.is(e2.code, ErrorCode.UNKNOWN_SERVICE);
  assert.is(unknown.resetCode, ResetCode.UNKNOWN_SERVICE);
  const deadId = `${b.id.slice(0, 8)}${'0'.repeat(23)}1`;
  const dead = await errorOf(a.openStream(deadId));
  assert.is(dead.code, ErrorCode.UNKNOWN_DESTINATION);
  assert.throws(() => a.openStream('nope'), (e: PosternError) => e.code === ErrorCode.INVALID_ID);
  assert.throws(() => a.openStream(b.id, { service: 'x'.repeat(256) }), (e: PosternError) => e.code === ErrorCode.INVALID_ARGUMENT);
});

test('destroy() resets: the peer sees POSTERN_ERR_STREAM_RESET with code CANCEL, and frames after it draw nothing', async () => {
  const r = await router();
  const a = await agent(r);
  const b = await agent(r);
  const got = new Promise<Stream>((resolve) => b.on('stream', resolve));
  const s = a.openStream(b.id);
  s.write('x');
  const t = await got;
  const e = errorOf(t);
  s.destroy();
  const err = await e;
  assert.is(err.code, ErrorCode.STREAM_RESET);
  assert.is(t.resetCode, ResetCode.CANCEL);
  await waitFor(() => a.streamCount === 0 && b.streamCount === 0);
});

test('flow control: a reader that stops holds at most its window; the writer waits, then everything arrives intact', async () => {
  const r = await router();
  const a = await agent(r);
  const b = await agent(r);
  const got = new Promise<Stream>((resolve) => b.on('stream', resolve));
  const s = a.openStream(b.id);
  const total = 8 * 1024 * 1024;
  const data = Buffer.alloc(total);
  for (let i = 0; i < total; i += 4) data.writeUInt32BE(i, i);
  s.end(data);
  const t = await got;
  t.pause();
  await new Promise((r2) => setTimeout(r2, 300));
  // Nothing was read, so the window did not grow and no credit was granted beyond it.
  assert.ok(t.readableLength <= t.window, `${t.readableLength} buffered > window ${t.window}`);
  assert.ok(t.readableLength > 0);
  assert.ok(s.writableLength > 0, 'the writer is held back');
  const all = await readAll(t.resume() as Stream);
  assert.is(all.length, total);
  assert.ok(all.equals(data));
  t.end();
  await waitFor(() => a.streamCount === 0 && b.streamCount === 0);
});

test('a reader stopped longer than the router\'s slow-consumer timeout: its connection is not cut, other streams and messages flow', async () => {
  const r = await router({ slowConsumerTimeout: 100, maxOutbound: 64 * 1024 });
  const a = await agent(r);
  const b = await agent(r);
  const statuses: string[] = [];
  b.on('status', (st) => statuses.push(st.type));
  const streams: Stream[] = [];
  b.on('stream', (s) => streams.push(s));
  const stuck = a.openStream(b.id);
  stuck.write(Buffer.alloc(2 * 1024 * 1024, 1));
  await waitFor(() => streams.length === 1);
  streams[0]!.pause();
  await new Promise((r2) => setTimeout(r2, 500)); // 5 x the slow-consumer timeout
  const live = a.openStream(b.id);
  const payload = Buffer.alloc(1024 * 1024, 2);
  live.end(payload);
  await waitFor(() => streams.length === 2);
  const body = await readAll(streams[1]!);
  assert.ok(body.equals(payload));
  a.send(b.id, 'plain message');
  const m = (await b.messages().next()).value as Message;
  assert.is(m.data.toString(), 'plain message');
  assert.equal(statuses, [], 'no disconnect');
  assert.ok(b.connected && a.connected);
  // and the stuck stream still delivers everything once read
  stuck.end();
  const rest = await readAll(streams[0]!.resume() as Stream);
  assert.is(rest.length, 2 * 1024 * 1024);
  for (const s of streams) s.end();
  await waitFor(() => a.streamCount === 0 && b.streamCount === 0);
});

test('a full plain inbox left unread does not stall streams: data flows for 5 x the slow-consumer timeout, the connection is not cut', async () => {
  const r = await router({ slowConsumerTimeout: 100, maxOutbound: 64 * 1024 });
  const a = await agent(r);
  const b = await agent(r, { maxQueue: 4 });
  const statuses: string[] = [];
  b.on('status', (st) => statuses.push(st.type));
  for (let i = 0; i < 4; i++) a.send(b.id, `plain ${i}`);
  await waitFor(() => b.queued === 4, 3000, 'the inbox to fill');
  const got = new Promise<Stream>((resolve) => b.on('stream', resolve));
  const s = a.openStream(b.id);
  const t = await got;
  const body = readAll(t);
  // 64 KiB every 20 ms for 500 ms: far more than maxOutbound, spread over 5 timeouts.
  const parts: Buffer[] = [];
  const started = Date.now();
  for (let i = 0; Date.now() - started < 500; i++) {
    const p = Buffer.alloc(64 * 1024, i);
    parts.push(p);
    s.write(p);
    await new Promise((r2) => setTimeout(r2, 20));
  }
  s.end();
  assert.ok((await body).equals(Buffer.concat(parts)));
  assert.equal(statuses, [], 'no disconnect');
  assert.ok(b.connected);
  assert.is(b.queued, 4, 'the plain messages still wait, unread');
  assert.not.ok(b.receivePaused);
  const it = b.messages();
  for (let i = 0; i < 4; i++) assert.is((await it.next()).value!.data.toString(), `plain ${i}`);
  t.end();
  await readAll(s);
  await waitFor(() => a.streamCount === 0 && b.streamCount === 0);
});

test('DATA is sent without copying the writer\'s chunk, and its write callback waits for the socket: a writer that reuses one buffer sends intact data', async () => {
  const r = await router();
  // The sender's socket holds each chunk for 2 ms before writing it, as a full socket would.
  const a = await connect({ createConnection: laggingConnection(r.address()!.port) });
  agents.push(a);
  const b = await agent(r);
  const got = new Promise<Stream>((resolve) => b.on('stream', resolve));
  const s = a.openStream(b.id);
  const t = await got;
  const body = readAll(t);
  const buf = Buffer.alloc(200 * 1024); // several DATA frames per write
  const rounds = 64;
  for (let i = 0; i < rounds; i++) {
    buf.fill(i);
    // Once the callback ran, the buffer is the writer's again: the next round overwrites it.
    await new Promise<void>((resolve, reject) => s.write(buf, (err) => (err ? reject(err) : resolve())));
  }
  s.end();
  const all = await body;
  assert.is(all.length, rounds * buf.length);
  for (let i = 0; i < rounds; i++) {
    const part = all.subarray(i * buf.length, (i + 1) * buf.length);
    assert.ok(part.every((x) => x === i), `round ${i} intact`);
  }
  t.end();
  await readAll(s);
});

test('plain messages interleave with stream data; each goes its own way, in order', async () => {
  const r = await router();
  const a = await agent(r);
  const b = await agent(r);
  const got = new Promise<Stream>((resolve) => b.on('stream', resolve));
  const s = a.openStream(b.id);
  const msgs: string[] = [];
  b.on('message', (m) => msgs.push(m.data.toString()));
  const parts: Buffer[] = [];
  for (let i = 0; i < 50; i++) {
    const p = Buffer.alloc(10_000, i);
    parts.push(p);
    s.write(p);
    a.send(b.id, `m${i}`);
  }
  s.end();
  const t = await got;
  const all = await readAll(t);
  t.end();
  await readAll(s);
  assert.ok(all.equals(Buffer.concat(parts)));
  await waitFor(() => msgs.length === 50);
  assert.equal(msgs, parts.map((_, i) => `m${i}`));
});

test('request/reply: the peer answers with m.reply(); a silent peer times out; a dead one fails with the router code', async () => {
  const r = await router();
  const a = await agent(r);
  const b = await agent(r);
  b.on('message', (m) => {
    if (m.data.toString() === 'ignore me') return;
    m.reply(`echo ${m.data.toString()}`);
  });
  const rep = await a.request(b.id, 'time?');
  assert.is(rep.data.toString(), 'echo time?');
  assert.is(rep.from, b.id);
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => a.request(b.id, `q${i}`)));
  assert.equal(many.map((m) => m.data.toString()), Array.from({ length: 20 }, (_, i) => `echo q${i}`));
  const timeout = await a.request(b.id, 'ignore me', { timeout: 50 }).catch((e: PosternError) => e);
  assert.is((timeout as PosternError).code, ErrorCode.TIMEOUT);
  const dead = await a.request(`${b.id.slice(0, 8)}${'0'.repeat(23)}1`, 'x').catch((e: PosternError) => e);
  assert.is((dead as PosternError).code, ErrorCode.UNKNOWN_DESTINATION);
});

test('a lost router connection resets every stream with a code; the peer learns it too, never a truncated end', async () => {
  const r = await router({ resumeGrace: 5000 });
  let socket: Socket | undefined;
  const a = await agent(r, {
    reconnectDelay: 10,
    reconnectMaxDelay: 20,
    createConnection: () => {
      socket = netConnect(r.address()!.port, '127.0.0.1');
      return socket;
    },
  });
  const b = await agent(r);
  const got = new Promise<Stream>((resolve) => b.on('stream', resolve));
  const s = a.openStream(b.id);
  s.write('before');
  const t = await got;
  const ea = errorOf(s);
  const eb = errorOf(t);
  t.on('data', () => undefined);
  socket!.destroy(); // a's TCP connection dies under it
  const errA = await ea;
  assert.is(errA.code, ErrorCode.CONNECTION_LOST);
  const errB = await eb;
  // b learns it from a's RESET(RECONNECTED) once a is back, or from the router when b's own
  // frame (its window update) meets a's ID unregistered: a code either way.
  // (or NOT_DELIVERED when that frame was held for a's parked ID and then dropped).
  if (errB.code === ErrorCode.STREAM_RESET) assert.is(t.resetCode, ResetCode.RECONNECTED);
  else assert.ok(errB.code === ErrorCode.UNKNOWN_DESTINATION || errB.code === ErrorCode.NOT_DELIVERED, errB.code);
  await waitFor(() => a.connected);
  // A new stream works after the reconnect.
  const got2 = new Promise<Stream>((resolve) => b.on('stream', resolve));
  const s2 = a.openStream(b.id);
  s2.end('after');
  const t2 = await got2;
  assert.is((await readAll(t2)).toString(), 'after');
  t2.end();
  await readAll(s2);
});

test('a sealed OPEN proves the opener\'s key to the acceptor (what expose --allow-key checks)', async () => {
  const r = await router();
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const a = await agent(r, { keyPair: ka });
  const b = await agent(r, { keyPair: kb });
  const c = await agent(r);
  const seen: Stream[] = [];
  b.on('stream', (s) => {
    seen.push(s);
    const ok = s.sender !== undefined && s.sender.id === s.peer && Buffer.from(ka.publicKey).equals(s.sender.publicKey);
    if (!ok) s.reset(ResetCode.REFUSED, 'key not allowed');
    else s.end('welcome');
  });
  const sa = a.openStream(b.id); // a has a key pair: sealed by default, key from the directory
  assert.is((await readAll(sa)).toString(), 'welcome');
  sa.end();
  const refused = await errorOf(c.openStream(b.id));
  assert.is(refused.code, ErrorCode.STREAM_REFUSED);
  assert.is(seen.length, 2);
  assert.is(seen[0]!.verification, 'directory');
  assert.is(seen[1]!.sender, undefined);
});

test('connect({ waitForRouter }) waits for a router that starts later', async () => {
  const probe = await router();
  const port = probe.address()!.port;
  await probe.close();
  routers.splice(0);
  const pending = connect({ router: `127.0.0.1:${port}`, waitForRouter: true, reconnectDelay: 20, reconnectMaxDelay: 50 });
  await new Promise((r2) => setTimeout(r2, 150));
  const r = new Router({ host: '127.0.0.1', port });
  await r.listen();
  routers.push(r);
  const a = await pending;
  agents.push(a);
  assert.ok(a.connected);
  const fail = await connect({ router: `127.0.0.1:${port + 1 === 65536 ? 1 : port + 1}`, waitForRouter: true, reconnectDelay: 1, reconnectMaxDelay: 2, maxReconnectAttempts: 2 }).catch((e: PosternError) => e);
  assert.is((fail as PosternError).code, ErrorCode.CONNECTION_LOST);
});

test('the receive queue is bounded in bytes too: reading pauses once queued payloads reach maxQueueBytes', async () => {
  const r = await router();
  const a = await agent(r);
  const b = await agent(r, { maxQueueBytes: 256 * 1024 });
  for (let i = 0; i < 8; i++) a.send(b.id, Buffer.alloc(100 * 1024));
  await waitFor(() => b.receivePaused, 3000, 'paused on bytes');
  assert.ok(b.queued < 8);
  const it = b.messages();
  for (let i = 0; i < 8; i++) assert.is((await it.next()).value!.data.length, 100 * 1024);
  assert.not.ok(b.receivePaused);
});

test('100 MiB each way at once, through two peered routers, arrive intact (SHA-256)', async () => {
  const r1 = await router({ routerId: 1, meshSecret: 'stream test mesh secret', linkRetryMin: 20, linkRetryMax: 100 });
  const r2 = await router({ routerId: 2, peers: [addr(r1)], meshSecret: 'stream test mesh secret', linkRetryMin: 20, linkRetryMax: 100 });
  await waitFor(() => r1.links().length === 1 && r2.links().length === 1, 3000, 'link up');
  const a = await agent(r1);
  const b = await agent(r2);
  const size = 100 * 1024 * 1024;
  const chunk = 1024 * 1024;
  const pump = (s: Stream, seed: number): string => {
    const h = createHash('sha256');
    let i = 0;
    const next = (): void => {
      while (i < size / chunk) {
        const c = Buffer.alloc(chunk, (seed + i) & 0xff);
        c.writeUInt32BE(i, 0);
        h.update(c);
        i++;
        if (!s.write(c)) {
          s.once('drain', next);
          return;
        }
      }
      s.end();
    };
    next();
    return h.copy().digest('hex') === '' ? '' : 'pending';
  };
  const expect = (seed: number): string => {
    const h = createHash('sha256');
    for (let i = 0; i < size / chunk; i++) {
      const c = Buffer.alloc(chunk, (seed + i) & 0xff);
      c.writeUInt32BE(i, 0);
      h.update(c);
    }
    return h.digest('hex');
  };
  let maxWindow = 0;
  const digest = (s: Stream): Promise<[string, number]> =>
    new Promise((resolve, reject) => {
      const h = createHash('sha256');
      let n = 0;
      s.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
        maxWindow = Math.max(maxWindow, s.window);
      });
      s.once('end', () => resolve([h.digest('hex'), n]));
      s.once('error', reject);
    });
  const accepted = new Promise<Stream>((resolve) => b.on('stream', resolve));
  const s = a.openStream(b.id);
  pump(s, 1);
  const t = await accepted;
  pump(t, 2);
  const [atB, atA] = await Promise.all([digest(t), digest(s)]);
  await waitFor(() => a.streamCount === 0 && b.streamCount === 0);
  assert.equal(atB, [expect(1), size]);
  assert.equal(atA, [expect(2), size]);
  assert.ok(maxWindow > 256 * 1024, 'the window grew');
});

test.run();
