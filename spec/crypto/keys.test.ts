import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  formatPublicKey,
  generateKeyPair,
  keyPairFromSecretKey,
  loadKeyFile,
  parseKeyFile,
  parsePublicKey,
  saveKeyFile,
} from '../../src/crypto/keys.js';
import { open, seal } from '../../src/crypto/seal.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { asyncCodeOf, codeOf, hex } from './helpers.js';

const dir = await mkdtemp(join(tmpdir(), 'postern-keys-'));
let n = 0;
const fresh = (): string => join(dir, `key-${n++}.json`);

test('generateKeyPair: 32-byte halves that belong together, different every time', () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  assert.is(a.publicKey.length, 32);
  assert.is(a.secretKey.length, 32);
  assert.is(hex(a.publicKey), hex(nacl.scalarMult.base(a.secretKey)));
  assert.is.not(hex(a.secretKey), hex(b.secretKey));
  assert.is(hex(keyPairFromSecretKey(a.secretKey).publicKey), hex(a.publicKey));
  assert.is(codeOf(() => keyPairFromSecretKey(new Uint8Array(31))), ErrorCode.INVALID_ARGUMENT);
});

test('public key text form round trips; base64url accepted; junk and small order refused', () => {
  const kp = generateKeyPair();
  const t = formatPublicKey(kp.publicKey);
  assert.is(t.length, 44);
  assert.is(hex(parsePublicKey(t)), hex(kp.publicKey));
  assert.is(hex(parsePublicKey(Buffer.from(kp.publicKey).toString('base64url'))), hex(kp.publicKey));
  for (const bad of ['', 'abc', `${t}A`, t.slice(0, 40), 42]) {
    assert.is(codeOf(() => parsePublicKey(bad as string)), ErrorCode.INVALID_ARGUMENT, String(bad));
  }
  assert.is(codeOf(() => parsePublicKey(formatPublicKey(new Uint8Array(32)))), ErrorCode.INVALID_ARGUMENT);
});

test('save then load: same keys, mode 0600, JSON with type and version', async () => {
  const kp = generateKeyPair();
  const path = fresh();
  await saveKeyFile(path, kp);
  assert.is((await stat(path)).mode & 0o777, 0o600);
  const doc = JSON.parse(await readFile(path, 'utf8'));
  assert.is(doc.type, 'postern-x25519-key');
  assert.is(doc.version, 1);
  const back = await loadKeyFile(path);
  assert.is(hex(back.publicKey), hex(kp.publicKey));
  assert.is(hex(back.secretKey), hex(kp.secretKey));
  // The loaded pair opens what was sealed to the saved one.
  const env = seal({ content: 'k', recipientPublicKey: kp.publicKey });
  assert.is(new TextDecoder().decode(open(env, back).content), 'k');
});

test('no overwrite unless asked; overwrite replaces atomically with mode 0600', async () => {
  const path = fresh();
  const first = generateKeyPair();
  await saveKeyFile(path, first);
  assert.is(await asyncCodeOf(saveKeyFile(path, generateKeyPair())), ErrorCode.KEY_FILE_EXISTS);
  assert.is(hex((await loadKeyFile(path)).secretKey), hex(first.secretKey), 'untouched');
  await chmod(path, 0o644);
  const second = generateKeyPair();
  await saveKeyFile(path, second, { overwrite: true });
  assert.is((await stat(path)).mode & 0o777, 0o600);
  assert.is(hex((await loadKeyFile(path)).secretKey), hex(second.secretKey));
});

test('overwrite onto something that cannot be replaced: the fs error, and no temporary file left behind', async () => {
  const sub = join(dir, `sub-${n++}`);
  await mkdir(join(sub, 'taken'), { recursive: true });
  await writeFile(join(sub, 'taken', 'x'), 'x'); // a non-empty directory cannot be renamed over
  const code = await asyncCodeOf(saveKeyFile(join(sub, 'taken'), generateKeyPair(), { overwrite: true }));
  assert.ok(['EISDIR', 'ENOTDIR', 'ENOTEMPTY', 'EEXIST'].includes(code), code);
  assert.equal(await readdir(sub), ['taken']);
  // Two overwrites at once both succeed (distinct temporary names) and leave one good file.
  const path = join(sub, 'race.json');
  await Promise.all([saveKeyFile(path, generateKeyPair(), { overwrite: true }), saveKeyFile(path, generateKeyPair(), { overwrite: true })]);
  await loadKeyFile(path);
  assert.equal((await readdir(sub)).sort(), ['race.json', 'taken']);
});

test('a symlink at the path is refused for writing (even dangling) and for reading', async () => {
  const target = fresh();
  const link = fresh();
  await symlink(target, link);
  assert.is(await asyncCodeOf(saveKeyFile(link, generateKeyPair())), ErrorCode.KEY_FILE_EXISTS);
  await saveKeyFile(target, generateKeyPair());
  assert.is(await asyncCodeOf(loadKeyFile(link)), ErrorCode.KEY_FILE_INSECURE);
  assert.is(await asyncCodeOf(loadKeyFile(dir)), ErrorCode.KEY_FILE_INSECURE);
  // A FIFO planted at the path is refused without blocking on it.
  const fifo = fresh();
  execFileSync('mkfifo', ['-m', '600', fifo]);
  assert.is(await asyncCodeOf(loadKeyFile(fifo)), ErrorCode.KEY_FILE_INSECURE);
});

test('load: missing file, group/other permission bits, bad contents', async () => {
  assert.is(await asyncCodeOf(loadKeyFile(join(dir, 'nope.json'))), ErrorCode.KEY_FILE_NOT_FOUND);
  const path = fresh();
  await saveKeyFile(path, generateKeyPair());
  // A path through a regular file (ENOTDIR) is as missing as any.
  assert.is(await asyncCodeOf(loadKeyFile(join(path, 'key.json'))), ErrorCode.KEY_FILE_NOT_FOUND);
  for (const mode of [0o640, 0o604, 0o644, 0o660, 0o700 | 0o020]) {
    await chmod(path, mode);
    assert.is(await asyncCodeOf(loadKeyFile(path)), ErrorCode.KEY_FILE_INSECURE, mode.toString(8));
  }
  await chmod(path, 0o400);
  await loadKeyFile(path); // read-only for the owner is fine
  const big = fresh();
  await writeFile(big, ' '.repeat(5000), { mode: 0o600 });
  assert.is(await asyncCodeOf(loadKeyFile(big)), ErrorCode.BAD_KEY_FILE);
});

test('parseKeyFile: every way the JSON can be wrong is BAD_KEY_FILE', () => {
  const kp = generateKeyPair();
  const other = generateKeyPair();
  const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');
  const good = { type: 'postern-x25519-key', version: 1, publicKey: b64(kp.publicKey), secretKey: b64(kp.secretKey) };
  assert.is(hex(parseKeyFile(JSON.stringify({ ...good, comment: 'extra fields are ignored' })).secretKey), hex(kp.secretKey));
  const bad: unknown[] = [
    'not json',
    '[]',
    'null',
    '"str"',
    { ...good, type: 'ssh-rsa' },
    { ...good, version: 2 },
    { ...good, publicKey: undefined },
    { ...good, secretKey: b64(kp.secretKey.subarray(0, 31)) },
    { ...good, secretKey: 12 },
    { ...good, publicKey: b64(other.publicKey) },
    { ...good, publicKey: Buffer.from(kp.publicKey).toString('base64url') },
  ];
  for (const b of bad) {
    const t = typeof b === 'string' ? b : JSON.stringify(b);
    assert.is(codeOf(() => parseKeyFile(t)), ErrorCode.BAD_KEY_FILE, t);
  }
  assert.is(codeOf(() => parseKeyFile('x'.repeat(5000))), ErrorCode.BAD_KEY_FILE);
});

test('saveKeyFile refuses a bad key pair and reports a missing directory as the fs error', async () => {
  assert.is(await asyncCodeOf(saveKeyFile(fresh(), { publicKey: new Uint8Array(32), secretKey: new Uint8Array(2) })), ErrorCode.INVALID_ARGUMENT);
  const a = generateKeyPair();
  const path = fresh();
  assert.is(await asyncCodeOf(saveKeyFile(path, { publicKey: a.publicKey, secretKey: generateKeyPair().secretKey })), ErrorCode.INVALID_ARGUMENT);
  assert.is(await asyncCodeOf(loadKeyFile(path)), ErrorCode.KEY_FILE_NOT_FOUND, 'nothing written');
  assert.is(await asyncCodeOf(saveKeyFile(join(dir, 'no', 'such', 'dir.json'), generateKeyPair())), 'ENOENT');
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test.run();
