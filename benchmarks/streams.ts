/**
 * Stream benchmarks: one stream's MB/s through a postern router next to
 * direct loopback TCP and a socat TCP relay (anchors, same run); 64 parallel streams;
 * request/reply round trips per second with p50/p99; and what a reader paused for a while
 * costs the other streams.
 *
 * The router and socat run in processes of their own; senders and receivers run in this
 * process for all three paths, so each path pays the same local costs and differs by what
 * sits in the middle. `node dist/benchmarks/streams.js [--quick] [--pause <ms>] [--mib <n>]`
 * prints a JSON result; `npm run bench` runs it as its `streams` section.
 *
 * @module
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { freePort, script, sleep, startChild, which, type ServerChild } from './lib/proc.js';
import { median } from './lib/stats.js';

/** Options of {@link streamsBench}. */
export interface StreamsBenchOptions {
  /** Bytes moved per throughput measurement, in MiB. */
  mib: number;
  /** Repeats of each throughput measurement (the median is reported). */
  repeats: number;
  /** How long the paused reader stays paused, in ms (30000 in a full run). */
  pauseMs: number;
  /** Duration of each request/reply measurement, in ms. */
  rpcMs: number;
  /** Called with progress lines. */
  progress?: (line: string) => void;
}

/** What {@link streamsBench} measured. */
export interface StreamsBenchResult {
  mib: number;
  /** MB/s (10^6 bytes/s), medians. */
  oneStream: { postern: number; direct: number; socat: number | null };
  parallel64: number;
  rpc: { concurrency: number; perSec: number; p50us: number; p99us: number }[];
  /**
   * `baseline`: the control pair's MB/s during the pause; `calibration`: pair / control with
   * nothing paused; `ratio`: pair / control during the pause, over `calibration`.
   */
  paused: { pauseMs: number; baseline: number; duringPause: number; calibration: number; ratio: number; pausedStreamIntact: boolean };
  targets: { name: string; value: number; target: number; met: boolean }[];
  notes: string[];
}

type AgentMod = typeof import('../src/agent/agent.js');
type StreamT = import('../src/stream/stream.js').Stream;
type AgentT = import('../src/agent/agent.js').Agent;

const CHUNK = 256 * 1024;

/** Writes `bytes` to `w` in CHUNK pieces, respecting backpressure, then ends it. */
function pump(w: NodeJS.WritableStream & { write(b: Buffer): boolean }, bytes: number): void {
  const buf = Buffer.alloc(CHUNK, 0x5a);
  let left = bytes;
  const go = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK);
      left -= n;
      if (!w.write(n === CHUNK ? buf : buf.subarray(0, n))) {
        w.once('drain', go);
        return;
      }
    }
    w.end();
  };
  go();
}

/** Resolves with the byte count once `r` ends. */
function drain(r: NodeJS.ReadableStream): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    r.on('data', (d: Buffer) => (n += d.length));
    r.once('end', () => resolve(n));
    r.once('error', reject);
  });
}

/** MB/s of moving `bytes` one way over a TCP connection to `port` whose accepted end is read here. */
async function tcpThroughput(server: Server, port: number, bytes: number): Promise<number> {
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const c = netConnect(port, '127.0.0.1');
  c.setNoDelay(true);
  await new Promise<void>((resolve) => c.once('connect', () => resolve()));
  const s = await accepted;
  const t = performance.now();
  const done = drain(s);
  pump(c, bytes);
  const n = await done;
  const ms = performance.now() - t;
  c.destroy();
  s.destroy();
  if (n !== bytes) throw new Error(`tcp: ${n} of ${bytes} bytes arrived`);
  return bytes / 1e6 / (ms / 1000);
}

async function streamThroughput(a: AgentT, b: AgentT, bytes: number, streams: number): Promise<number> {
  const per = Math.floor(bytes / streams);
  const got: Promise<number>[] = [];
  const onStream = (s: StreamT): void => {
    got.push(drain(s));
    s.end();
  };
  b.on('stream', onStream);
  const t = performance.now();
  const opened: StreamT[] = [];
  for (let i = 0; i < streams; i++) {
    const s = a.openStream(b.id);
    opened.push(s);
    s.resume();
    pump(s, per);
  }
  while (got.length < streams) await sleep(1);
  const counts = await Promise.all(got);
  const ms = performance.now() - t;
  b.off('stream', onStream);
  const total = counts.reduce((x, y) => x + y, 0);
  if (total !== per * streams) throw new Error(`streams: ${total} of ${per * streams} bytes arrived`);
  await Promise.all(opened.map((s) => new Promise((r) => (s.destroyed ? r(undefined) : s.once('close', r)))));
  return total / 1e6 / (ms / 1000);
}

async function rpc(a: AgentT, b: AgentT, concurrency: number, ms: number): Promise<{ concurrency: number; perSec: number; p50us: number; p99us: number }> {
  b.removeAllListeners('message');
  b.on('message', (m) => m.reply(m.data));
  const lat: number[] = [];
  const end = performance.now() + ms;
  const payload = Buffer.alloc(64, 1);
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const t = performance.now();
      await a.request(b.id, payload, { timeout: 10_000 });
      lat.push(performance.now() - t);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - t0;
  lat.sort((x, y) => x - y);
  const q = (p: number): number => Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! * 1000);
  return { concurrency, perSec: Math.round(lat.length / (elapsed / 1000)), p50us: q(0.5), p99us: q(0.99) };
}

/**
 * A paused reader costs other streams nothing: the throughput of a second stream between the
 * paused reader's agents while its reader is paused (its window full), against a control
 * pair of agents on the same router with no paused stream. Runs alternate between the two
 * pairs, so drift in the load of a shared machine (it moved by half within a minute) hits
 * both alike; each run is compared with the control run beside it. Before the pause the same
 * alternation, with nothing paused, calibrates any difference between the pairs themselves.
 */
async function pausedReader(pair: [AgentT, AgentT], control: [AgentT, AgentT], bytes: number, pauseMs: number, log?: (line: string) => void): Promise<StreamsBenchResult['paused']> {
  const [a, b] = pair;
  const alternate = async (ms: number): Promise<{ x: number[]; y: number[]; ratios: number[] }> => {
    const x: number[] = [];
    const y: number[] = [];
    const ratios: number[] = [];
    const started = performance.now();
    do {
      // Which pair goes first alternates too: a run right after another may fare differently.
      if (x.length % 2 === 0) {
        x.push(await streamThroughput(a, b, bytes, 1));
        y.push(await streamThroughput(control[0], control[1], bytes, 1));
      } else {
        y.push(await streamThroughput(control[0], control[1], bytes, 1));
        x.push(await streamThroughput(a, b, bytes, 1));
      }
      ratios.push(x.at(-1)! / y.at(-1)!);
    } while (performance.now() - started < ms);
    return { x, y, ratios };
  };
  const show = (xs: number[]): string => xs.map((v) => v.toFixed(0)).join(', ');
  const before = await alternate(Math.min(pauseMs / 3, 10_000));
  let stuck: StreamT | undefined;
  const first = new Promise<StreamT>((resolve) =>
    b.once('stream', (st: StreamT) => {
      st.pause();
      stuck = st;
      resolve(st);
    }),
  );
  const slow = a.openStream(b.id);
  slow.resume();
  const slowBytes = 64 * 1024 * 1024;
  pump(slow, slowBytes);
  await first;
  await sleep(50); // its window is full now
  const during = await alternate(pauseMs);
  const rest = drain(stuck!);
  stuck!.resume();
  stuck!.end();
  const n = await rest;
  const calibration = median(before.ratios);
  log?.(`streams: paused reader: before the pause, pair ${show(before.x)} / control ${show(before.y)} MB/s (median ratio ${calibration.toFixed(2)})`);
  log?.(`streams: paused reader: during the pause, pair ${show(during.x)} / control ${show(during.y)} MB/s (median ratio ${median(during.ratios).toFixed(2)})`);
  return {
    pauseMs,
    baseline: median(during.y),
    duringPause: median(during.x),
    calibration,
    ratio: median(during.ratios) / calibration,
    pausedStreamIntact: n === slowBytes,
  };
}

async function socatRelay(target: number): Promise<ServerChild | null> {
  if (which('socat') === null) return null;
  const port = await freePort();
  return startChild('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${target}`], { port, core: 0 });
}

/** Runs every stream measurement; see {@link StreamsBenchResult}. */
export async function streamsBench(o: StreamsBenchOptions): Promise<StreamsBenchResult> {
  const log = o.progress ?? ((): void => undefined);
  const notes: string[] = [];
  const bytes = o.mib * 1024 * 1024;
  const { connect } = (await import(new URL('../src/agent/agent.js', import.meta.url).href)) as AgentMod;
  // BENCH_ROUTER_NODE_ARGS: extra Node.js flags for the router process (as in run.ts), e.g. --cpu-prof.
  const nodeArgs = (process.env['BENCH_ROUTER_NODE_ARGS'] ?? '').split(' ').filter((x) => x !== '');
  const router = await startChild(process.execPath, [...nodeArgs, script('router-process.js'), JSON.stringify({ maxConnectionsPerAddress: 0, registrationRate: 0, keepaliveInterval: 60_000 })], {
    core: 0,
    ready: /READY (\d+)/,
  });
  const server = createServer();
  server.on('connection', (s) => s.setNoDelay(true));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const direct = (server.address() as { port: number }).port;
  const socat = await socatRelay(direct);
  if (socat === null) notes.push('socat not on PATH: the relay anchor is missing (apt-get install socat)');
  const a = await connect({ router: `127.0.0.1:${router.port}` });
  const b = await connect({ router: `127.0.0.1:${router.port}` });
  // The paused-reader measurement's control pair.
  const ctlA = await connect({ router: `127.0.0.1:${router.port}` });
  const ctlB = await connect({ router: `127.0.0.1:${router.port}` });
  try {
    // Warm-up: JIT and windows.
    await streamThroughput(a, b, Math.min(bytes, 32 * 1024 * 1024), 1);
    await tcpThroughput(server, direct, Math.min(bytes, 32 * 1024 * 1024));
    const p: number[] = [];
    const d: number[] = [];
    const s: number[] = [];
    for (let i = 0; i < o.repeats; i++) {
      // Alternate the order so drift in machine load hits all three alike.
      const runP = async (): Promise<void> => void p.push(await streamThroughput(a, b, bytes, 1));
      const runS = async (): Promise<void> => void (socat !== null && s.push(await tcpThroughput(server, socat.port, bytes)));
      await (i % 2 === 0 ? runP() : runS());
      d.push(await tcpThroughput(server, direct, bytes));
      await (i % 2 === 0 ? runS() : runP());
      log(`streams: repeat ${i + 1}: postern ${p.at(-1)!.toFixed(0)} MB/s, direct ${d.at(-1)!.toFixed(0)}, socat ${s.at(-1)?.toFixed(0) ?? '-'}`);
    }
    const oneStream = { postern: median(p), direct: median(d), socat: socat === null ? null : median(s) };
    // The targets compare runs of one repeat (taken a few seconds apart), not medians of
    // each path taken across a drifting machine.
    const vsDirect = median(p.map((x, i) => x / d[i]!));
    const vsSocat = socat === null ? null : median(p.map((x, i) => x / s[i]!));
    const par: number[] = [];
    for (let i = 0; i < o.repeats; i++) par.push(await streamThroughput(a, b, bytes, 64));
    const parallel64 = median(par);
    log(`streams: 64 parallel ${parallel64.toFixed(0)} MB/s (repeats ${par.map((x) => x.toFixed(0)).join(', ')})`);
    const rpcRows = [await rpc(a, b, 1, o.rpcMs), await rpc(a, b, 32, o.rpcMs)];
    log(`streams: rpc ${rpcRows.map((r) => `${r.perSec}/s (c=${r.concurrency}, p50 ${r.p50us} us, p99 ${r.p99us} us)`).join(', ')}`);
    const paused = await pausedReader([a, b], [ctlA, ctlB], Math.max(8 * 1024 * 1024, bytes / 4), o.pauseMs, log);
    log(`streams: paused reader for ${o.pauseMs} ms: others at ${(paused.ratio * 100).toFixed(0)} % of baseline`);
    const targets = [
      { name: 'one stream / direct TCP', value: vsDirect, target: 0.5 },
      ...(vsSocat === null ? [] : [{ name: 'one stream / socat relay', value: vsSocat, target: 1 }]),
      { name: '64 streams / one stream', value: parallel64 / oneStream.postern, target: 1 },
      { name: 'others during a paused reader / baseline', value: paused.ratio, target: 0.9 },
    ].map((t) => ({ ...t, met: t.value >= t.target }));
    return { mib: o.mib, oneStream, parallel64, rpc: rpcRows, paused, targets, notes };
  } finally {
    await Promise.all([a, b, ctlA, ctlB].map((x) => x.close()));
    server.close();
    await router.stop();
    await socat?.stop();
  }
}

// Run directly: node dist/benchmarks/streams.js [--quick] [--pause <ms>] [--mib <n>] [--repeats <n>]
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, pause: { type: 'string' }, mib: { type: 'string' }, repeats: { type: 'string' } },
  });
  const quick = values.quick === true;
  const r = await streamsBench({
    mib: Number(values.mib ?? (quick ? 32 : 256)),
    repeats: Number(values.repeats ?? (quick ? 1 : 3)),
    pauseMs: Number(values.pause ?? (quick ? 1000 : 30_000)),
    rpcMs: quick ? 300 : 2000,
    progress: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  process.exit(0);
}
