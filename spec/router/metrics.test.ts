import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { startMetricsServer } from '../../src/router/metrics.js';
import { checkShape, describeConfig, loadConfig, resolveConfig } from '../../src/router/config.js';
import { encodeSend } from '../../src/protocol/encoder.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { RawClient } from '../helpers/raw.js';

const M = suite('metrics and config');

/** Parses Prometheus text format 0.0.4 strictly; returns samples by "name{labels}". */
function parseProm(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (m) continue;
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      assert.not.ok(types.has(m[1]!), `one TYPE per family: ${m[1]}`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `not a valid sample line: ${JSON.stringify(line)}`);
    assert.ok(types.has(m![1]!), `sample before its TYPE: ${m![1]}`);
    samples.set(m![1]! + (m![2] ?? ''), Number(m![3]));
  }
  return samples;
}

M('the metrics endpoint parses as Prometheus text, counters move with traffic, labels carry no IDs or addresses', async () => {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 12 });
  await r.listen();
  const server = await startMetricsServer(r, { host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${server.address.port}`;
  const before = parseProm(await (await fetch(`${url}/metrics`)).text());
  assert.is(before.get('postern_messages_relayed_total'), 0);
  const a = await RawClient.tcp(r.address()!.port);
  const b = await RawClient.tcp(r.address()!.port);
  await a.register();
  const rb = await b.register();
  for (let i = 0; i < 5; i++) a.write(...encodeSend(rb.id, i, Buffer.from('x')));
  a.write(...encodeSend(Buffer.from('0000000c000000000000000000000001', 'hex'), 99, Buffer.from('y')));
  await b.until(() => b.frames.length === 5);
  await a.until(() => a.frames.length === 1);
  const res = await fetch(`${url}/metrics`);
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  const after = parseProm(text);
  // The process families stock dashboards expect, and the build.
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.is(after.get(`postern_build_info{version="${pkg.version}",node="${process.version}"}`), 1);
  assert.ok(after.get('process_cpu_seconds_total')! > 0);
  const rss = after.get('process_resident_memory_bytes')!;
  assert.ok(rss > 10e6 && rss < 10e9, `rss ${rss}`);
  const start = after.get('process_start_time_seconds')!;
  assert.ok(Math.abs(start - (Date.now() / 1000 - process.uptime())) < 5, `start ${start}`);
  if (existsSync('/proc/self/fd')) {
    const fds = after.get('process_open_fds')!;
    // This process holds the router's listener and at least the 4 sockets of a and b.
    assert.ok(fds >= 5 && fds < after.get('process_max_fds')!, `open fds ${fds}`);
  }
  assert.is(after.get('postern_messages_relayed_total'), 5);
  assert.is(after.get('postern_agents'), 2);
  assert.is(after.get('postern_registrations_total'), 2);
  assert.is(after.get('postern_errors_sent_total{code="UNKNOWN_DESTINATION"}'), 1);
  assert.ok(after.get('postern_bytes_received_total')! > before.get('postern_bytes_received_total')!);
  assert.not.match(text, Buffer.from(rb.id).toString('hex'));
  assert.not.match(text, '127.0.0.1');
  const health = await fetch(`${url}/healthz`);
  assert.is(health.status, 200);
  assert.is((await fetch(`${url}/nope`)).status, 404);
  a.destroy();
  b.destroy();
  await r.close();
  assert.is((await fetch(`${url}/healthz`)).status, 503);
  await server.close();
});

M('config: a file with every kind of key resolves; flags override; unknown keys and bad values name the key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-config-'));
  const file = join(dir, 'router.json');
  writeFileSync(file, JSON.stringify({ port: 7000, routerId: 5, keepaliveInterval: 20000, log: { format: 'json' }, metrics: { port: 9999 }, drain: { grace: 3000 } }));
  const c = resolveConfig(loadConfig(file), { port: 7001, log: { level: 'debug' } });
  assert.is(c.router.port, 7001);
  assert.is(c.router.routerId, 5);
  assert.is(c.router.keepaliveInterval, 20000);
  assert.equal(c.log, { format: 'json', level: 'debug', prefix: 'auto' });
  assert.equal(c.metrics, { host: '127.0.0.1', port: 9999 });
  assert.equal(c.drain, { after: 1000, grace: 3000, alternates: [] });
  const shown = describeConfig(resolveConfig({ meshSecret: 'sixteen chars at least', peers: ['a:1'] }));
  assert.is(shown['meshSecret'], '***');
  const cases: Array<[unknown, string, RegExp]> = [
    [{ prot: 1 }, ErrorCode.INVALID_OPTION, /prot/],
    [{ port: 'x' }, ErrorCode.INVALID_OPTION, /port/],
    [{ log: { format: 'xml' } }, ErrorCode.INVALID_OPTION, /log\.format/],
    [{ metrics: { prt: 1 } }, ErrorCode.INVALID_OPTION, /metrics\.prt/],
    [{ drain: { alternates: ['nope'] } }, ErrorCode.INVALID_OPTION, /drain\.alternates/],
    [[1, 2], ErrorCode.CONFIG, /object/],
  ];
  for (const [value, code, names] of cases) {
    try {
      checkShape(value);
      resolveConfig(value as object);
      assert.unreachable(JSON.stringify(value));
    } catch (err) {
      assert.is((err as PosternError).code, code, JSON.stringify(value));
      assert.match((err as Error).message, names);
    }
  }
  writeFileSync(file, '{ not json');
  for (const path of [file, join(dir, 'missing.json')]) {
    try {
      loadConfig(path);
      assert.unreachable(path);
    } catch (err) {
      assert.is((err as PosternError).code, ErrorCode.CONFIG);
    }
  }
});

M.run();
