/**
 * README.md's library example runs as written: the code block under "## Library" is run in
 * a child process that imports `postern` by name (Node resolves the package's own name
 * through package.json "exports"), with the port swapped for a free one.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = new URL('../../../', import.meta.url);

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

test('the library example in README.md runs and prints what its comment says', async () => {
  const readme = readFileSync(new URL('README.md', ROOT), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Library'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'a ```ts block under ## Library');
  const code = m![1]!;
  assert.match(code, /from 'postern'/);
  assert.match(code, /\/\/ true 'hello'/);

  const port = await freePort();
  // The snippet is plain JavaScript apart from the fence; only the port changes.
  const source = code.replaceAll('7447', String(port));
  const file = new URL(`dist/spec/cli/readme-example-${process.pid}.mjs`, ROOT);
  writeFileSync(file, source);
  try {
    // console.log colours `true` when FORCE_COLOR is set (npm and CI set it): ask for none.
    const env = { ...process.env, FORCE_COLOR: undefined, NO_COLOR: '1', NODE_DISABLE_COLORS: '1' };
    const child = spawn(process.execPath, [fileURLToPath(file)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`README example still running after 10 s; stdout ${out}; stderr ${err}`));
      }, 10_000);
      child.once('close', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    assert.is(code, 0, err);
    assert.is(out, 'true hello\n', err);
  } finally {
    rmSync(file, { force: true });
  }
});

test.run();
