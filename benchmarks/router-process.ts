/**
 * A postern router in a process of its own, for the benchmarks: `node router-process.js
 * '<json options>'`. Prints `READY <port>` on stdout once listening. Stops cleanly on SIGTERM
 * (so `node --cpu-prof` writes its profile) and exits when its parent goes (stdin closes).
 */

interface RouterLike {
  listen(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type RouterCtor = new (options: Record<string, unknown>) => RouterLike;

const options = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
// Loaded by path so this file builds even while the router is being written.
const mod = (await import(new URL('../src/router/router.js', import.meta.url).href)) as { Router: RouterCtor };
// The router's own logger at info, writing to stdout (a pipe the parent drains) as an
// operator runs it, so the cost of per-connection log lines (summarised by the router's log
// limit) is in every figure. Warnings and errors also go to stderr when BENCH_ROUTER_LOG=1
// (errors always).
const log = (await import(new URL('../src/net/log.js', import.meta.url).href)) as { createLogger(o: { level: string }): Record<'debug' | 'info' | 'warn' | 'error', (msg: string, fields?: unknown) => void> };
const base = log.createLogger({ level: 'info' });
const logger = {
  debug: base.debug,
  info: base.info,
  warn(msg: string, fields?: unknown) {
    base.warn(msg, fields);
    if (process.env['BENCH_ROUTER_LOG'] === '1') process.stderr.write(`router warn: ${msg} ${JSON.stringify(fields ?? {})}\n`);
  },
  error(msg: string, fields?: unknown) {
    base.error(msg, fields);
    process.stderr.write(`router error: ${msg} ${JSON.stringify(fields ?? {})}\n`);
  },
};
const router = new mod.Router({ host: '127.0.0.1', port: 0, ...options, logger });
const addr = await router.listen();
process.stdout.write(`READY ${addr.port}\n`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  const t = setTimeout(() => process.exit(0), 3000);
  t.unref();
  try {
    await router.close();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.on('error', () => void stop());
process.stdin.resume();
