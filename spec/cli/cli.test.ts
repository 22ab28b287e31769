/**
 * Smoke tests of the `postern` command, run as child processes of the compiled
 * dist/bin/postern.js against a router child on 127.0.0.1 and a free port. Every child is
 * tracked and killed in teardown; every wait is bounded.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RawClient } from '../helpers/raw.js';
import { killAll, Proc, run, startListener, startRouter, within, WAIT, type RouterProc } from './proc.js';

/** A TCP port nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Writes `bytes` to the router and collects what it answers until it closes the connection. */
function rawExchange(port: number, bytes: Uint8Array, ms = WAIT): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = net.connect(port, '127.0.0.1', () => s.end(bytes));
      s.on('data', (c: Buffer) => chunks.push(c));
      // The router may reset instead of reading everything we wrote: that is a close too.
      s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
      s.on('close', () => resolve(Buffer.concat(chunks)));
    }),
    ms,
    'router closing a raw connection',
  );
}

/** Sends `text` from a fresh `postern send` and waits for `listener` to print it. */
async function roundTrip(router: RouterProc, listener: { proc: Proc; id: string }, text: string): Promise<void> {
  const from = listener.proc.stdout.length;
  const r = await run(['send', '--router', router.address, listener.id, text]);
  assert.is(r.code, 0, r.stderr);
  const line = await listener.proc.line((l) => l.includes('"message"'), from);
  const m = JSON.parse(line) as { type: string; from: string; data: string };
  assert.equal({ type: m.type, data: m.data }, { type: 'message', data: text });
}

/** A TCP proxy to `port` whose connections can be cut (both sides destroyed, no FIN for the router's part). */
async function startProxy(port: number): Promise<{ address: string; cut(): void; close(): Promise<void> }> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut: () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
      }),
  };
}

// ---------------------------------------------------------------------------------------

const help = suite('cli: help and arguments');
help.after.each(killAll);

help('--help of every command exits 0 and shows examples', async () => {
  const all = [['--help'], ['router', '--help'], ['listen', '--help'], ['send', '--help'], ['id', '--help'], ['help', 'send']];
  const results = await Promise.all(all.map((args) => run(args)));
  for (const [i, args] of all.entries()) {
    const r = results[i]!;
    assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: postern/, args.join(' '));
    assert.match(r.stdout, /Examples?:|Quick start:/, args.join(' '));
  }
  assert.match(results[2]!.stdout, /"encoding":"base64"/);
  assert.match(results[0]!.stdout, /Exit status:/);
});

help('--version prints the package version', async () => {
  const r = await run(['--version']);
  assert.is(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+/);
});

help('bad arguments exit 2 with a coded error on stderr', async () => {
  const cases: Array<[string[], string]> = [
    [['frobnicate'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['router', '--bogus'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['router', '--port', '70000'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['router', '--port', '12ab'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['router', '--router-id', '0'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['router', '--log-format', 'xml'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['router', '--port', '0', '--max-frame', '10'], 'POSTERN_ERR_INVALID_OPTION'],
    [['listen', '--router', 'no such host:1:2'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['listen', '--router', '127.0.0.1:0'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['send'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['send', 'not-an-id', 'hi'], 'POSTERN_ERR_INVALID_ID'],
    [['send', '00000000000000000000000000000001', 'hi'], 'POSTERN_ERR_INVALID_ID'],
    [['send', '00000001000000000000000000000001', 'hi', 'extra'], 'POSTERN_ERR_INVALID_ARGUMENT'],
    [['id', 'xyz'], 'POSTERN_ERR_INVALID_ID'],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  cases.forEach(([args, code], i) => {
    const r = results[i]!;
    assert.is(r.code, 2, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
    assert.ok(r.stderr.split('\n').some((l) => l.startsWith(`error: ${code}: `)), `${args.join(' ')}: ${r.stderr}`);
  });
});

help('POSTERN_ROUTER is used, and validated, when --router is absent', async () => {
  const r = await run(['listen'], { env: { POSTERN_ROUTER: 'bad host' } });
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: POSTERN_ERR_INVALID_ARGUMENT: /m);
});

help('id shows the canonical form and the router ID', async () => {
  const r = await run(['id', '00000BEE6C1F9E0A4D2B7C5E81F3A9D2']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'id 00000bee6c1f9e0a4d2b7c5e81f3a9d2\nrouter 3054 (0x00000bee)');
  const j = await run(['id', '00000bee6c1f9e0a4d2b7c5e81f3a9d2', '--json']);
  assert.is(j.code, 0, j.stderr);
  assert.equal(JSON.parse(j.stdout), { id: '00000bee6c1f9e0a4d2b7c5e81f3a9d2', routerId: 3054, routerIdHex: '00000bee' });
});

help('send and listen exit 4 with a coded error when no router listens', async () => {
  const port = await closedPort();
  for (const cmd of [['send', '--router', `127.0.0.1:${port}`, '--timeout', '3000', '00000bee6c1f9e0a4d2b7c5e81f3a9d2', 'hi'], ['listen', '--router', `127.0.0.1:${port}`, '--timeout', '3000']]) {
    const r = await run(cmd);
    assert.is(r.code, 4, `${cmd[0]}: exit ${r.code}, stderr ${r.stderr}`);
    assert.match(r.stderr, /^error: [A-Z_]+: /m);
  }
});

help.run();

// ---------------------------------------------------------------------------------------

const e2e = suite('cli: router, listen, send');
e2e.after.each(killAll);

e2e('listen --json prints registered, then each message sent with send', async () => {
  const router = await startRouter(['--router-id', '0xbee']);
  assert.is(router.routerId, 0xbee);
  const listener = await startListener(router);
  assert.ok(listener.id.startsWith('00000bee'), listener.id);
  const registered = await router.proc.line((l) => l.includes('"agent registered"'));
  assert.is((JSON.parse(registered) as { agent: string }).agent, listener.id);
  await roundTrip(router, listener, 'hello');
  await roundTrip(router, listener, 'ünïcødé ✓');

  // From stdin, binary: not UTF-8, so it comes out as base64.
  const bytes = Uint8Array.of(0xff, 0x00, 0xfe, 0x0a);
  const from = listener.proc.stdout.length;
  const r = await run(['send', '--router', router.address, listener.id], { stdin: bytes });
  assert.is(r.code, 0, r.stderr);
  const m = JSON.parse(await listener.proc.line((l) => l.includes('"message"'), from)) as Record<string, string>;
  assert.equal(m, { type: 'message', from: m.from, data: Buffer.from(bytes).toString('base64'), encoding: 'base64' });
  assert.match(m.from!, /^00000bee[0-9a-f]{24}$/);
});

e2e('plain listen prints "id <id>" then "<from> <text>"', async () => {
  const router = await startRouter();
  const proc = new Proc(['listen', '--router', router.address]);
  const first = await proc.line(() => true);
  const m = /^id ([0-9a-f]{32})$/.exec(first);
  assert.ok(m, first);
  const r = await run(['send', '--router', router.address, m![1]!], { stdin: Buffer.from('hello\n') });
  assert.is(r.code, 0, r.stderr);
  const line = await proc.line((l) => l !== first);
  assert.match(line, /^[0-9a-f]{32} hello$/);
});

e2e('send to an unknown ID exits 3 with POSTERN_ERR_UNKNOWN_DESTINATION', async () => {
  const router = await startRouter();
  const unknown = router.routerId.toString(16).padStart(8, '0') + '0123456789abcdef01234567';
  const r = await run(['send', '--router', router.address, unknown, 'hello?']);
  assert.is(r.code, 3, r.stderr);
  assert.match(r.stderr, /^error: POSTERN_ERR_UNKNOWN_DESTINATION: /m);
});

e2e('an HTTP request gets 400 naming POSTERN_ERR_BAD_MAGIC, and the router keeps serving', async () => {
  const router = await startRouter();
  const listener = await startListener(router);
  const answer = (await rawExchange(router.port, Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'))).toString('latin1');
  assert.match(answer, /^HTTP\/1\.1 400 /);
  assert.ok(answer.includes('POSTERN_ERR_BAD_MAGIC'), answer);
  await roundTrip(router, listener, 'still here');
});

e2e('1 MB of random bytes is closed with a code, and the router keeps serving', async () => {
  const router = await startRouter();
  const listener = await startListener(router);
  const junk = randomBytes(1024 * 1024);
  junk[0] = 0x00; // not HTTP, not the magic: the binary rejection path
  const answer = await rawExchange(router.port, junk);
  // The router's preamble, then CLOSE: u32 length, type 0x04, flags, u16 code 64 (BAD_MAGIC).
  assert.ok(answer.length >= 8 + 8, `answer of ${answer.length} bytes`);
  assert.equal([...answer.subarray(0, 7)], [0x89, 0x50, 0x53, 0x54, 0x4e, 0x0d, 0x0a]);
  assert.is(answer[8 + 4], 0x04);
  assert.is(answer.readUInt16BE(8 + 6), 64);

  // With a valid preamble first, the random bytes fail framing instead.
  const framed = Buffer.concat([Buffer.from([0x89, 0x50, 0x53, 0x54, 0x4e, 0x0d, 0x0a, 0x01]), Buffer.from([0x7f, 0xff, 0xff, 0xff]), randomBytes(1024 * 1024)]);
  const answer2 = await rawExchange(router.port, framed);
  assert.ok(answer2.length >= 8 + 8, `answer of ${answer2.length} bytes`);
  assert.is(answer2[8 + 4], 0x04);
  assert.is(answer2.readUInt16BE(8 + 6), 67, 'FRAME_TOO_LARGE');
  await router.proc.line((l) => l.includes('FRAME_TOO_LARGE'));

  await roundTrip(router, listener, 'unaffected');
});

e2e('the router drains on SIGTERM and SIGINT: its listener is told (DRAINING) and leaves, the router exits 0', async () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const router = await startRouter();
    const listener = await startListener(router, ['--timeout', '2000']);
    router.proc.child.kill(signal);
    assert.is(await router.proc.exit(), 0, router.proc.stderr.join('\n'));
    assert.ok(router.proc.stdout.some((l) => l.includes('"draining"')), router.proc.stdout.join('\n'));
    assert.ok(router.proc.stdout.some((l) => l.includes('"closed"')), router.proc.stdout.join('\n'));
    const gone = await listener.proc.line((l) => l.includes('"disconnected"'));
    assert.is((JSON.parse(gone) as { code: string }).code, 'POSTERN_ERR_DRAINING');
    listener.proc.child.kill('SIGINT');
    assert.is(await listener.proc.exit(), 0);
  }
});

e2e('router --quiet still prints the listening line, and nothing per agent', async () => {
  const router = await startRouter(['--quiet']);
  const listener = await startListener(router);
  await roundTrip(router, listener, 'quiet');
  assert.is(router.proc.stdout.length, 1, router.proc.stdout.join('\n'));
});

e2e('router plain log: a parsable listening line', async () => {
  const proc = new Proc(['router', '--host', '127.0.0.1', '--port', '0']);
  const line = await proc.line((l) => / listening /.test(l));
  assert.match(line, /\bport=[1-9][0-9]*\b/);
  assert.match(line, /\brouter=[0-9a-f]{8}\b/);
});

e2e('send of a payload over the announced limit exits 3 with POSTERN_ERR_FRAME_TOO_LARGE', async () => {
  const router = await startRouter(['--max-frame', '2048']);
  const listener = await startListener(router);
  const r = await run(['send', '--router', router.address, listener.id], { stdin: randomBytes(2048 - 26 + 1) });
  assert.is(r.code, 3, r.stderr);
  // The error names the size and the router's limit, as does --help.
  assert.match(r.stderr, /^error: POSTERN_ERR_FRAME_TOO_LARGE: the message is 2023 bytes; this router takes at most 2022 bytes per message/m);
  assert.match((await run(['send', '--help'])).stdout, /< photo\.jpg\n.*1048550 bytes/);
  // Exactly the limit goes through.
  const from = listener.proc.stdout.length;
  const ok = await run(['send', '--router', router.address, listener.id], { stdin: Buffer.alloc(2048 - 26, 0x61) });
  assert.is(ok.code, 0, ok.stderr);
  const m = JSON.parse(await listener.proc.line((l) => l.includes('"message"'), from)) as { data: string };
  assert.is(m.data.length, 2048 - 26);
});

e2e('listen prints one line per message, a multi-line payload escaped; listen -i sends its input and exits 0 at its end', async () => {
  const router = await startRouter();
  const plain = new Proc(['listen', '--router', router.address]);
  const id = (await plain.line((l) => l.startsWith('id '))).slice(3);
  const sender = new Proc(['listen', '--router', router.address, '-i']);
  const senderId = (await sender.line((l) => l.startsWith('id '))).slice(3);
  sender.child.stdin.end(`${id} first line\n${id} second\n`);
  assert.is(await sender.exit(), 0, sender.stderr.join('\n'));
  await plain.line((l) => l.endsWith(' second'));
  assert.equal(plain.stdout.slice(1), [`${senderId} first line`, `${senderId} second`]);
  const r = await run(['send', '--router', router.address, id], { stdin: Buffer.from('one\ntwo\r\nback\\slash\x07\n') });
  assert.is(r.code, 0, r.stderr);
  const line = await plain.line((l) => l.includes('one'), 3);
  assert.is(line.slice(33), 'one\\ntwo\\r\\nback\\\\slash\\x07');
});

e2e('listen --no-reconnect exits 4 with the code when the router goes away (drains)', async () => {
  const router = await startRouter();
  const proc = new Proc(['listen', '--router', router.address, '--no-reconnect']);
  assert.match(await proc.line(() => true), /^id [0-9a-f]{32}$/);
  router.proc.child.kill('SIGTERM');
  assert.is(await proc.exit(), 4, proc.stderr.join('\n'));
  assert.ok(proc.stderr.some((l) => l.startsWith('error: POSTERN_ERR_DRAINING: ')), proc.stderr.join('\n'));
});

e2e('a second router on a port in use exits 4 with LISTEN_FAILED naming EADDRINUSE; a busy metrics port logs no "listening" first', async () => {
  const router = await startRouter();
  const r = await run(['router', '--host', '127.0.0.1', '--port', String(router.port)]);
  assert.is(r.code, 4, r.stderr);
  assert.match(r.stderr, /^error: POSTERN_ERR_LISTEN_FAILED: router 127\.0\.0\.1:\d+: .*\(EADDRINUSE\)$/m);
  const m = await run(['router', '--host', '127.0.0.1', '--port', '0', '--metrics', `127.0.0.1:${router.port}`]);
  assert.is(m.code, 4, m.stderr);
  assert.match(m.stderr, /^error: POSTERN_ERR_LISTEN_FAILED: metrics /m);
  assert.not.match(m.stdout, /listening/, 'nothing claims to listen');
});

e2e('bad addresses are bad input (exit 2); a refused connection is CONNECT_FAILED, not CONNECTION_LOST', async () => {
  const host = await run(['send', '--router', 'no-such-host.invalid:7447', '00000bee6c1f9e0a4d2b7c5e81f3a9d2', 'hi']);
  assert.is(host.code, 2, host.stderr);
  assert.match(host.stderr, /^error: POSTERN_ERR_UNKNOWN_HOST: router no-such-host\.invalid:7447: /m);
  const bind = await run(['router', '--host', '192.0.2.1', '--port', '0', '--no-metrics']);
  assert.is(bind.code, 2, bind.stderr);
  assert.match(bind.stderr, /^error: POSTERN_ERR_INVALID_OPTION: router 192\.0\.2\.1:0: .*EADDRNOTAVAIL/m);
  const port = await closedPort();
  const refused = await run(['listen', '--router', `127.0.0.1:${port}`, '--no-reconnect']);
  assert.is(refused.code, 4, refused.stderr);
  assert.match(refused.stderr, /^error: POSTERN_ERR_CONNECT_FAILED: .*\(ECONNREFUSED\)$/m);
});

e2e('listen reconnects after a lost connection, reports it, and resumes its ID', async () => {
  const router = await startRouter();
  const proxy = await startProxy(router.port);
  try {
    const proc = new Proc(['listen', '--router', proxy.address, '--json']);
    const first = JSON.parse(await proc.line(() => true)) as { type: string; id: string };
    assert.is(first.type, 'registered');
    const from = proc.stdout.length;
    proxy.cut();
    const lost = JSON.parse(await proc.line((l) => l.includes('"disconnected"'), from)) as { code: string };
    assert.match(lost.code, /^POSTERN_ERR_/);
    const again = JSON.parse(await proc.line((l) => l.includes('"registered"'), from)) as { id: string; resumed: boolean };
    assert.equal(again, { type: 'registered', id: first.id, resumed: true });
    await roundTrip(router, { proc, id: first.id }, 'after the cut');
  } finally {
    await proxy.close();
  }
});

e2e('a registered agent that goes silent is dropped after 1.5x the keepalive; a live listener stays', async () => {
  const router = await startRouter(['--keepalive', '400']);
  const listener = await startListener(router);
  const silent = await RawClient.tcp(router.port);
  try {
    const body = await silent.register();
    assert.is(body.keepalive, 400);
    assert.is(body.timeout, 600);
    const start = Date.now();
    // It never answers the router's PING and sends nothing: as if its path died without a FIN.
    await silent.until(() => silent.closed, 5000, 'the router dropping the silent agent');
    const elapsed = Date.now() - start;
    const types = silent.frames.map((f) => f.type);
    assert.ok(types.includes(0x05), `a PING first: ${types.join(',')}`);
    const close = silent.frames.at(-1)!;
    assert.is(close.type, 0x04);
    assert.is(close.bytes.readUInt16BE(6), 69, 'KEEPALIVE_TIMEOUT');
    // The router checks deadlines a tenth of the interval at a time, so it may act up to
    // that much early; the upper bound only guards against "never".
    assert.ok(elapsed >= 600 - 40 - 5, `dropped after ${elapsed} ms`);
    await router.proc.line((l) => l.includes('KEEPALIVE_TIMEOUT'));
    // The listener answered every PING meanwhile, so it is still there.
    await roundTrip(router, listener, 'still alive');
  } finally {
    silent.destroy();
  }
});

e2e.run();
