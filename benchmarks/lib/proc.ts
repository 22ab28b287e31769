import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

/**
 * Child processes of the benchmark (router, plain forwarder, nats-server) and what the
 * benchmark reads about them from /proc. Every child is killed when this process exits,
 * and every child watches its stdin so it also goes when this process dies unannounced.
 */

const children = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** True when `taskset` exists and there are at least two cores to split. */
export function canPin(): boolean {
  return cpus().length >= 2 && which('taskset') !== null;
}

/** The absolute path of `cmd` on PATH, or null. */
export function which(cmd: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir !== '' && existsSync(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return null;
}

/** Pins this process (all its threads) to `core`; returns whether it worked. */
export function pinSelf(core: number): boolean {
  if (!canPin()) return false;
  try {
    execFileSync('taskset', ['-a', '-cp', String(core), String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A running server child and the port it listens on. */
export interface ServerChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** What `ready` matched (all groups), when the child announced itself; group 1 is {@link port}. */
  readonly announced: readonly string[];
  /** Asks the child to stop (SIGTERM; it closes cleanly, which writes a CPU profile when asked for) and waits. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Options of {@link startChild}. */
export interface StartOptions {
  /** Pin the child to this core with taskset when possible. */
  core?: number;
  /** How the child says it is ready: a regexp on its stdout whose group 1 is the port. */
  ready?: RegExp;
  /** The port, when the child is told it instead of announcing it. */
  port?: number;
  /** Extra environment. */
  env?: Record<string, string>;
  /** Ms to wait for readiness. Default 15000. */
  timeoutMs?: number;
  /** Where the child's stderr goes: inherited (default) or dropped. */
  stderr?: 'inherit' | 'ignore';
}

/**
 * Starts `cmd args` (pinned when asked) and waits until it is ready: until its stdout matches
 * `ready`, or until `port` accepts a connection.
 */
export async function startChild(cmd: string, args: string[], options: StartOptions = {}): Promise<ServerChild> {
  hookExit();
  const pin = options.core !== undefined && canPin();
  const argv = pin ? ['-c', String(options.core), cmd, ...args] : args;
  const child = spawn(pin ? 'taskset' : cmd, argv, {
    stdio: ['pipe', 'pipe', options.stderr ?? 'inherit'],
    env: { ...process.env, ...options.env },
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const timeoutMs = options.timeoutMs ?? 15_000;
  let announced: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready after ${timeoutMs} ms: ${out.slice(-500)}`)), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited (${code ?? sig}) before it was ready: ${out.slice(-500)}`));
    });
    child.stdout!.on('data', (d: Buffer) => {
      if (options.ready === undefined) return;
      out += d.toString();
      const m = options.ready.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        announced = [...m];
        resolve(Number(m[1]));
      }
    });
    if (options.ready === undefined && options.port !== undefined) {
      const p = options.port;
      void waitForPort(p, timeoutMs).then(
        () => {
          clearTimeout(timer);
          resolve(p);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err as Error);
        },
      );
    }
  });
  child.removeAllListeners('exit');
  child.on('exit', () => children.delete(child));
  child.stdout!.resume();
  return {
    child,
    pid: child.pid!,
    port,
    announced,
    stop: (ms = 10_000) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill('SIGKILL'), ms);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        // taskset execs the command, so the pid is the server's own.
        child.kill('SIGTERM');
      }),
  };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} never opened`);
    await sleep(50);
  }
}

/** A free TCP port on 127.0.0.1 (for children that must be told their port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

/** Path of a compiled sibling script, e.g. `script('router-process.js')`. */
export function script(name: string): string {
  return fileURLToPath(new URL(`../${name}`, import.meta.url));
}

/** Resident set size of process `pid` in bytes (VmRSS of /proc/<pid>/status). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) * 1024;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU time of process `pid` in ms (/proc/<pid>/stat), all threads. */
export function cpuMsOf(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces; fields resume after the last ')'.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** The soft limit on open files of process `pid`. */
export function openFileLimit(pid: number | 'self' = 'self'): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m === null || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
