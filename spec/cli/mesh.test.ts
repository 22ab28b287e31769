/**
 * A router mesh, through the CLI: two routers peered with --peer and a mesh secret
 * (one from a file, one from POSTERN_MESH_SECRET), `postern listen` on one, `postern send`
 * from the other arrives; stop the first router and the sender gets
 * POSTERN_ERR_UNREACHABLE_ROUTER; a router with the wrong secret gets no link. Every child
 * is killed in teardown; every wait is bounded.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { redialDelay } from '../../src/router/mesh/mesh.js';
import { killAll, Proc, run, startListener, startRouter } from './proc.js';

const SECRET = 'shared mesh secret for the test';

const M = suite('cli: router mesh');
let dir = '';
M.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-mesh-'));
});
M.after.each(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

M('two peered routers: a message crosses the link; with the first router stopped the sender gets UNREACHABLE_ROUTER', async () => {
  const secretFile = join(dir, 'mesh-secret');
  writeFileSync(secretFile, SECRET + '\n', { mode: 0o600 });
  const a = await startRouter(['--router-id', '0xa1', '--mesh-secret-file', secretFile]);
  const b = await startRouter(['--router-id', '0xb2', '--peer', a.address], { POSTERN_MESH_SECRET: SECRET });
  const upB = JSON.parse(await b.proc.line((l) => l.includes('"link up"'))) as { router: string; direction: string };
  // router IDs in logs are hex, as they start agent IDs
  assert.equal([upB.router, upB.direction], ['000000a1', 'out']);
  await a.proc.line((l) => l.includes('"link up"'));
  assert.not.ok(b.proc.stdout.join('\n').includes(SECRET), 'the secret is never logged');

  const listener = await startListener(a);
  assert.ok(listener.id.startsWith('000000a1'));
  const r = await run(['send', '--router', b.address, listener.id, 'across the mesh']);
  assert.is(r.code, 0, r.stderr);
  const m = JSON.parse(await listener.proc.line((l) => l.includes('across the mesh'))) as { from: string };
  assert.ok(m.from.startsWith('000000b2'), 'from an agent of the other router');

  // The key directory and reply handles work across the link too.
  const keyFile = join(dir, 'a.key');
  const kg = await run(['keygen', '--out', keyFile]);
  assert.is(kg.code, 0, kg.stderr);
  const keyed = new Proc(['listen', '--router', a.address, '--json', '--key', keyFile, '-i']);
  const keyedId = (JSON.parse(await keyed.line(() => true)) as { id: string }).id;
  const looked = await run(['lookup', '--router', b.address, keyedId]);
  assert.is(looked.code, 0, looked.stderr);
  assert.is(looked.stdout, kg.stdout);
  const anon = new Proc(['send', '--router', b.address, '--seal', '--anonymous', '--wait', '0', '--json', keyedId, 'sealed across']);
  const got = JSON.parse(await keyed.line((l) => l.includes('sealed across'))) as { from: string; sealed: boolean; anonymous: boolean };
  assert.equal([got.sealed, got.anonymous], [true, true]);
  assert.ok(got.from.startsWith('000000b2'), 'a reply handle of the sender\'s router');
  keyed.child.stdin.write(`${got.from} back across\n`);
  assert.match(await anon.line((l) => l.includes('back across')), new RegExp(`"from":"${keyedId}"`));

  a.proc.child.kill('SIGTERM');
  assert.is(await a.proc.exit(), 0);
  await b.proc.line((l) => l.includes('"link down"'));
  const lost = await run(['send', '--router', b.address, listener.id, 'nobody there']);
  assert.is(lost.code, 3, lost.stderr);
  assert.match(lost.stderr, /^error: POSTERN_ERR_UNREACHABLE_ROUTER: /m);
});

M('a router with another mesh secret gets no link; a secret shorter than 16 characters is bad input', async () => {
  const a = await startRouter(['--router-id', '0xa1'], { POSTERN_MESH_SECRET: SECRET });
  const c = await startRouter(['--router-id', '0xc3', '--peer', a.address], { POSTERN_MESH_SECRET: 'a different secret entirely' });
  await c.proc.line((l) => l.includes('LINK_AUTH_FAILED'));
  // The dialling side says it at error level, naming what to check.
  const refused = JSON.parse(await c.proc.line((l) => l.includes('"link refused"'))) as { level: string; code: string; hint: string };
  assert.is(refused.level, 'warn');
  assert.is(refused.code, 'LINK_AUTH_FAILED');
  assert.match(refused.hint, /mesh secret/);
  assert.not.ok(c.proc.stdout.some((l) => l.includes('"link up"')), c.proc.stdout.join('\n'));
  assert.not.ok(a.proc.stdout.some((l) => l.includes('"link up"')), a.proc.stdout.join('\n'));

  const short = join(dir, 'short');
  writeFileSync(short, 'too short\n', { mode: 0o600 });
  // A secret file others can read is refused like a key file, before it is used.
  const open = join(dir, 'open');
  writeFileSync(open, SECRET + '\n', { mode: 0o644 });
  chmodSync(open, 0o644);
  const insecure = await run(['router', '--port', '0', '--peer', '127.0.0.1:1', '--mesh-secret-file', open]);
  assert.is(insecure.code, 2, insecure.stderr);
  assert.match(insecure.stderr, /^error: POSTERN_ERR_KEY_FILE_INSECURE: --mesh-secret-file: .*0644/m);
  writeFileSync(join(dir, 'empty.json'), '{}');
  const r = await run(['router', '--check-config', join(dir, 'empty.json'), '--mesh-secret-file', short]);
  assert.is(r.code, 2);
  assert.match(r.stderr, /meshSecret/);
  const ok = await run(['router', '--check-config', join(dir, 'empty.json')], { env: { POSTERN_MESH_SECRET: SECRET } });
  assert.is(ok.code, 0, ok.stderr);
  assert.is((JSON.parse(ok.stdout) as { meshSecret: string }).meshSecret, '***');
  const r2 = await run(['router', '--port', '0', '--peer', '127.0.0.1:1', '--mesh-secret-file', short]);
  assert.is(r2.code, 2);
  assert.match(r2.stderr, /^error: POSTERN_ERR_INVALID_OPTION: .*meshSecret/m);
  const none = await run(['router', '--port', '0', '--peer', '127.0.0.1:1'], { env: { POSTERN_MESH_SECRET: '' } });
  assert.is(none.code, 2);
  assert.match(none.stderr, /meshSecret/);
});

M('a refused link is redialled with a growing delay, up to 60 s rather than linkRetryMax', () => {
  const o = { linkRetryMin: 200, linkRetryMax: 5000 };
  const top = (): number => 0.9999;
  const refused = [1, 2, 3, 4, 5, 6, 10, 20].map((n) => redialDelay('LINK_AUTH_FAILED', n, 0, o, top));
  assert.equal(refused.slice(0, 5), [200, 400, 800, 1600, 3200]);
  assert.ok(refused[6]! > 59_000 && refused[7]! <= 60_000, String(refused));
  assert.ok(redialDelay('DUPLICATE_ROUTER_ID', 20, 0, o, top) > 59_000);
  // A network failure keeps the short ceiling: the peer may be back any moment.
  assert.ok(redialDelay('ECONNREFUSED', 20, 0, o, top) <= 5000);
});

M.run();
