/**
 * The conformance runner passes on postern's own router and agent, and fails with the
 * right requirement ID on routers with one rule deliberately broken: a proxy in front of
 * a real router rewrites what the router says (a DELIVER seq, a PONG payload, an ERROR
 * code), and a Router subclass-free monkey patch stops checking `anonymous`.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Router } from '../../src/router/router.js';
import { ControlCodec } from '../../src/protocol/control.js';
import { FrameType, WireCode } from '../../src/protocol/frame.js';
import { checkAgent, checkRouter, formatReport, type ConformanceReport } from '../../src/conformance/index.js';
import { createLogger } from '../../src/net/log.js';

const T = suite('conformance');
const quiet = createLogger({ level: 'error', format: 'json', write: () => {} });

async function router(extra: object = {}): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 7, keepaliveInterval: 300, handshakeTimeout: 400, logger: quiet, ...extra });
  await r.listen();
  return r;
}

function status(rep: ConformanceReport, id: string): string {
  const r = rep.results.find((x) => x.id === id);
  assert.ok(r, `no result for ${id}`);
  return r.status;
}

/**
 * A TCP proxy to `port` that passes client bytes unchanged and hands each whole frame the
 * router sends to `mutate` (after the 8-byte preamble). A deliberately broken router.
 */
async function brokenProxy(port: number, mutate: (frame: Buffer) => Buffer): Promise<net.Server> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const up = net.connect(port, '127.0.0.1');
    socks.add(c).add(up);
    let pending = Buffer.alloc(0);
    let pre = 8;
    c.on('data', (d) => up.write(d));
    up.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      const outs: Buffer[] = [];
      if (pre > 0) {
        const n = Math.min(pre, pending.length);
        outs.push(pending.subarray(0, n));
        pending = pending.subarray(n);
        pre -= n;
      }
      while (pre === 0 && pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const len = 4 + pending.readUInt32BE(0);
        outs.push(mutate(Buffer.from(pending.subarray(0, len))));
        pending = pending.subarray(len);
      }
      if (pre > 0 && pending.length > 0) {
        outs.push(pending); // not a preamble (HTTP answer): pass through
        pending = Buffer.alloc(0);
      }
      c.write(Buffer.concat(outs));
    });
    c.on('end', () => up.end());
    up.on('end', () => c.end());
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  server.on('close', () => {
    for (const s of socks) s.destroy();
  });
  return server;
}

T('postern\'s router passes every check a client can make, timers included', async () => {
  const r = await router();
  const rep = await checkRouter({ host: '127.0.0.1', port: r.address()!.port, handshakeTimeout: 400, timerBudget: 3000 });
  await r.close();
  assert.ok(rep.ok, formatReport(rep));
  assert.is(rep.summary.fail, 0);
  assert.ok(rep.summary.pass >= 35, `only ${rep.summary.pass} passed`);
  for (const id of ['P-2.5-1', 'P-8.2-1', 'P-8.2-2']) assert.is(status(rep, id), 'pass', id);
  // What a client cannot see is reported as such, never as a pass.
  assert.is(status(rep, 'P-5.3-1'), 'untestable');
});

T('a router that requires an admission token passes with --token, P-12.7-1 included', async () => {
  const r = await router({ admissionTokens: ['a-token-for-tests'] });
  const rep = await checkRouter({ host: '127.0.0.1', port: r.address()!.port, token: 'a-token-for-tests', timerBudget: 0 });
  await r.close();
  assert.ok(rep.ok, formatReport(rep));
  assert.is(status(rep, 'P-12.7-1'), 'pass');
  assert.is(status(rep, 'P-4.1-8'), 'pass');
});

T('timer checks that do not fit the budget are not testable, not passed', async () => {
  const r = await router({ keepaliveInterval: 30_000 });
  const rep = await checkRouter({ host: '127.0.0.1', port: r.address()!.port, only: ['P-8.2', 'P-2.5'] });
  await r.close();
  assert.equal(rep.results.map((x) => x.status), ['untestable', 'untestable', 'untestable']);
  assert.ok(rep.ok);
});

const broken: [string, string, (f: Buffer) => Buffer][] = [
  [
    'DELIVER seq not 0',
    'P-6.3-1',
    (f) => {
      if (f[4] === FrameType.DELIVER) f.writeUInt32BE(5, 22);
      return f;
    },
  ],
  [
    'PONG with an empty payload',
    'P-8.1-2',
    (f) => (f[4] === FrameType.PONG ? Buffer.from([0, 0, 0, 2, FrameType.PONG, 0]) : f),
  ],
  [
    'NOT_REGISTERED reported as UNKNOWN_DESTINATION',
    'P-4.3-2',
    (f) => {
      if (f[4] === FrameType.ERROR && f.readUInt16BE(6) === WireCode.NOT_REGISTERED) f.writeUInt16BE(WireCode.UNKNOWN_DESTINATION, 6);
      return f;
    },
  ],
  [
    'MALFORMED reported as UNKNOWN_FRAME',
    'P-3.3-2',
    (f) => {
      if (f[4] === FrameType.CLOSE && f.readUInt16BE(6) === WireCode.MALFORMED) f.writeUInt16BE(WireCode.UNKNOWN_FRAME, 6);
      return f;
    },
  ],
];

for (const [what, id, mutate] of broken) {
  T(`a router whose ${what} fails ${id}`, async () => {
    const r = await router();
    const proxy = await brokenProxy(r.address()!.port, mutate);
    const rep = await checkRouter({ host: '127.0.0.1', port: (proxy.address() as net.AddressInfo).port, timerBudget: 0 });
    proxy.close();
    await r.close();
    assert.not.ok(rep.ok);
    assert.is(status(rep, id), 'fail', formatReport(rep));
    const failed = rep.results.find((x) => x.id === id)!;
    assert.ok(failed.got.length > 0 && failed.sent.length > 0, 'a failure shows what was sent and got');
  });
}

T('a router that registers anonymous: 1 as a visible agent fails P-11.1-1', async () => {
  const r = await router();
  // Break the rule the way the old router did: a non-boolean anonymous is dropped.
  const codec = ControlCodec.prototype as unknown as { decodeRegister: (b: Buffer, s: number, e: number) => Record<string, unknown> };
  const real = codec.decodeRegister;
  codec.decodeRegister = function (this: ControlCodec, b: Buffer, s: number, e: number) {
    const m = this.decodeMap(b, s, e, 'REGISTER');
    return { anonymous: m['anonymous'] === true };
  };
  try {
    const rep = await checkRouter({ host: '127.0.0.1', port: r.address()!.port, only: ['P-11.1'] });
    assert.is(status(rep, 'P-11.1-1'), 'fail');
    assert.is(status(rep, 'P-11.1-5'), 'pass');
  } finally {
    codec.decodeRegister = real;
    await r.close();
  }
});

T('postern\'s agent (postern listen) passes the agent checks', async () => {
  const bin = fileURLToPath(new URL('../../bin/postern.js', import.meta.url));
  const rep = await checkAgent({ command: `"${process.execPath}" "${bin}" listen`, keepalive: 300, wait: 3000 });
  assert.ok(rep.ok, formatReport(rep));
  for (const id of ['P-2.1-2', 'P-4.1-9', 'P-8.1-2', 'P-8.2-1', 'P-8.2-2', 'P-4.2-5', 'P-3.2-3']) assert.is(status(rep, id), 'pass', id);
  assert.is(rep.summary.untestable, 0);
});

T('an agent that registers but never answers PING fails P-8.1-2', async () => {
  // preamble + REGISTER {} (fixmap 0x80), then deaf
  const deaf = `const s = require('net').connect(...process.env.POSTERN_ROUTER.split(':').reverse().map((x, i) => (i === 0 ? Number(x) : x)));
s.on('connect', () => s.write(Buffer.from('895053544e0d0a0100000003010080', 'hex'))); s.on('error', () => {}); s.resume();`;
  const rep = await checkAgent({ command: `"${process.execPath}" -e "${deaf.replace(/"/g, '\\"')}"`, wait: 1000, keepalive: 200 });
  assert.not.ok(rep.ok);
  assert.is(status(rep, 'P-2.1-2'), 'pass');
  assert.is(status(rep, 'P-4.1-9'), 'pass');
  assert.is(status(rep, 'P-8.1-2'), 'fail', formatReport(rep));
});

T('an agent that never connects fails P-2.1-2', async () => {
  const rep = await checkAgent({ command: `"${process.execPath}" -e "setTimeout(() => {}, 100)"`, wait: 1000 });
  assert.not.ok(rep.ok);
  assert.is(status(rep, 'P-2.1-2'), 'fail');
});

T.run();
