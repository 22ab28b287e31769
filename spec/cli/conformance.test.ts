/**
 * `postern conformance` from the command line: a report by requirement ID, --json, exit 0
 * when nothing failed, 5 when something did, 4 when the router cannot be reached, 2
 * without a target.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { Router } from '../../src/router/router.js';
import { createLogger } from '../../src/net/log.js';
import { killAll, run } from './proc.js';

const T = suite('cli: conformance');
T.after(killAll);

async function router(): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 9, logger: createLogger({ level: 'error', format: 'json', write: () => {} }) });
  await r.listen();
  return r;
}

T('a conforming router: text report by requirement ID, exit 0; --json the same as an object', async () => {
  const r = await router();
  const addr = `127.0.0.1:${r.address()!.port}`;
  const text = await run(['conformance', '--router', addr, '--only', 'P-6.4', 'P-8.1']);
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, /^pass {2}\[P-6\.4-4\] /m);
  assert.match(text.stdout, /^pass {2}\[P-8\.1-2\] /m);
  assert.match(text.stdout, /\d+ passed, 0 failed/);
  const json = await run(['conformance', '--router', addr, '--only', 'P-6.4', '--json']);
  assert.is(json.code, 0, json.stderr);
  const rep = JSON.parse(json.stdout) as { ok: boolean; results: { id: string; status: string }[] };
  assert.ok(rep.ok);
  assert.ok(rep.results.every((x) => x.id.startsWith('P-6.4') && x.status === 'pass'));
  await r.close();
});

T('a router that fails a requirement: exit 5 and the failing ID', async () => {
  // Not a postern router at all: it answers everything with an HTTP 200.
  const fake = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n'));
  });
  await new Promise<void>((res) => fake.listen(0, '127.0.0.1', res));
  const r = await run(['conformance', '--router', `127.0.0.1:${(fake.address() as net.AddressInfo).port}`, '--only', 'P-2.2-2', '--wait', '500']);
  fake.close();
  assert.is(r.code, 5, r.stderr);
  assert.match(r.stdout, /^FAIL {2}\[P-2\.2-2\] /m);
  assert.match(r.stdout, /got: {2}"HTTP\/1\.1 200 OK/);
});

T('no router listening: exit 4 with a network error; no target: exit 2', async () => {
  const s = net.createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  const r = await run(['conformance', '--router', `127.0.0.1:${port}`]);
  assert.is(r.code, 4, r.stderr);
  assert.match(r.stderr, /^error: /m);
  const none = await run(['conformance']);
  assert.is(none.code, 2, none.stderr);
  assert.match(none.stderr, /POSTERN_ERR_INVALID_ARGUMENT/);
});

T.run();
