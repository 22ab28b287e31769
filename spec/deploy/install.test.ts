/**
 * The documented install, as far as this machine allows: the
 * package is packed (`npm pack`), installed from the tarball into a temporary global
 * prefix with no registry (`npm install -g --offline`: the runtime dependencies travel in
 * the tarball), `postern systemd-unit` writes the unit, `systemd-analyze verify` checks it,
 * and the unit's ExecStart command line runs as an unprivileged user (nobody, as
 * DynamicUser would) with the shipped example config: it must listen and register an
 * agent. It runs with a /proc of its own mounted as ProtectProc=invisible and
 * ProcSubset=pid mount it, and, when strace is installed, traced: every system call must be
 * in the unit's SystemCallFilter. systemd itself is not PID 1 here, so the unit is not started; a step
 * this machine cannot run says why and is skipped, the others still run.
 *
 * The package tests (require() from CommonJS, source maps, .d.ts without @internal,
 * repository) use the same installed copy.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../../src/index.js';
import { lines, within } from '../cli/proc.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const S = suite('deploy: install from the packed tarball and run the unit');

let dir = '';
let prefix = '';
let pkg = '';
let tarball = '';
// uvu reports a throwing before() hook by not running the suite's tests, with no failure
// line and exit 0: keep its error and fail every test with it instead.
let setupError: unknown = null;

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, encoding: 'utf8', timeout: 120_000, env: opts.env ?? process.env });
  assert.is(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

S.before(() => {
  try {
    setup();
  } catch (err) {
    setupError = err;
  }
});

S.before.each(() => {
  if (setupError !== null) throw setupError;
});

function setup(): void {
  dir = mkdtempSync(join(tmpdir(), 'postern-install-'));
  // The service's user must reach every file: mkdtemp makes 0700.
  chmodSync(dir, 0o755);
  // Pack what npm test just built (no prepare run: the build is already in dist/).
  const name = sh('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir]).trim().split('\n').pop()!;
  tarball = join(dir, name);
  prefix = join(dir, 'prefix');
  // --offline with an empty cache, as on a server with no registry: the required
  // dependencies are bundled in the tarball; the optional sodium-native is skipped (tweetnacl
  // stands in).
  sh('npm', ['install', '-g', '--offline', '--cache', join(dir, 'npm-cache'), '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', prefix, tarball]);
  pkg = join(prefix, 'lib', 'node_modules', 'postern');
}

S.after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

S('the package ships the unit, the example config and the CLI; installed globally, postern runs', () => {
  for (const f of ['deploy/postern-router.service', 'example.json', 'dist/bin/postern.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'README.md']) {
    assert.ok(existsSync(join(pkg, f)), `missing ${f}`);
  }
  assert.match(sh(join(prefix, 'bin', 'postern'), ['--version']), /^\d+\.\d+\.\d+/);
});

/** The first ExecStart= of a unit, split into words (the paths here hold no spaces). */
function execStart(unit: string): string[] {
  const m = /^ExecStart=(.*)$/m.exec(unit);
  assert.ok(m, 'an ExecStart= line');
  return m![1]!.trim().split(/\s+/);
}

/** system call names of each group `systemd-analyze syscall-filter` lists, groups expanded. */
function syscallGroup(name: string): Set<string> {
  const text = sh('systemd-analyze', ['syscall-filter', '--no-pager']);
  const groups = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('@')) groups.set(line.trim(), (current = []));
    else if (current !== null && /^\s+[@a-z0-9_-]+$/.test(line)) current.push(line.trim());
  }
  const out = new Set<string>();
  const add = (g: string): void => {
    for (const e of groups.get(g) ?? []) {
      if (e.startsWith('@')) add(e);
      else out.add(e);
    }
  };
  add(name);
  assert.ok(out.size > 0, `${name} is a group systemd knows`);
  return out;
}

/** The node process among `pid` and its descendants (the router under unshare, setpriv, strace). */
function routerPid(pid: number): number {
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    try {
      if (readlinkSync(`/proc/${p}/exe`) === process.execPath) return p;
      queue.push(...readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // gone meanwhile
    }
  }
  return pid;
}

function get(port: number, path: string): Promise<{ type: string; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ type: String(res.headers['content-type']), body }));
        })
        .on('error', reject);
    }),
    10_000,
    `GET ${path}`,
  );
}

S('postern systemd-unit gives a unit systemd accepts, whose ExecStart runs as nobody, listens and registers an agent', async () => {
  const etc = join(dir, 'etc');
  mkdirSync(etc, { mode: 0o755 });
  const config = join(etc, 'router.json');
  const example = JSON.parse(readFileSync(join(pkg, 'example.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(config, JSON.stringify({ ...example, host: '127.0.0.1', port: 0, metrics: { host: '127.0.0.1', port: 0 } }), { mode: 0o644 });

  const unit = sh(join(prefix, 'bin', 'postern'), ['systemd-unit', '--config', config]);
  const argv = execStart(unit);
  assert.is(argv[0], process.execPath, 'node by absolute path, not /usr/bin/env');
  assert.is(argv[1], join(pkg, 'dist', 'bin', 'postern.js'));
  assert.equal(argv.slice(2), ['router', '--config', config]);
  for (const line of ['DynamicUser=yes', 'ProtectHome=yes', 'SystemCallFilter=@system-service', 'ProtectProc=invisible', 'ProcSubset=pid']) {
    assert.ok(unit.split('\n').includes(line), `unit lacks ${line}`);
  }
  const unitFile = join(dir, 'postern-router.service');
  writeFileSync(unitFile, unit);
  if (has('systemd-analyze')) {
    const r = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.not.match(r.stderr, /Unknown (key|section)|Failed|invalid|not executable/i);
  } else console.log('  systemd-analyze not installed: the unit is not verified');

  // Run the ExecStart line as systemd would: an unprivileged user, no home, no groups.
  const root = process.getuid?.() === 0;
  if (!root || !has('setpriv')) console.log('  not root or no setpriv: ExecStart runs as the current user, not nobody');
  const trace = has('strace') ? join(dir, 'strace.out') : null;
  if (trace === null) console.log('  strace not installed: system calls and /proc reads are not checked against the unit');
  else {
    writeFileSync(trace, '');
    chmodSync(trace, 0o666); // strace runs as nobody
  }
  // ProtectProc=invisible and ProcSubset=pid, as systemd sets them up: a private /proc
  // mounted with hidepid=invisible,subset=pid, in a mount and PID namespace of its own.
  const ownProc = root && has('unshare');
  if (!ownProc) console.log('  not root or no unshare: ExecStart runs with the full /proc, not ProcSubset=pid');
  const cmd = [
    ...(ownProc ? ['unshare', '--mount', '--pid', '--fork', '--kill-child', 'sh', '-c', 'mount -t proc -o hidepid=invisible,subset=pid proc /proc && exec "$@"', 'sh'] : []),
    ...(root && has('setpriv') ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--'] : []),
    ...(trace !== null ? ['strace', '-f', '-qq', '-o', trace] : []),
    ...argv,
  ];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C' } });
  const out: string[] = [];
  let err = '';
  let notify: () => void = () => undefined;
  lines(child.stdout, (l) => {
    out.push(l);
    notify();
  });
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) =>
    child.once('close', (code) => {
      r(code);
      notify();
    }),
  );
  const line = (re: RegExp): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no line matching ${re} in 20 s; stdout ${out.join('\n')}; stderr ${err}`)), 20_000);
      const look = (): void => {
        const l = out.find((x) => re.test(x));
        if (l === undefined && child.exitCode !== null) reject(new Error(`exited ${child.exitCode}; stdout ${out.join('\n')}; stderr ${err}`));
        if (l === undefined) return;
        clearTimeout(t);
        resolve(l);
      };
      notify = look;
      look();
    });
  try {
    const listening = await line(/INFO\s+listening /);
    const port = Number(/ port=(\d+)/.exec(listening)![1]);
    const metricsPort = Number(/ port=(\d+)/.exec(await line(/metrics listening/))![1]);
    const agent = await connect({ router: { host: '127.0.0.1', port }, reconnect: false, connectTimeout: 10_000 });
    assert.match(agent.id, /^[0-9a-f]{32}$/);
    const metrics = (await get(metricsPort, '/metrics')).body;
    assert.match(metrics, /\npostern_agents 1\n/);
    // process_* read /proc/self: still there under ProcSubset=pid.
    assert.match(metrics, /\nprocess_open_fds \d+\n/);
    await agent.close();
  } finally {
    // unshare, sh and strace may stand in between: signal the router itself.
    const pid = routerPid(child.pid!);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone; the exit status below says how
    }
  }
  assert.is(await within(exited, 20_000, 'router exit after SIGTERM'), 0, err);

  if (trace !== null) {
    // Every SystemCallFilter= line of the unit adds to what is allowed.
    const allowed = new Set<string>();
    for (const m of unit.matchAll(/^SystemCallFilter=(.*)$/gm)) for (const g of m[1]!.trim().split(/\s+/)) for (const c of g.startsWith('@') ? syscallGroup(g) : [g]) allowed.add(c);
    const used = new Set<string>();
    for (const l of readFileSync(trace, 'utf8').split('\n')) {
      const m = /^\d+\s+([a-z0-9_]+)\(/.exec(l);
      if (m === null) continue;
      used.add(m[1]!);
    }
    assert.ok(used.has('accept4') || used.has('accept'), 'the trace saw the router accept');
    assert.ok(allowed.has('accept4') && allowed.has('pkey_alloc'), 'SystemCallFilter=@system-service and @pkey');
    assert.equal([...used].filter((c) => !allowed.has(c)), [], 'system calls outside the unit\'s SystemCallFilter');

  }
});

S('require("postern") works from CommonJS (an exports "default" condition)', () => {
  const app = join(dir, 'cjs-app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  spawnSync('ln', ['-s', pkg, join(app, 'node_modules', 'postern')]);
  writeFileSync(join(app, 'main.cjs'), "const p = require('postern'); console.log(typeof p.connect, typeof p.Router, p.formatId(Buffer.alloc(16, 1)));\n");
  const r = spawnSync(process.execPath, [join(app, 'main.cjs')], { encoding: 'utf8', cwd: app });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, `function function ${'01'.repeat(16)}\n`);
});

S('source maps point only at files the package ships', () => {
  let maps = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(p);
      } else if (e.name.endsWith('.map')) {
        maps++;
        const map = JSON.parse(readFileSync(p, 'utf8')) as { sources: string[]; sourceRoot?: string };
        for (const s of map.sources) {
          const target = resolve(dirname(p), map.sourceRoot ?? '', s);
          assert.ok(existsSync(target) && statSync(target).isFile(), `${p} points at ${s}, not in the package`);
        }
      }
    }
  };
  walk(pkg);
  assert.ok(maps > 10, `${maps} maps checked`);
});

S('the .d.ts files hold no @internal members, and a TypeScript consumer compiles against them', () => {
  const dts = readFileSync(join(pkg, 'dist', 'src', 'router', 'router.d.ts'), 'utf8');
  assert.not.match(dts, /@internal/);
  const app = join(dir, 'ts-app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  spawnSync('ln', ['-s', pkg, join(app, 'node_modules', 'postern')]);
  writeFileSync(
    join(app, 'main.ts'),
    "import { connect, Router, type Agent, type RouterOptions } from 'postern';\nconst o: RouterOptions = { port: 0 };\nconst r = new Router(o);\nconst a: Promise<Agent> = connect({ router: '127.0.0.1:7447' });\nvoid r; void a;\n",
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] }, files: ['main.ts'] }),
  );
  writeFileSync(join(app, 'package.json'), '{"type":"module"}');
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stdout + r.stderr);
});

S('package.json names its repository', () => {
  const p = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { repository?: { type?: string; url?: string } };
  assert.ok(p.repository?.url !== undefined && p.repository.url !== '', 'repository.url');
});

S.run();
