/**
 * Sealed and anonymous messages, through the CLI as a new user would: `postern keygen`, a listener
 * with its key, an anonymous sealed `postern send` reaching it (shown as sealed; verified
 * when the sender proves itself), a reply reaching the anonymous sender (from the
 * listener's stdin and from another `postern send` with the printed handle), `postern
 * lookup`, and a router log without the anonymous sender's address. Every child is killed
 * in teardown; every wait is bounded.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { killAll, Proc, run, startRouter, type RouterProc } from './proc.js';

interface MessageLine {
  type: string;
  from: string;
  data: string;
  sealed?: boolean;
  anonymous?: boolean;
  verified?: boolean;
  verification?: string;
  sender?: { id?: string; publicKey: string };
}

const S = suite('cli: sealed and anonymous messages');
let dir = '';
S.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-sealed-'));
});
S.after.each(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

async function keygen(name: string): Promise<{ file: string; publicKey: string }> {
  const file = join(dir, name);
  const r = await run(['keygen', '--out', file]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^[A-Za-z0-9+/]{43}=$/);
  return { file, publicKey: r.stdout };
}

/** `postern listen --json --key FILE -i`, with stdin kept open for replies. */
async function keyedListener(router: RouterProc, key: string): Promise<{ proc: Proc; id: string }> {
  const proc = new Proc(['listen', '--router', router.address, '--json', '--key', key, '-i']);
  const rec = JSON.parse(await proc.line(() => true)) as { type: string; id: string; publicKey: string };
  assert.is(rec.type, 'registered');
  return { proc, id: rec.id };
}

function message(line: string): MessageLine {
  return JSON.parse(line) as MessageLine;
}

S('keygen writes a 0600 key file, prints its public key, and refuses to overwrite without --force', async () => {
  const k = await keygen('me.key');
  assert.is(statSync(k.file).mode & 0o777, 0o600);
  const text = JSON.parse(readFileSync(k.file, 'utf8')) as { type: string; publicKey: string };
  assert.is(text.type, 'postern-x25519-key');
  assert.is(text.publicKey, k.publicKey);
  const again = await run(['keygen', '--out', k.file]);
  assert.is(again.code, 2);
  assert.match(again.stderr, /^error: POSTERN_ERR_KEY_FILE_EXISTS: /m);
  const forced = await run(['keygen', '--out', k.file, '--force', '--json']);
  assert.is(forced.code, 0, forced.stderr);
  assert.is.not((JSON.parse(forced.stdout) as { publicKey: string }).publicKey, k.publicKey);
  assert.is(statSync(k.file).mode & 0o777, 0o600);
});

S('lookup prints the key a listener registered; exit 3 with NO_KEY or UNKNOWN_DESTINATION', async () => {
  const router = await startRouter();
  const k = await keygen('a.key');
  const keyed = await keyedListener(router, k.file);
  const r = await run(['lookup', '--router', router.address, keyed.id]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, k.publicKey);

  const plain = new Proc(['listen', '--router', router.address]);
  const plainId = (await plain.line(() => true)).slice(3);
  const noKey = await run(['lookup', '--router', router.address, plainId]);
  assert.is(noKey.code, 3, noKey.stderr);
  assert.match(noKey.stderr, /^error: POSTERN_ERR_NO_KEY: /m);

  const unknown = keyed.id.slice(0, 8) + '0'.repeat(23) + '1';
  const gone = await run(['lookup', '--router', router.address, unknown]);
  assert.is(gone.code, 3, gone.stderr);
  assert.match(gone.stderr, /^error: POSTERN_ERR_UNKNOWN_DESTINATION: /m);

  const sealToPlain = await run(['send', '--router', router.address, '--seal', plainId, 'hi']);
  assert.is(sealToPlain.code, 3);
  assert.match(sealToPlain.stderr, new RegExp(`^error: POSTERN_ERR_NO_KEY: ${plainId} registered no public key`, 'm'));
});

S('an anonymous sealed send reaches the keyed listener, shown sealed and anonymous; replies reach the sender; the router logs no sender address', async () => {
  const router = await startRouter();
  const k = await keygen('a.key');
  const listener = await keyedListener(router, k.file);

  // The sender stays connected for replies (--wait 0: until stopped).
  const sender = new Proc(['send', '--router', router.address, '--seal', '--anonymous', '--wait', '0', '--json', listener.id, 'who goes there?']);
  const got = message(await listener.proc.line((l) => l.includes('who goes there?')));
  assert.equal(
    { sealed: got.sealed, anonymous: got.anonymous, verified: got.verified, verification: got.verification, sender: got.sender },
    { sealed: true, anonymous: true, verified: false, verification: 'none', sender: undefined },
  );
  assert.match(got.from, /^[0-9a-f]{32}$/);
  assert.is.not(got.from, listener.id);
  assert.ok(got.from.startsWith(router.routerId.toString(16).padStart(8, '0')), 'a reply handle of this router');

  // The router saw an anonymous connection and logged nothing about where it came from.
  const anonLines = router.proc.stdout.filter((l) => l.includes('"anonymous agent connected"'));
  assert.is(anonLines.length, 1, router.proc.stdout.join('\n'));
  for (const l of router.proc.stdout) {
    const rec = JSON.parse(l) as { msg: string; agent?: string; remote?: string };
    if (rec.remote !== undefined) assert.is(rec.agent, listener.id, `only the listener's address is logged: ${l}`);
  }

  // Reply from the listener's stdin to the handle it printed.
  listener.proc.child.stdin.write(`${got.from} friend\n`);
  const reply = message(await sender.line((l) => l.includes('"message"')));
  assert.equal({ from: reply.from, data: reply.data }, { from: listener.id, data: 'friend' });

  // Anyone can answer the handle while the sender is connected: a separate postern send.
  const from = sender.stdout.length;
  const other = await run(['send', '--router', router.address, got.from, 'a second reply']);
  assert.is(other.code, 0, other.stderr);
  assert.is(message(await sender.line((l) => l.includes('"message"'), from)).data, 'a second reply');

  // After the sender leaves the handle reaches nothing.
  sender.child.kill('SIGINT');
  assert.is(await sender.exit(), 0);
  const late = await run(['send', '--router', router.address, got.from, 'too late']);
  assert.is(late.code, 3);
  assert.match(late.stderr, /^error: POSTERN_ERR_UNKNOWN_DESTINATION: /m);
});

S('a sender that proves itself is shown verified, also when routers see only a reply handle', async () => {
  const router = await startRouter();
  const a = await keygen('a.key');
  const b = await keygen('b.key');
  const listener = await keyedListener(router, a.file);

  const proving = new Proc(['send', '--router', router.address, '--seal', '--anonymous', '--prove', '--key', b.file, '--wait', '0', listener.id, 'it is me']);
  const m = message(await listener.proc.line((l) => l.includes('it is me')));
  assert.is(m.sealed, true);
  assert.is(m.anonymous, true);
  assert.is(m.verified, true, JSON.stringify(m));
  assert.is(m.verification, 'directory');
  assert.is(m.sender?.publicKey, b.publicKey);
  assert.match(m.sender?.id ?? '', /^[0-9a-f]{32}$/);
  assert.is.not(m.from, m.sender?.id, 'from is a reply handle, the ID is only inside the envelope');
  // The reply goes back sealed to the key the sender proved, and it opens there.
  listener.proc.child.stdin.write(`${m.from} sealed back\n`);
  const back = await proving.line((l) => l.includes('sealed back'));
  assert.match(back, new RegExp(`^${listener.id} \\[sealed, verified ${listener.id}\\] sealed back$`));

  // A named sealed send: from is the sender's ID, verified too.
  const named = new Proc(['send', '--router', router.address, '--seal', '--key', b.file, '--wait', '0', listener.id, 'named']);
  const n = message(await listener.proc.line((l) => l.includes('"named"')));
  assert.equal({ anonymous: n.anonymous, verified: n.verified }, { anonymous: false, verified: true });
  assert.is(n.from, n.sender?.id);
  named.child.kill('SIGINT');
  proving.child.kill('SIGINT');
});

S('--to-key seals to a key given out of band; plain listeners print the tags too', async () => {
  const router = await startRouter();
  const a = await keygen('a.key');
  const proc = new Proc(['listen', '--router', router.address, '--key', a.file]);
  const id = (await proc.line(() => true)).slice(3);
  assert.is(await proc.line((l) => l.startsWith('key ')), `key ${a.publicKey}`);
  const r = await run(['send', '--router', router.address, '--seal', '--to-key', a.publicKey, '--anonymous', id, 'pinned']);
  assert.is(r.code, 0, r.stderr);
  const line = await proc.line((l) => l.endsWith(' pinned'));
  assert.match(line, /^[0-9a-f]{32} \[anonymous, sealed\] pinned$/);
  const bad = await run(['send', '--router', router.address, '--prove', id, 'x']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /^error: POSTERN_ERR_INVALID_ARGUMENT: /m);
});

S('listen --anonymous -i: no ID printed, what it sends arrives under a reply handle, replies come back to it', async () => {
  const router = await startRouter();
  const k = await keygen('a.key');
  const named = await keyedListener(router, k.file);
  const anon = new Proc(['listen', '--router', router.address, '--json', '--anonymous', '-i']);
  assert.equal(JSON.parse(await anon.line(() => true)), { type: 'registered', anonymous: true });
  anon.child.stdin.write(`${named.id} hello from nobody\n`);
  const sent = JSON.parse(await anon.line((l) => l.includes('"sent"'))) as { to: string };
  assert.is(sent.to, named.id);
  const m = message(await named.proc.line((l) => l.includes('hello from nobody')));
  assert.is(m.anonymous, true);
  named.proc.child.stdin.write(`${m.from} hello nobody\n`);
  const back = message(await anon.line((l) => l.includes('hello nobody')));
  assert.is(back.from, named.id);
  // A line that is not "<id> <text>" is reported, and reading goes on.
  anon.child.stdin.write('not a command\n');
  assert.match(await anon.line((l) => l.includes('"error"')), /POSTERN_ERR_INVALID_ARGUMENT/);
});

S.run();
