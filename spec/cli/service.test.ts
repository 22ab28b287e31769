/**
 * Running the router as a service, through the CLI: `postern router --config` with (a temporary copy
 * of) the shipped example.json, --check-config on good and bad files, /metrics and
 * /healthz, SIGHUP reloading admission and a limit, systemd readiness, and a sequence-checked
 * message stream across `kill -TERM` and a restart (agents from the library, routers as
 * children). Every child is killed in teardown; every wait is bounded.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, ErrorCode, type Agent, type PosternError } from '../../src/index.js';
import { RawClient } from '../helpers/raw.js';
import { killAll, Proc, run, startListener, within, WAIT, type RouterProc } from './proc.js';

const EXAMPLE = new URL('../../../example.json', import.meta.url);

const S = suite('cli: the router as a service');
let dir = '';
S.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-service-'));
});
S.after.each(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** example.json as shipped, on 127.0.0.1 with free ports for agents and metrics, plus `changes`. */
function exampleConfig(changes: Record<string, unknown> = {}): string {
  const c = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>;
  Object.assign(c, { host: '127.0.0.1', port: 0, metrics: { host: '127.0.0.1', port: 0 } }, changes);
  const path = join(dir, 'router.json');
  writeFileSync(path, JSON.stringify(c, null, 2));
  return path;
}

/** Starts `postern router --config FILE` (JSON logs); resolves with its agent and metrics ports. */
async function startConfigured(config: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RouterProc & { metrics: number }> {
  const proc = new Proc(['router', '--config', config, '--log-format', 'json', ...extra], env);
  const rec = JSON.parse(await proc.line((l) => l.includes('"listening"'))) as { port: number; router: string };
  const m = JSON.parse(await proc.line((l) => l.includes('"metrics listening"'))) as { port: number };
  return { proc, port: rec.port, routerId: parseInt(rec.router, 16), address: `127.0.0.1:${rec.port}`, metrics: m.port };
}

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
        })
        .on('error', reject);
    }),
    WAIT,
    `GET ${path}`,
  );
}

/** Checks Prometheus text format 0.0.4 line by line; returns the samples by series. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      assert.match(line, /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S/);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      assert.ok(m, `TYPE line: ${line}`);
      typed.add(m![1]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|NaN|\+Inf|-Inf))$/.exec(line);
    assert.ok(m, `sample line: ${JSON.stringify(line)}`);
    assert.ok(typed.has(m![1]!), `${m![1]} has a TYPE line before its samples`);
    samples.set(m![1]! + (m![2] ?? ''), Number(m![3]));
  }
  return samples;
}

S('--check-config: the shipped example is valid; the effective config is printed with secrets masked; flags override', async () => {
  const r = await run(['router', '--check-config', EXAMPLE.pathname]);
  assert.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.is(c['port'], 7447);
  // example.json leaves routerId unset, so no one installs the same ID on every host; the
  // ID drawn while checking is not the one the router will use, so none is printed.
  assert.is(c['routerId'], 'random');
  assert.equal(c['metrics'], { host: '127.0.0.1', port: 9447 });
  const fixed = await run(['router', '--check-config', EXAMPLE.pathname, '--router-id', '0x2a']);
  assert.is((JSON.parse(fixed.stdout) as Record<string, unknown>)['routerId'], 42);
  assert.equal(c['drain'], { after: 1000, grace: 10000, alternates: [] });

  const secret = 'a mesh secret of some length';
  const path = exampleConfig({ meshSecret: secret, resumeSecret: 'another long secret', admissionTokens: ['token-one-1'], peers: ['127.0.0.1:1'] });
  const r2 = await run(['router', '--check-config', path, '--port', '7000']);
  assert.is(r2.code, 0, r2.stderr);
  const c2 = JSON.parse(r2.stdout) as Record<string, unknown>;
  assert.is(c2['meshSecret'], '***');
  assert.is(c2['resumeSecret'], '***');
  assert.equal(c2['admissionTokens'], ['***']);
  assert.is(c2['port'], 7000, 'the flag wins over the file');
  assert.not.ok(r2.stdout.includes(secret));
});

S('--check-config: unknown keys, bad values and broken files exit 2 with the code, naming the key', async () => {
  const cases: Array<[string, string, RegExp]> = [
    ['{"port": 7447, "maxConections": 5}', 'POSTERN_ERR_INVALID_OPTION', /maxConections/],
    ['{"maxConnections": -1}', 'POSTERN_ERR_INVALID_OPTION', /maxConnections/],
    ['{"log": {"level": "loud"}}', 'POSTERN_ERR_INVALID_OPTION', /log\.level/],
    ['{"metrics": {"port": 70000}}', 'POSTERN_ERR_INVALID_OPTION', /metrics\.port/],
    ['{"peers": ["127.0.0.1:7447"]}', 'POSTERN_ERR_INVALID_OPTION', /meshSecret/],
    ['{"port": 7447,', 'POSTERN_ERR_CONFIG', /not valid JSON/],
  ];
  for (const [text, code, key] of cases) {
    const path = join(dir, 'bad.json');
    writeFileSync(path, text);
    const r = await run(['router', '--check-config', path]);
    assert.is(r.code, 2, `${text}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^error: ${code}: `, 'm'));
    assert.match(r.stderr, key);
    assert.is(r.stdout, '');
  }
  const missing = await run(['router', '--check-config', join(dir, 'nope.json')]);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /^error: POSTERN_ERR_CONFIG: /m);
  // The same checks stop a router from starting.
  writeFileSync(join(dir, 'bad.json'), '{"bogus": true}');
  const start = await run(['router', '--config', join(dir, 'bad.json')]);
  assert.is(start.code, 2);
  assert.match(start.stderr, /bogus/);
});

S('router --config example.json: serves agents, /metrics counters move with traffic, /healthz answers', async () => {
  const router = await startConfigured(exampleConfig({ routerId: 1 }));
  assert.is(router.routerId, 1, 'routerId from the file');
  const before = parsePrometheus((await get(router.metrics, '/metrics')).body);
  const listener = await startListener(router);
  for (const text of ['one', 'two', 'three']) {
    const r = await run(['send', '--router', router.address, listener.id, text]);
    assert.is(r.code, 0, r.stderr);
  }
  await listener.proc.line((l) => l.includes('"three"'));
  const res = await get(router.metrics, '/metrics');
  assert.is(res.status, 200);
  assert.match(res.type, /^text\/plain; version=0\.0\.4/);
  const after = parsePrometheus(res.body);
  assert.is(after.get('postern_messages_relayed_total')! - (before.get('postern_messages_relayed_total') ?? 0), 3);
  assert.ok(after.get('postern_registrations_total')! >= 4);
  assert.is(after.get('postern_agents'), 1, 'the listener');
  assert.ok(after.get('postern_bytes_received_total')! > before.get('postern_bytes_received_total')!);
  assert.not.ok(res.body.includes(listener.id), 'no agent ID in a label');
  const health = await get(router.metrics, '/healthz');
  assert.equal([health.status, health.body], [200, 'ok\n']);
});

S('SIGHUP reloads admission tokens and limits without dropping agents; a bad file keeps the running settings', async () => {
  const config = exampleConfig();
  const router = await startConfigured(config);
  const listener = await startListener(router);

  // Require a token: new agents without it are refused, the connected listener stays.
  const token = 'reloaded-token-123';
  writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), admissionTokens: [token], maxConnectionsPerAddress: 500 }));
  const from = router.proc.stdout.length;
  router.proc.child.kill('SIGHUP');
  const line = JSON.parse(await router.proc.line((l) => l.includes('"config reloaded"'), from)) as { changed: string };
  assert.equal(line.changed.split(',').sort(), ['admissionTokens', 'maxConnectionsPerAddress']);

  const denied = await run(['send', '--router', router.address, listener.id, 'no token']);
  assert.is(denied.code, 3, `a refusal, not a network failure: ${denied.stderr}`);
  assert.match(denied.stderr, /^error: POSTERN_ERR_ADMISSION_DENIED: /m);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, token + '\n');
  chmodSync(tokenFile, 0o600);
  const ok = await run(['send', '--router', router.address, '--token-file', tokenFile, listener.id, 'with a token']);
  assert.is(ok.code, 0, ok.stderr);
  await listener.proc.line((l) => l.includes('"with a token"'));

  // A limit: one connection per address; the listener already holds it.
  writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), maxConnectionsPerAddress: 1 }));
  router.proc.child.kill('SIGHUP');
  await router.proc.line((l) => l.includes('"config reloaded"') && l.includes('maxConnectionsPerAddress'), from + 1);
  const limited = await run(['send', '--router', router.address, '--token-file', tokenFile, listener.id, 'over the limit']);
  assert.is(limited.code, 4, limited.stderr);
  assert.match(limited.stderr, /POSTERN_ERR_TOO_MANY_CONNECTIONS/);

  // A broken file: logged, nothing changes, the router keeps serving.
  writeFileSync(config, '{ "maxConnectionsPerAddress": ');
  const at = router.proc.stdout.length;
  router.proc.child.kill('SIGHUP');
  const err = JSON.parse(await router.proc.line((l) => l.includes('reload failed'), at)) as { level: string; error: string };
  assert.is(err.level, 'error');
  assert.match(err.error, /^POSTERN_ERR_CONFIG: /);
  const still = await run(['send', '--router', router.address, '--token-file', tokenFile, listener.id, 'still limited']);
  assert.is(still.code, 4, 'the old limit still holds');
  assert.is(listener.proc.child.exitCode, null, 'the listener was never dropped');
  assert.not.ok(listener.proc.stdout.some((l) => l.includes('"disconnected"')), listener.proc.stdout.join('\n'));
});

S('flags override the file: --metrics, --no-metrics, --log-level, --peer with POSTERN_MESH_SECRET', async () => {
  const path = exampleConfig();
  const parse = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Record<string, unknown>> => {
    const r = await run(['router', '--check-config', path, ...args], { env });
    assert.is(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  assert.equal((await parse(['--metrics', '0.0.0.0:9100']))['metrics'], { host: '0.0.0.0', port: 9100 });
  assert.is((await parse(['--no-metrics']))['metrics'], null);
  assert.equal((await parse(['--log-level', 'warn', '--log-format', 'json']))['log'], { format: 'json', level: 'warn', prefix: 'auto' });
  const meshed = await parse(['--peer', '127.0.0.1:7001', '--peer', '[::1]:7002'], { POSTERN_MESH_SECRET: 'sixteen characters or more' });
  assert.equal(meshed['peers'], ['127.0.0.1:7001', '[::1]:7002']);
  assert.is(meshed['meshSecret'], '***');
  const bad = await run(['router', '--check-config', path, '--peer', 'nohost']);
  assert.is(bad.code, 2);
});

S('a second signal during a drain exits at once with status 1', async () => {
  const router = await startConfigured(exampleConfig({ drain: { after: 1000, grace: 60000, alternates: [] } }));
  // A raw agent that ignores DRAIN keeps the router waiting for the whole grace period.
  const straggler = await RawClient.tcp(router.port);
  try {
    await straggler.register();
    router.proc.child.kill('SIGTERM');
    await router.proc.line((l) => l.includes('"draining"'));
    await straggler.until(() => straggler.frames.some((f) => f.type === 0x07), WAIT, 'the DRAIN frame');
    router.proc.child.kill('SIGTERM');
    assert.is(await router.proc.exit(), 1);
    assert.ok(router.proc.stdout.some((l) => l.includes('"forced exit"')), router.proc.stdout.join('\n'));
  } finally {
    straggler.destroy();
  }
});

S('readiness: with NOTIFY_SOCKET set the router runs systemd-notify --ready once listening', async () => {
  const bin = join(dir, 'bin');
  const record = join(dir, 'notified');
  mkdirSync(bin);
  writeFileSync(join(bin, 'systemd-notify'), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> '${record}'\n`, { mode: 0o755 });
  const router = await startConfigured(exampleConfig(), [], { NOTIFY_SOCKET: '/run/fake-notify', PATH: `${bin}:${process.env.PATH ?? ''}` });
  const deadline = Date.now() + WAIT;
  let text = '';
  while (Date.now() < deadline) {
    try {
      text = readFileSync(record, 'utf8');
      if (text !== '') break;
    } catch {
      // not yet written
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.match(text, new RegExp(`^/run/fake-notify --ready --pid=${router.proc.child.pid}\\n`));
  router.proc.child.kill('SIGTERM');
  assert.is(await router.proc.exit(), 0);
  assert.match(readFileSync(record, 'utf8'), /STOPPING=1/);
});

S('kill -TERM mid-stream and a restart: every message arrives in order or was reported to its sender; IDs resume', async () => {
  const secretFile = join(dir, 'resume-secret');
  writeFileSync(secretFile, 'resume secret for the test\n', { mode: 0o600 });
  const config = exampleConfig({ routerId: 0x5e9, drain: { after: 100, grace: 5000, alternates: [] } });
  const r1 = await startConfigured(config, ['--resume-secret-file', secretFile]);
  const port = r1.port;
  const agents: Agent[] = [];
  try {
    const receiver = await connect({ router: r1.address, reconnectDelay: 20, reconnectMaxDelay: 200 });
    const sender = await connect({ router: r1.address, reconnectDelay: 20, reconnectMaxDelay: 200 });
    agents.push(receiver, sender);
    const receiverId = receiver.id;
    const senderId = sender.id;

    const got: number[] = [];
    receiver.on('message', (m) => got.push(Number(m.data.toString())));
    const reported = new Set<number>();
    const seqToN = new Map<number, number>();
    sender.on('undeliverable', (e: PosternError) => {
      const n = seqToN.get(e.seq ?? -1);
      if (n !== undefined) reported.add(n);
    });

    const TOTAL = 600;
    let next = 0;
    let restarted: Proc | null = null;
    let drainSeen = false;
    receiver.on('status', (s) => {
      if (s.type === 'disconnected' && s.error.code === ErrorCode.DRAINING) drainSeen = true;
    });
    const deadline = Date.now() + 4 * WAIT;
    while (next < TOTAL) {
      assert.ok(Date.now() < deadline, `stream stuck at ${next}`);
      if (next === 200 && r1.proc.child.exitCode === null && restarted === null) {
        r1.proc.child.kill('SIGTERM');
        // Restart on the same port once the first router is gone, as systemd would.
        void r1.proc.exited.then(() => {
          restarted = new Proc(['router', '--config', config, '--port', String(port), '--resume-secret-file', secretFile, '--log-format', 'json', '--no-metrics']);
        });
      }
      try {
        const seq = sender.send(receiverId, String(next));
        seqToN.set(seq, next);
        next++;
      } catch (err) {
        // Between routers: the agent says so at once and nothing was sent; try again.
        assert.is((err as PosternError).code, ErrorCode.NOT_CONNECTED);
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      if (next % 10 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await within(sender.flush(), WAIT, 'the last sends routed');
    const until = Date.now() + WAIT;
    while (got.length + reported.size < TOTAL && Date.now() < until) await new Promise((r) => setTimeout(r, 20));

    assert.is(await r1.proc.exit(), 0, 'the drained router exits 0');
    assert.ok(drainSeen, 'the receiver was told to drain');
    assert.ok(restarted !== null, 'the router was restarted');
    for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, `in order: ${got[i - 1]} then ${got[i]}`);
    // Known to fail (most runs, about 10 messages just after the drain starts): the drained
    // receiver sends CLOSE(NORMAL) after its flush and stops decoding (src/agent/session.ts
    // close()), while the router, which has not read that CLOSE yet, still writes DELIVERs
    // to it and counts them relayed. Those are lost and no sender is told. The fix belongs
    // in the agent (keep delivering until the router's CLOSE after a drain) or in §12.2.
    const missing: number[] = [];
    for (let n = 0; n < TOTAL; n++) if (!got.includes(n) && !reported.has(n)) missing.push(n);
    assert.equal(missing, [], 'lost without a report');
    if (process.env.POSTERN_TEST_VERBOSE !== undefined) console.log(`  stream: ${got.length} arrived, ${reported.size} reported`);
    assert.ok(got.length >= TOTAL - 50, `most arrived (${got.length}, ${reported.size} reported)`);
    assert.is(receiver.id, receiverId, 'the receiver resumed its ID');
    assert.is(sender.id, senderId, 'the sender resumed its ID');
  } finally {
    for (const a of agents) await a.close().catch(() => undefined);
  }
});

S.run();
