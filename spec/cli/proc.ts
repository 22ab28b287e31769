/**
 * Helpers of the CLI tests: children of the compiled dist/bin/postern.js with their output
 * split into lines, bounded waits, and starters for a router and a listener. Every child is
 * tracked so a suite's teardown (killAll) ends them all.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';

export const BIN = fileURLToPath(new URL('../../bin/postern.js', import.meta.url));
export const WAIT = 10_000;

export const children = new Set<ChildProcessWithoutNullStreams>();
// Last resort if the runner dies between tests: no child outlives it.
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** A child process with its output split into lines as they arrive. */
export class Proc {
  readonly child: ChildProcessWithoutNullStreams;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, POSTERN_ROUTER: undefined, ...env },
      stdio: 'pipe',
    });
    children.add(this.child);
    lines(this.child.stdout, (l) => this.push(this.stdout, l));
    lines(this.child.stderr, (l) => this.push(this.stderr, l));
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        children.delete(this.child);
        this.notify();
        resolve(code ?? (signal === null ? null : -1));
      });
    });
  }

  private push(into: string[], line: string): void {
    into.push(line);
    this.notify();
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves with the first stdout line (from index `from`) matching `pred`; rejects after `ms`. */
  async line(pred: (line: string) => boolean, from = 0, ms = WAIT): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.stdout.slice(from).find(pred);
      if (found !== undefined) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`process exited before printing the line; stdout:\n${this.stdout.join('\n')}\nstderr:\n${this.stderr.join('\n')}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a line; stdout:\n${this.stdout.join('\n')}\nstderr:\n${this.stderr.join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The exit status, or a rejection after `ms`. */
  exit(ms = WAIT): Promise<number | null> {
    return within(this.exited, ms, 'process exit');
  }
}

export function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    rest += chunk;
    let i: number;
    while ((i = rest.indexOf('\n')) !== -1) {
      onLine(rest.slice(0, i));
      rest = rest.slice(i + 1);
    }
  });
  stream.on('end', () => {
    if (rest !== '') onLine(rest);
  });
}

export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Runs the CLI to completion: exit status, stdout and stderr. */
export async function run(args: string[], options: { stdin?: Uint8Array; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = new Proc(args, options.env);
  if (options.stdin !== undefined) p.child.stdin.end(options.stdin);
  else p.child.stdin.end();
  const code = await p.exit();
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

export interface RouterProc {
  proc: Proc;
  port: number;
  routerId: number;
  address: string;
}

/** Starts `postern router` on 127.0.0.1 and a free port; resolves once it is listening. */
export async function startRouter(extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RouterProc> {
  const proc = new Proc(['router', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json', ...extra], env);
  const line = await proc.line((l) => l.includes('"listening"'));
  const rec = JSON.parse(line) as { msg: string; port: number; router: string };
  assert.is(rec.msg, 'listening');
  assert.ok(rec.port > 0);
  return { proc, port: rec.port, routerId: parseInt(rec.router, 16), address: `127.0.0.1:${rec.port}` };
}

/** Starts `postern listen --json` and resolves with its ID once registered. */
export async function startListener(router: RouterProc, extra: string[] = []): Promise<{ proc: Proc; id: string }> {
  const proc = new Proc(['listen', '--router', router.address, '--json', ...extra]);
  const first = await proc.line(() => true);
  const rec = JSON.parse(first) as { type: string; id: string };
  assert.is(rec.type, 'registered');
  assert.match(rec.id, /^[0-9a-f]{32}$/);
  return { proc, id: rec.id };
}

export async function killAll(): Promise<void> {
  const all = [...children];
  for (const c of all) c.kill('SIGTERM');
  await Promise.all(
    all.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => {
            c.kill('SIGKILL');
            resolve();
          }, 3000);
          c.once('close', () => {
            clearTimeout(t);
            resolve();
          });
        }),
    ),
  );
}

