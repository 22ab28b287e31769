/**
 * What the namespace tests share (spec/net/firewall.test.ts started the pattern;
 * spec/net/transports.test.ts uses these): finding root's tools, running a command with a
 * bounded wait, and helper processes inside a namespace that talk JSON lines.
 */
import { execFile, execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createInterface } from 'node:readline';
import { delimiter, join } from 'node:path';

/** Absolute path of `cmd` on PATH or in the sbin folders (root's tools may be off a user PATH). */
export function which(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (d === '') continue;
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Linux, root, `ip` and `nft`: the tools, or why the namespace tests cannot run. */
export function prerequisites(): { ip: string; nft: string } | string {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root';
  const ip = which('ip');
  if (ip === undefined) return 'ip not found (iproute2; spec/net/deps.sh installs it)';
  const nft = which('nft');
  if (nft === undefined) return 'nft not found (nftables; spec/net/deps.sh installs it)';
  return { ip, nft };
}

/** Runs a command, every wait bounded; rejects with its stderr on failure. */

export function run(file: string, args: string[], input?: string, timeout = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    child.stdin?.on('error', () => undefined); // EPIPE when it exits without reading: its exit status tells
    child.stdin?.end(input);
  });
}

export type Line = Record<string, unknown>;

/** A helper script running in a namespace, talking JSON lines. */
export class Helper {
  readonly lines: Line[] = [];
  private readonly child: ChildProcessWithoutNullStreams;
  private stderr = '';
  private exit: string | null = null;
  private readonly wakers = new Set<() => void>();
  private tags = 0;

  constructor(
    readonly label: string,
    ip: string,
    ns: string,
    script: string,
    args: string[],
  ) {
    this.child = spawn(ip, ['netns', 'exec', ns, process.execPath, script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.on('error', (err) => this.ended(`spawn failed: ${err.message}`));
    this.child.on('exit', (code, signal) => this.ended(`exited with ${signal ?? code}`));
    this.child.stdin.on('error', () => undefined); // EPIPE once it has exited: reported by wait()
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-2000);
    });
    createInterface({ input: this.child.stdout }).on('line', (text) => {
      try {
        this.lines.push(JSON.parse(text) as Line);
      } catch {
        this.lines.push({ unparsed: text });
      }
      this.wake();
    });
  }

  private ended(why: string): void {
    this.exit ??= why;
    this.wake();
  }

  private wake(): void {
    for (const w of this.wakers) w();
  }

  /** The first line (from the start) that satisfies `pred`, waiting at most `ms`. */
  wait(pred: (l: Line) => boolean, ms: number, what: string): Promise<Line> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.lines.find(pred);
        const fatal = this.lines.find((l) => 'fatal' in l || 'error' in l);
        if (hit !== undefined) finish(() => resolve(hit));
        else if (fatal !== undefined) finish(() => reject(this.failure(what, `said ${JSON.stringify(fatal)}`)));
        else if (this.exit !== null) finish(() => reject(this.failure(what, this.exit!)));
      };
      const finish = (f: () => void): void => {
        clearTimeout(timer);
        this.wakers.delete(check);
        f();
      };
      const timer = setTimeout(() => finish(() => reject(this.failure(what, `no answer in ${ms} ms`))), ms);
      this.wakers.add(check);
      check();
    });
  }

  /** Sends a command and waits for the line that answers it. */
  request(cmd: Line, ms: number, what: string): Promise<Line> {
    const tag = ++this.tags;
    this.child.stdin.write(JSON.stringify({ ...cmd, tag }) + '\n');
    return this.wait((l) => l.tag === tag, ms, what);
  }

  private failure(what: string, why: string): Error {
    const tail = this.stderr.trim() === '' ? '' : `\n--- ${this.label} stderr ---\n${this.stderr.trim()}`;
    return new Error(`${this.label}: waiting for ${what}: ${why}${tail}`);
  }

  /** Ends its stdin (it then shuts down); SIGKILL after 3 s. */
  async stop(): Promise<void> {
    if (this.exit !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill(), 3000);
    await gone;
    clearTimeout(timer);
  }

  /** SIGKILL, by pid (ip netns exec execs node, so the pid is the helper's). */
  kill(): void {
    if (this.exit === null && this.child.pid !== undefined) this.child.kill('SIGKILL');
  }
}


/** A daemon (tinyproxy, danted, nginx) run in the foreground inside a namespace. */
export class Daemon {
  private readonly child: ReturnType<typeof spawn>;
  private output = '';
  exit: string | null = null;

  constructor(
    readonly label: string,
    ip: string,
    ns: string,
    argv: string[],
  ) {
    this.child = spawn(ip, ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (s: Buffer): void => {
      this.output = (this.output + s.toString()).slice(-3000);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.child.on('error', (err) => (this.exit ??= `spawn failed: ${err.message}`));
    this.child.on('exit', (code, signal) => (this.exit ??= `exited with ${signal ?? code}`));
  }

  /** What it printed last, for failure messages. */
  get log(): string {
    return this.output.trim();
  }

  /** SIGTERM, then SIGKILL after 2 s. */
  async stop(): Promise<void> {
    if (this.exit !== null || this.child.pid === undefined) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(t);
  }

  kill(): void {
    if (this.exit === null) this.child.kill('SIGKILL');
  }
}

/** Waits until something listens on TCP `port` inside `ns` (by `ss`), at most `ms`. */
export async function waitListening(ip: string, ns: string, port: number, ms: number, what: string, daemon?: Daemon): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const out = await run(ip, ['netns', 'exec', ns, 'ss', '-Hltn']).catch(() => '');
    if (new RegExp(`:${port}\\s`).test(out)) return;
    if (daemon?.exit != null) throw new Error(`${what}: ${daemon.exit}\n${daemon.log}`);
    if (Date.now() > end) throw new Error(`${what}: nothing listening on ${port} within ${ms} ms${daemon ? `\n${daemon.log}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True while process `pid` exists (EPERM: it exists, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes the namespaces named `<prefix><pid>-...` of this run, and those of earlier runs
 * whose process is gone (a crashed or killed run); their veths go with them. Synchronous so
 * it can run from an 'exit' handler too.
 */
export function removeNamespaces(ip: string, prefix: string): void {
  let names: string[];
  try {
    names = execFileSync(ip, ['netns', 'list'], { encoding: 'utf8', timeout: 5000 })
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '');
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-/.exec(name.slice(prefix.length));
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && alive(pid)) continue; // another run in progress
    try {
      execFileSync(ip, ['netns', 'delete', name], { stdio: 'ignore', timeout: 5000 });
    } catch {
      // already gone
    }
  }
}

/**
 * Runs `onExit` (kill this run's processes, remove its namespaces) if the process exits or
 * is interrupted before the tests clean up themselves. Returns the undo, for that clean-up.
 */
export function cleanUpOnExit(onExit: () => void): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    onExit();
    process.kill(process.pid, signal);
  };
  process.on('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
