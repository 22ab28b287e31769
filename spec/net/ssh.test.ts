/**
 * ssh to a host that accepts no inbound connection, for real, in network
 * namespaces:
 *
 *      S 10.79.1.2 ──veth── 10.79.1.1  R  10.79.2.1 ──veth── C 10.79.2.2
 *      sshd on 127.0.0.1:2222             postern router        ssh client
 *      postern expose                     (forwards IP)         ProxyCommand=postern connect
 *      nftables: no new inbound connection
 *
 * S runs sshd (its own config, host key and authorized key, all generated here) and
 * `postern expose --to 127.0.0.1:2222`; C runs `ssh -o ProxyCommand="postern connect <id>"`
 * and must get the output of a command run by sshd, while a direct TCP connection from C to
 * S is dropped by S's firewall.
 *
 * Uses only 10.79.0.0/16 and namespaces named `ps-<pid>-*`; removes them on exit (also those
 * of earlier runs whose process is gone). Needs Linux, root, ip, nft, sshd, ssh and
 * ssh-keygen (spec/net/deps.sh installs them); without one it registers one test named
 * "skipped: <reason>".
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanUpOnExit, removeNamespaces, which } from './netns.js';

const RUN = `ps-${process.pid}-`;
const NS = { r: `${RUN}r`, s: `${RUN}s`, c: `${RUN}c` };
const SSH_PORT = 2222;
const TABLE = 'postern_ssh';
const CLI = fileURLToPath(new URL('../../bin/postern.js', import.meta.url));


type Tools = Record<'ip' | 'nft' | 'sshd' | 'ssh' | 'sshKeygen', string>;

function prerequisites(): Tools | string {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root';
  const found: Partial<Tools> = {};
  for (const [k, cmd, pkg] of [
    ['ip', 'ip', 'iproute2'],
    ['nft', 'nft', 'nftables'],
    ['sshd', 'sshd', 'openssh-server'],
    ['ssh', 'ssh', 'openssh-client'],
    ['sshKeygen', 'ssh-keygen', 'openssh-client'],
  ] as const) {
    const p = which(cmd);
    if (p === undefined) return `${cmd} not found (${pkg}; spec/net/deps.sh installs it)`;
    found[k] = p;
  }
  return found as Tools;
}

function run(file: string, args: string[], opts: { input?: string; timeout?: number } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: opts.timeout ?? 10_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ stdout, stderr, code });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input);
  });
}

async function must(file: string, args: string[], input?: string): Promise<string> {
  const r = await run(file, args, { input });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}



const tools = prerequisites();

if (typeof tools === 'string') {
  console.log(`ssh test skipped: ${tools}`);
  test(`skipped: ${tools}`, () => undefined);
} else {
  const t = tools;
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'postern-ssh-'));
  const onExit = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    removeNamespaces(t.ip, 'ps-');
    rmSync(dir, { recursive: true, force: true });
  };
  let release = (): void => undefined;

  /** A long-running process in a namespace; its output is collected. */
  function spawnIn(ns: string, file: string, args: string[]): { child: ChildProcess; out: () => string } {
    const child = spawn(t.ip, ['netns', 'exec', ns, file, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    let text = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (text = (text + s).slice(-8000)));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (text = (text + s).slice(-8000)));
    child.on('error', () => undefined);
    return { child, out: () => text };
  }

  async function waitFor(what: string, pred: () => boolean, ms: number, log: () => string): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  test.before(async () => {
    removeNamespaces(t.ip, 'ps-');
    release = cleanUpOnExit(onExit);
  });

  test.after(() => {
    onExit();
    release();
  });

  test('ssh through postern to a host that accepts no inbound connection', async () => {
    const ip = (...args: string[]): Promise<string> => must(t.ip, args);
    for (const ns of Object.values(NS)) await ip('netns', 'add', ns);
    for (const [ns, peer, sub] of [
      [NS.s, 's', 1],
      [NS.c, 'c', 2],
    ] as const) {
      await ip('link', 'add', 'name', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', peer, 'netns', NS.r);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'address', 'add', `10.79.${sub}.2/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', ns, 'route', 'add', 'default', 'via', `10.79.${sub}.1`);
      await ip('-n', NS.r, 'address', 'add', `10.79.${sub}.1/24`, 'dev', peer);
      await ip('-n', NS.r, 'link', 'set', peer, 'up');
    }
    await ip('-n', NS.r, 'link', 'set', 'lo', 'up');
    await must(t.ip, ['netns', 'exec', NS.r, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    // S: no new inbound connection from anywhere but loopback.
    await must(t.ip, ['netns', 'exec', NS.s, t.nft, '-f', '-'], `table inet ${TABLE} {
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    counter drop
  }
}
`);

    // Keys and sshd config, all in this run's directory.
    await must(t.sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
    await must(t.sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')), { mode: 0o600 });
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `ListenAddress 0.0.0.0:${SSH_PORT}`,
        `HostKey ${join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin yes',
        'StrictModes no',
        'UsePAM no',
        '',
      ].join('\n'),
    );
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory

    const router = spawnIn(NS.r, process.execPath, [CLI, 'router', '-H', '0.0.0.0', '-p', '7447']);
    const sshd = spawnIn(NS.s, t.sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')]);
    // expose starts before the router may be up: it waits for it.
    const expose = spawnIn(NS.s, process.execPath, [CLI, 'expose', '--to', `127.0.0.1:${SSH_PORT}`, '-r', '10.79.1.1:7447']);
    const all = (): string => `--- router ---\n${router.out()}\n--- sshd ---\n${sshd.out()}\n--- expose ---\n${expose.out()}`;
    await waitFor('expose to print its ID', () => /^id [0-9a-f]{32}$/m.test(expose.out()), 15_000, all);
    const id = /^id ([0-9a-f]{32})$/m.exec(expose.out())![1]!;

    // A direct connection from C to sshd on S is dropped by S's firewall.
    const direct = await run(t.ip, [
      'netns', 'exec', NS.c, process.execPath, '-e',
      `const s=require('net').connect(${SSH_PORT},'10.79.1.2');s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(1)});setTimeout(()=>{console.log('timeout');process.exit(2)},1000)`,
    ]);
    assert.is(direct.stdout.trim(), 'timeout', 'C cannot reach S directly');

    const proxy = `${process.execPath} ${CLI} connect ${id} -r 10.79.2.1:7447`;
    const sshArgs = [
      'netns', 'exec', NS.c, t.ssh, '-F', '/dev/null', '-i', join(dir, 'client_key'), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=15',
      '-o', `ProxyCommand=${proxy}`, 'root@exposed', 'echo hello-from-sshd; uname -s; head -c 100000 /dev/zero | wc -c',
    ];
    const r = await run(t.ip, sshArgs, { timeout: 30_000 });
    assert.is(r.code, 0, `ssh exited ${r.code}: ${r.stderr}\n${all()}`);
    assert.equal(r.stdout.trim().split('\n'), ['hello-from-sshd', 'Linux', '100000']);
    assert.match(expose.out(), /stream from [0-9a-f]{32}/);

    // A second session, stdin carried the other way: 300 KB through ssh's stdin, counted by sshd's side.
    const r2 = await run(t.ip, [...sshArgs.slice(0, -1), 'wc -c'], { input: 'x'.repeat(300_000), timeout: 30_000 });
    assert.is(r2.code, 0, r2.stderr);
    assert.is(r2.stdout.trim(), '300000');

    // A dead peer: connect to an ID nobody holds fails with a code, not a hang.
    const dead = await run(t.ip, ['netns', 'exec', NS.c, process.execPath, CLI, 'connect', `${id.slice(0, 8)}${'0'.repeat(24)}`, '-r', '10.79.2.1:7447'], { timeout: 20_000 });
    assert.is(dead.code, 3, dead.stderr);
    assert.match(dead.stderr, /POSTERN_ERR_UNKNOWN_DESTINATION/);
  });
}

test.run();
