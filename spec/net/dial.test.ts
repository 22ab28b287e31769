/**
 * Transports over loopback (PROTOCOL.md §13): one router with a plain, a TLS, a TLS+HTTP
 * and a plain HTTP listener; agents dial every address form and exchange messages; TLS
 * trust (CA, pin, insecure), certificate reload, refusals, proxies and failover.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import net from 'node:net';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { connect, type Agent } from '../../src/agent/agent.js';
import { Router } from '../../src/router/router.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { spkiPin, openTransport, resolveTransport, resetInsecureWarnings } from '../../src/net/dial.js';
import { parseEndpoint } from '../../src/net/address.js';
import { UPGRADE_RESPONSE, refusalResponse, upgradeRequest } from '../../src/net/upgrade.js';
import { encodePreamble } from '../../src/protocol/encoder.js';
import type { Logger } from '../../src/net/log.js';
import { makePki } from '../helpers/certs.js';

const pki = makePki(['localhost']);
const LO = '127.0.0.1';

function recordingLogger(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at = (level: string) => (msg: string) => void lines.push({ level, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

async function startRouter(extra: ConstructorParameters<typeof Router>[0] = {}): Promise<{ router: Router; ports: number[] }> {
  const router = new Router({
    listeners: [
      { host: LO, port: 0 },
      { host: LO, port: 0, tls: { cert: pki.cert, key: pki.key } },
      { host: LO, port: 0, tls: { cert: pki.cert, key: pki.key }, http: true },
      { host: LO, port: 0, http: true },
    ],
    ...extra,
  });
  await router.listen();
  return { router, ports: router.addresses().map((a) => a.address.port) };
}

async function roundTrip(a: Agent, b: Agent, size = 100): Promise<void> {
  const data = Buffer.alloc(size, 0x5a);
  a.send(b.id, data);
  const got = await b.messages().next();
  assert.ok(!got.done);
  assert.is(got.value!.from, a.id);
  assert.ok(Buffer.from(got.value!.data).equals(data));
  b.send(a.id, 'back');
  const back = await a.messages().next();
  assert.is(back.value!.data.toString(), 'back');
}

/** `p`, or a failure after `ms`: a broken failover must fail the test, not hang it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as PosternError).code ?? String(err);
  }
  return 'resolved';
}

test('every address form reaches the router and carries messages both ways', async () => {
  const { router, ports } = await startRouter();
  const [tcp, tlsP, https, httpP] = ports as [number, number, number, number];
  assert.equal(
    router.addresses().map((a) => a.transport),
    ['tcp', 'tls', 'https', 'http'],
  );
  const home = await connect({ router: `${LO}:${tcp}` });
  const urls = [
    `tcp://${LO}:${tcp}`,
    `tls://localhost:${tlsP}`,
    `tls://localhost:${https}`,
    `wss://localhost:${https}/postern`,
    `https://localhost:${https}`,
    `ws://${LO}:${httpP}`,
    `http://${LO}:${httpP}/postern`,
    `tcp://${LO}:${httpP}`,
  ];
  for (const url of urls) {
    const a = await connect({ router: url, ca: pki.caCert, reconnect: false });
    await roundTrip(a, home, 300_000);
    await a.close();
  }
  await home.close();
  await router.close();
});

test('TLS trust: wrong CA and wrong pin fail with TLS_FAILED; a matching pin and insecure pass, insecure warns', async () => {
  const { router, ports } = await startRouter();
  const url = `tls://localhost:${ports[1]}`;
  assert.is(await code(connect({ router: url, reconnect: false })), ErrorCode.TLS_FAILED); // system CAs do not know ours
  const pin = spkiPin(readFileSync(pki.cert));
  const good = await connect({ router: url, ca: pki.caCert, pin, reconnect: false });
  await good.close();
  assert.is(await code(connect({ router: url, ca: pki.caCert, pin: `sha256/${Buffer.alloc(32).toString('base64')}`, reconnect: false })), ErrorCode.TLS_FAILED);
  assert.is(await code(connect({ router: `wss://localhost:${ports[2]}`, reconnect: false })), ErrorCode.TLS_FAILED);
  // An address the certificate does not carry.
  assert.is(await code(connect({ router: `tls://127.0.0.1:${ports[1]}`, ca: pki.caCert, reconnect: false, connectTimeout: 2000 })), ErrorCode.TLS_FAILED);
  resetInsecureWarnings();
  const warned: string[] = [];
  const orig = console.warn;
  console.warn = (line: string) => void warned.push(line);
  try {
    const a = await connect({ router: url, insecure: true, reconnect: false });
    await a.close();
  } finally {
    console.warn = orig;
  }
  assert.is(warned.length, 1);
  assert.match(warned[0]!, /insecure/);
  await router.close();
});


test('a router answers plain HTTP on an HTTP listener with 426, a wrong path with 404, and on a plain one with 400', async () => {
  const { router, ports } = await startRouter();
  const ask = (port: number, text: string): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const s = net.connect(port, LO, () => s.write(text));
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('close', () => resolve(Buffer.concat(chunks)));
      s.on('error', reject);
      setTimeout(() => s.destroy(), 3000).unref();
    });
  const r426 = await ask(ports[3]!, 'GET /postern HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.ok(r426.equals(refusalResponse(426)), r426.toString());
  const r404 = await ask(ports[3]!, 'GET /other HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.ok(r404.equals(refusalResponse(404)));
  const r400 = await ask(ports[3]!, 'POST /postern HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  assert.ok(r400.equals(refusalResponse(400)));
  const plain = await ask(ports[0]!, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(plain.toString(), /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(plain.toString(), /POSTERN_ERR_BAD_MAGIC/);
  await router.close();
});

test('the upgrade handshake: exact request, exact 101, then the router preamble', async () => {
  const { router, ports } = await startRouter();
  const s = net.connect(ports[3]!, LO);
  await once(s, 'connect');
  s.write(upgradeRequest('/postern', `${LO}:${ports[3]}`));
  s.write(encodePreamble(1));
  const want = Buffer.concat([UPGRADE_RESPONSE, encodePreamble(1)]);
  let got = Buffer.alloc(0);
  const deadline = Date.now() + 3000;
  while (got.length < want.length && Date.now() < deadline) {
    const [c] = (await Promise.race([once(s, 'data'), new Promise((r) => setTimeout(() => r([Buffer.alloc(0)]), 100))])) as [Buffer];
    got = Buffer.concat([got, c]);
  }
  assert.equal(got.subarray(0, want.length).toString('hex'), want.toString('hex'));
  s.destroy();
  await router.close();
});

test('a WebSocket without the postern subprotocol gets 426; a text message ends the stream', async () => {
  const { router, ports } = await startRouter();
  const noProto = new WebSocket(`ws://${LO}:${ports[3]}/postern`);
  const [, res] = (await once(noProto, 'unexpected-response')) as [unknown, http.IncomingMessage];
  assert.is(res.statusCode, 426);
  noProto.on('error', () => undefined);
  noProto.terminate();
  const ws = new WebSocket(`ws://${LO}:${ports[3]}/postern`, ['postern']);
  await once(ws, 'open');
  assert.is(ws.protocol, 'postern');
  ws.send('hello');
  const [closeCode] = (await once(ws, 'close')) as [number];
  assert.is(closeCode, 1003);
  await router.close();
});

test('SIGHUP-style reload: new connections get the new certificate, a bad file keeps the old one', async () => {
  const cert = join(pki.dir, 'live.pem');
  const key = join(pki.dir, 'live.key');
  copyFileSync(pki.cert, cert);
  copyFileSync(pki.key, key);
  const log = recordingLogger();
  const router = new Router({ listeners: [{ host: LO, port: 0, tls: { cert, key } }], logger: log });
  const { port } = await router.listen();
  const url = `tls://localhost:${port}`;
  const a = await connect({ router: url, ca: pki.caCert, reconnect: false });
  writeFileSync(cert, 'not a certificate');
  assert.is(router.reloadCertificates(), 0);
  assert.ok(log.lines.some((l) => l.level === 'error' && /reload failed/.test(l.msg)));
  const b = await connect({ router: url, ca: pki.caCert, reconnect: false });
  await b.close();
  copyFileSync(pki.otherCert, cert);
  copyFileSync(pki.otherKey, key);
  assert.is(router.reloadCertificates(), 1);
  assert.is(await code(connect({ router: url, ca: pki.caCert, reconnect: false })), ErrorCode.TLS_FAILED);
  const c = await connect({ router: url, ca: join(pki.dir, 'other-ca.pem'), reconnect: false });
  // The connection opened before the reload still works.
  await roundTrip(a, c);
  await Promise.all([a.close(), c.close()]);
  await router.close();
});

test('admission tokens on a plain non-loopback listener are warned about; on TLS they are not', async () => {
  const log = recordingLogger();
  const r1 = new Router({ host: '0.0.0.0', port: 0, admissionTokens: ['a-long-token'], logger: log });
  await r1.listen();
  assert.ok(log.lines.some((l) => l.level === 'warn' && /in the clear/.test(l.msg)));
  await r1.close();
  const log2 = recordingLogger();
  const r2 = new Router({ listeners: [{ host: '0.0.0.0', port: 0, tls: { cert: pki.cert, key: pki.key } }, { host: LO, port: 0 }], admissionTokens: ['a-long-token'], logger: log2 });
  await r2.listen();
  assert.not.ok(log2.lines.some((l) => l.level === 'warn'));
  await r2.close();
});

/** A CONNECT proxy: `auth` required when given; `status` forced when given; `silent` never answers. */
async function connectProxy(opts: { auth?: string; status?: number; silent?: boolean } = {}): Promise<{ port: number; close(): Promise<void>; tunnels: number }> {
  const state = { tunnels: 0 };
  const server = http.createServer();
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    if (opts.silent) return;
    if (opts.auth !== undefined && req.headers['proxy-authorization'] !== `Basic ${Buffer.from(opts.auth).toString('base64')}`) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="t"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (opts.status !== undefined) {
      client.end(`HTTP/1.1 ${opts.status} Nope\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const [host, port] = [req.url!.slice(0, req.url!.lastIndexOf(':')), Number(req.url!.slice(req.url!.lastIndexOf(':') + 1))];
    const up = net.connect(port, host, () => {
      state.tunnels++;
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (head.length > 0) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  server.listen(0, LO);
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    get tunnels() {
      return state.tunnels;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

test('HTTP CONNECT proxy: tunnels every transport, 407 is PROXY_AUTH_FAILED, 403 is PROXY_REFUSED, silence is a timeout', async () => {
  const { router, ports } = await startRouter();
  const home = await connect({ router: `${LO}:${ports[0]}` });
  const p = await connectProxy({ auth: 'u:p w' });
  const proxy = `http://u:p%20w@${LO}:${p.port}`;
  for (const url of [`${LO}:${ports[0]}`, `tls://localhost:${ports[1]}`, `wss://localhost:${ports[2]}`, `ws://${LO}:${ports[3]}`, `http://${LO}:${ports[3]}`]) {
    const a = await connect({ router: url, proxy, ca: pki.caCert, reconnect: false });
    await roundTrip(a, home);
    await a.close();
  }
  assert.is(p.tunnels, 5);
  const e = await connect({ router: `${LO}:${ports[0]}`, proxy: `http://u:wrong@${LO}:${p.port}`, reconnect: false }).catch((err: PosternError) => err);
  assert.instance(e, PosternError);
  assert.is((e as PosternError).code, ErrorCode.PROXY_AUTH_FAILED);
  assert.match((e as PosternError).message, /407/);
  assert.is(((e as PosternError).cause as { status: number }).status, 407);
  const f = await connectProxy({ status: 403 });
  assert.is(await code(connect({ router: `${LO}:${ports[0]}`, proxy: `http://${LO}:${f.port}`, reconnect: false })), ErrorCode.PROXY_REFUSED);
  const g = await connectProxy({ silent: true });
  const t0 = Date.now();
  assert.is(await code(connect({ router: `${LO}:${ports[0]}`, proxy: `http://${LO}:${g.port}`, reconnect: false, connectTimeout: 300 })), ErrorCode.CONNECT_TIMEOUT);
  assert.ok(Date.now() - t0 < 2000);
  // The environment, as curl reads it, when asked for; NO_PROXY exempts the host.
  const tr = resolveTransport({ proxy: 'env', env: { HTTPS_PROXY: `http://${LO}:${f.port}`, NO_PROXY: '' } });
  assert.is(await code(Promise.resolve(openTransport(parseEndpoint(`${LO}:${ports[0]}`), tr, 1000))), ErrorCode.PROXY_REFUSED);
  const direct = resolveTransport({ proxy: 'env', env: { HTTPS_PROXY: `http://${LO}:${f.port}`, NO_PROXY: '127.0.0.0/8' } });
  const s = await openTransport(parseEndpoint(`${LO}:${ports[0]}`), direct, 1000);
  s.destroy();
  await Promise.all([p.close(), f.close(), g.close(), home.close()]);
  await router.close();
});

/** A minimal SOCKS5 server (RFC 1928/1929): user/pass when `auth` is given. */
async function socksProxy(auth?: [string, string]): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
    c.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let stage = 0;
    c.on('data', function onData(chunk: Buffer) {
      buf = Buffer.concat([buf, chunk]);
      if (stage === 0 && buf.length >= 2 && buf.length >= 2 + buf[1]!) {
        buf = buf.subarray(2 + buf[1]!);
        c.write(Buffer.from([5, auth === undefined ? 0 : 2]));
        stage = auth === undefined ? 2 : 1;
      }
      if (stage === 1 && buf.length >= 2) {
        const ul = buf[1]!;
        if (buf.length < 3 + ul || buf.length < 3 + ul + buf[2 + ul]!) return;
        const user = buf.subarray(2, 2 + ul).toString();
        const pass = buf.subarray(3 + ul, 3 + ul + buf[2 + ul]!).toString();
        buf = buf.subarray(3 + ul + buf[2 + ul]!);
        const ok = user === auth![0] && pass === auth![1];
        c.write(Buffer.from([1, ok ? 0 : 1]));
        if (!ok) return void c.end();
        stage = 2;
      }
      if (stage === 2 && buf.length >= 10 && buf[3] === 1) {
        const host = [...buf.subarray(4, 8)].join('.');
        const port = buf.readUInt16BE(8);
        const rest = buf.subarray(10);
        c.off('data', onData);
        const up = net.connect(port, host, () => {
          c.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
          if (rest.length > 0) up.write(rest);
          up.pipe(c);
          c.pipe(up);
        });
        up.on('error', () => c.destroy());
        stage = 3;
      }
    });
  });
  server.listen(0, LO);
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

test('SOCKS5 proxy: messages flow; a wrong password is PROXY_AUTH_FAILED', async () => {
  const { router, ports } = await startRouter();
  const home = await connect({ router: `${LO}:${ports[0]}` });
  const s = await socksProxy(['user', 'secret']);
  const a = await connect({ router: `tls://localhost:${ports[1]}`, ca: pki.caCert, proxy: `socks5://user:secret@${LO}:${s.port}`, reconnect: false });
  await roundTrip(a, home);
  await a.close();
  assert.is(await code(connect({ router: `${LO}:${ports[0]}`, proxy: `socks5://user:nope@${LO}:${s.port}`, reconnect: false })), ErrorCode.PROXY_AUTH_FAILED);
  await Promise.all([s.close(), home.close()]);
  await router.close();
});

test('failover: a dead first router is skipped at connect; losing the live one moves the agent to the next', async () => {
  const r1 = new Router({ host: LO, port: 0 });
  const r2 = new Router({ host: LO, port: 0, listeners: [{ host: LO, port: 0, tls: { cert: pki.cert, key: pki.key } }] });
  const p1 = (await r1.listen()).port;
  const p2 = (await r2.listen()).port;
  const dead = net.createServer();
  dead.listen(0, LO);
  await once(dead, 'listening');
  const deadPort = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const agent = await connect({ router: [`${LO}:${deadPort}`, `${LO}:${p1}`, `tls://localhost:${p2}`], ca: pki.caCert, reconnectDelay: 20, reconnectMaxDelay: 50 });
  assert.is(agent.routerInfo.routerId, r1.routerId);
  const t0 = Date.now();
  const moved = new Promise<void>((resolve) => {
    void (async () => {
      for await (const st of agent.status()) if (st.type === 'registered' && st.router.routerId === r2.routerId) return resolve();
    })();
  });
  await r1.close();
  await within(moved, 5000, 'registered on the next router');
  assert.ok(Date.now() - t0 < 3000);
  const other = await connect({ router: `tls://localhost:${p2}`, ca: pki.caCert });
  await roundTrip(agent, other);
  await Promise.all([agent.close(), other.close()]);
  await r2.close();
});

test('alternates announced in REGISTERED: an agent configured with one router fails over to them', async () => {
  const r2 = new Router({ listeners: [{ host: LO, port: 0, tls: { cert: pki.cert, key: pki.key } }] });
  const p2 = (await r2.listen()).port;
  const r1 = new Router({ host: LO, port: 0, alternates: [`tls://localhost:${p2}`] });
  const p1 = (await r1.listen()).port;
  const agent = await connect({ router: `${LO}:${p1}`, ca: pki.caCert, reconnectDelay: 20, reconnectMaxDelay: 50 });
  const moved = new Promise<void>((resolve) => {
    void (async () => {
      for await (const st of agent.status()) if (st.type === 'registered' && st.router.routerId === r2.routerId) return resolve();
    })();
  });
  await r1.close();
  await within(moved, 5000, 'registered on the next router');
  await agent.close();
  await r2.close();
  assert.throws(() => new Router({ alternates: ['ftp://x'] }), (e: unknown) => (e as PosternError).code === ErrorCode.INVALID_OPTION);
  assert.throws(() => new Router({ alternates: Array.from({ length: 17 }, () => 'h:1') }), (e: unknown) => (e as PosternError).code === ErrorCode.INVALID_OPTION);
});

test('router links dial tls:// peers, verified against meshCa; a peer with a certificate of another CA never links', async () => {
  const secret = 'a mesh secret of some length';
  const a = new Router({ routerId: 0xa, meshSecret: secret, listeners: [{ host: LO, port: 0, tls: { cert: pki.cert, key: pki.key } }, { host: LO, port: 0 }] });
  await a.listen();
  const [tlsPort, plainPort] = a.addresses().map((x) => x.address.port) as [number, number];
  const b = new Router({ routerId: 0xb, host: LO, port: 0, meshSecret: secret, peers: [`tls://localhost:${tlsPort}`], meshCa: pki.caCert, linkRetryMin: 20, linkRetryMax: 100 });
  await b.listen();
  const bad = new Router({ routerId: 0xc, host: LO, port: 0, meshSecret: secret, peers: [`tls://localhost:${tlsPort}`], linkRetryMin: 20, linkRetryMax: 100 });
  await bad.listen();
  const deadline = Date.now() + 3000;
  while (b.links().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.is(b.links().length, 1);
  const x = await connect({ router: `${LO}:${plainPort}` });
  const y = await connect({ router: `${LO}:${b.address()!.port}` });
  await roundTrip(x, y);
  assert.is(bad.links().length, 0);
  assert.ok(bad.peersDown()[0]!.attempt >= 1);
  assert.throws(() => new Router({ peers: ['wss://h/p'], meshSecret: secret }), (e: unknown) => (e as PosternError).code === ErrorCode.INVALID_OPTION);
  assert.throws(() => new Router({ peers: ['tls://h'], meshSecret: secret, meshCa: '/nonexistent.pem' }), (e: unknown) => (e as PosternError).code === ErrorCode.CONFIG);
  await Promise.all([x.close(), y.close()]);
  await Promise.all([bad.close(), b.close()]);
  await a.close();
});

test.run();
