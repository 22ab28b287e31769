import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Router } from '../../src/router/router.js';
import { connectionsWithin, parseFdLimit, readFdLimit } from '../../src/net/fd-limit.js';
import { BIN, children, killAll, lines } from '../cli/proc.js';
import { RawClient } from '../helpers/raw.js';

// Out of file descriptors: the router says so, keeps its limit under
// the descriptor limit, and makes room for agents by closing the oldest strangers.
const D = suite('file descriptors');

D.after.each(async () => {
  await killAll();
});

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

D('the limit is read from /proc/self/limits, and connections fit under it with room to spare', () => {
  assert.is(parseFdLimit(LIMITS), 1024);
  assert.is(parseFdLimit(LIMITS.replace('1024  ', 'unlimited')), null);
  assert.is(parseFdLimit('nothing here'), null);
  assert.is(connectionsWithin(1024), 922);
  assert.is(connectionsWithin(128), 96);
  assert.is(connectionsWithin(10), 1);
  assert.type(readFdLimit(), 'number');
});

D('maxConnections defaults to what fits under the descriptor limit; a value given is kept', () => {
  const limit = readFdLimit()!;
  const r = new Router({});
  assert.is(r.fdLimit, limit);
  assert.is(r.options.maxConnections, Math.min(200_000, connectionsWithin(limit)));
  assert.is(new Router({ maxConnections: 300_000 }).options.maxConnections, 300_000);
});

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function waitFor<T>(what: string, ms: number, f: () => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

D('a router run with ulimit -n 128 and 200 idle connections logs EMFILE, counts it, and a new agent still registers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-fd-'));
  const config = join(dir, 'router.json');
  writeFileSync(config, JSON.stringify({ maxConnections: 1000, handshakeTimeout: 60_000, maxConnectionsPerAddress: 0 }));
  const cmd = `ulimit -n 128 && exec "$0" "$@"`;
  const child = spawn('bash', ['-c', cmd, process.execPath, BIN, 'router', '--config', config, '--host', '127.0.0.1', '--port', '0', '--metrics', '127.0.0.1:0', '--log-format', 'json'], {
    stdio: 'pipe',
    env: { ...process.env, POSTERN_ROUTER: undefined },
  });
  children.add(child);
  child.once('close', () => children.delete(child));
  const out: Array<Record<string, unknown>> = [];
  lines(child.stdout, (l) => {
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      out.push({ raw: l });
    }
  });
  child.stderr.resume();
  const find = (msg: RegExp): Record<string, unknown> | undefined => out.find((r) => typeof r['msg'] === 'string' && msg.test(r['msg']));
  const port = (await waitFor('listening', 10_000, () => find(/^listening$/)))['port'] as number;
  const metricsPort = (await waitFor('metrics listening', 10_000, () => find(/^metrics listening$/)))['port'] as number;
  const warn = await waitFor('the warning', 5000, () => find(/maxConnections is above/));
  assert.is(warn['fdLimit'], 128);
  assert.is(warn['maxConnections'], 1000);

  // Idle strangers until the router runs out of descriptors.
  const idle: net.Socket[] = [];
  const gone = new Set<number>();
  try {
    for (let i = 0; i < 200; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => gone.add(i));
      s.resume();
      idle.push(s);
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 50));
    }
    const line = await waitFor('the EMFILE line', 10_000, () => find(/out of file descriptors/)).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(out)}`);
    });
    assert.is(line['level'], 'error');
    assert.is(line['cause'], 'fd limit');
    assert.ok((line['count'] as number) >= 1);
    // Once per interval, not once per failed accept.
    assert.is(out.filter((r) => /out of file descriptors/.test(String(r['msg']))).length, 1);

    // A new agent gets in (a try or two: a connection that arrives while the router is
    // still out of descriptors is accepted and closed by libuv).
    let registered = '';
    for (let attempt = 0; attempt < 20 && registered === ''; attempt++) {
      try {
        const c = await RawClient.tcp(port);
        const body = await c.register();
        registered = Buffer.from(body.id).toString('hex');
        c.destroy();
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.match(registered, /^[0-9a-f]{32}$/);
    const metrics = await get(metricsPort, '/metrics');
    const m = /^postern_accept_fd_exhausted_total (\d+)$/m.exec(metrics);
    assert.ok(m !== null && Number(m[1]) >= 1, 'the counter says so');
    assert.match(metrics, /postern_closes_total\{code="TOO_MANY_CONNECTIONS"\} [1-9]/);
    // The ones closed to make room were the oldest.
    await waitFor('the oldest closed', 5000, () => (gone.has(0) ? true : undefined));
    assert.ok(!gone.has(199), 'the newest stay');
  } finally {
    for (const s of idle) s.destroy();
  }
});

D.run();
