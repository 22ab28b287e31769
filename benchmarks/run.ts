/**
 * `npm run bench` — postern's benchmarks: router throughput next to a plain TCP forwarder
 * (the ceiling) and nats-server (when installed), one-way latency, scale with idle agents.
 * `npm run bench -- --quick` is the CI smoke run: small counts, under 30 s, asserts only that
 * every message arrived in order. See benchmarks/README.md for how to read the numbers.
 *
 * Flags: --quick, --duration <ms>, --warmup <ms>, --repeats <n>, --sections <list>
 * (throughput,latency,scale,sealed,transports), --systems <list> (postern,plain,nats), --sizes <list>,
 * (throughput,latency,scale,sealed,streams), --stream-pause <ms>, --systems <list> (postern,plain,nats), --sizes <list>,
 * --ks <list>, --patterns <list>, --scale-n <n>, --profile (router under --cpu-prof, profile
 * in benchmarks/results/), --out <file>. Section abuse (benchmarks/abuse.ts): --attacks <list>,
 * --no-anchor (skip each attack's run against the null router).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { ProbeJob } from './probe-worker.js';
import { runCell, type CellResult, type CellSpec, type Pattern } from './lib/load.js';
import { natsWire, plainWire, posternWire, probeMesh, type SystemName, type Wire } from './lib/wire.js';
import { freePort, pinSelf, script, sleep, startChild, which, type ServerChild } from './lib/proc.js';
import { median } from './lib/stats.js';
import { runScale, type ScaleResult } from './lib/scale.js';
import { formatTransports, runTransports } from './transports.js';
import { streamsBench } from './streams.js';
import { e2eSection, e2eTargets, type E2EReport } from './e2e.js';
import { abuseLegend, abuseSection, abuseTable, ATTACKS, type AbuseRow, type AttackName } from './abuse.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    repeats: { type: 'string' },
    sections: { type: 'string' },
    systems: { type: 'string' },
    sizes: { type: 'string' },
    ks: { type: 'string' },
    patterns: { type: 'string' },
    'scale-n': { type: 'string' },
    attacks: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'no-anchor': { type: 'boolean', default: false },
    out: { type: 'string' },
    'stream-pause': { type: 'string' },
    'e2e-systems': { type: 'string' },
    'e2e-ks': { type: 'string' },
  },
  allowPositionals: false,
});

const quick = flags.quick === true;
const list = (s: string | undefined, dflt: string[]): string[] => (s === undefined ? dflt : s.split(',').map((x) => x.trim()).filter(Boolean));
const nums = (s: string | undefined, dflt: number[]): number[] => list(s, dflt.map(String)).map(Number);

const cfg = {
  mode: quick ? 'quick' : 'full',
  sizes: nums(flags.sizes, quick ? [16, 65536] : [16, 256, 4096, 65536]),
  ks: nums(flags.ks, quick ? [1, 16] : [1, 16, 256]),
  patterns: list(flags.patterns, ['pairs', 'spray']) as Pattern[],
  systems: list(flags.systems, quick ? ['postern', 'plain'] : ['postern', 'plain', 'nats']) as SystemName[],
  // transports (benchmarks/transports.ts) only in full runs: the quick CI run stays short.
  sections: list(flags.sections, quick ? ['throughput', 'latency', 'mesh', 'scale', 'sealed', 'e2e', 'streams'] : ['throughput', 'latency', 'mesh', 'scale', 'sealed', 'e2e', 'transports', 'streams']),
  e2eSystems: list(flags['e2e-systems'], quick ? ['postern', 'postern-iter', 'sealed-anon', 'sealed-proof'] : ['raw', 'postern', 'postern-iter', 'natsjs', 'mqttjs', 'sealed-anon', 'sealed-proof', 'sealed-anon-portable', 'sealed-proof-portable']),
  e2eKs: nums(flags['e2e-ks'], quick ? [1] : [1, 16]),
  durationMs: Number(flags.duration ?? (quick ? 250 : 2000)),
  warmupMs: Number(flags.warmup ?? (quick ? 100 : 500)),
  repeats: Number(flags.repeats ?? (quick ? 1 : 3)),
  // 0: no load, the probe alone (the floor of the measurement on this machine).
  latencyFractions: [0, 0.1, 0.5],
  latencyMs: quick ? 300 : 2000,
  scaleN: Number(flags['scale-n'] ?? (quick ? 500 : 100_000)),
  scaleKeepaliveMs: quick ? 1000 : 2000,
  scaleIdleMs: quick ? 2200 : 8000,
  // The abuse section runs only when asked for (--sections abuse): about 8 minutes.
  attacks: list(flags.attacks, [...ATTACKS]) as AttackName[],
  // Hard stop, whatever happens.
  deadlineMs: quick ? 85_000 : 60 * 60_000,
};

const here = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const resultsDir = `${repoRoot}benchmarks/results`;
const tty = process.stderr.isTTY === true;
const started = new Date();
const t0 = performance.now();

const killer = setTimeout(() => {
  process.stderr.write(`\nbench: hard deadline of ${cfg.deadlineMs / 1000} s reached, stopping\n`);
  process.exit(3);
}, cfg.deadlineMs);
killer.unref();

// ------------------------------------------------------------------------------ output

function progress(text: string): void {
  const line = `[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${text}`;
  if (tty) process.stderr.write(`\r\x1b[2K${line}`);
}
function note(text: string): void {
  if (tty) process.stderr.write('\r\x1b[2K');
  process.stderr.write(`${text}\n`);
}

const fmtRate = (x: number): string =>
  !Number.isFinite(x) ? '-' : x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0);
const fmtMB = (x: number): string => (!Number.isFinite(x) ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const fmtRatio = (x: number): string => (!Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`);
const fmtBytes = (x: number): string =>
  !Number.isFinite(x) ? '-' : x >= 1 << 30 ? `${(x / (1 << 30)).toFixed(2)} GiB` : x >= 1 << 20 ? `${(x / (1 << 20)).toFixed(1)} MiB` : x >= 1024 ? `${(x / 1024).toFixed(1)} KiB` : `${x.toFixed(0)} B`;
const sizeName = (s: number): string => (s >= 1024 ? `${s / 1024} KiB` : `${s} B`);

/** A text table; the first `left` columns are left-aligned, the rest right-aligned. */
function table(header: string[], rows: string[][], left = 3): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i < left ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(header), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------- machine

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return null;
  }
}

const machine = {
  cpuModel: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryBytes: totalmem(),
  node: process.version,
  platform: `${process.platform} ${release()}`,
  pinned: false,
  /** 1-minute load average when the run started and when it ended: above ~0.5 others were using the CPUs. */
  loadStart: loadavg()[0]!,
  loadEnd: NaN,
  natsServer: null as string | null,
};

// ---------------------------------------------------------------------------- servers

const ROUTER_CORE = 0;
const GEN_CORE = 1;

async function startRouter(options: Record<string, unknown>, profileName?: string): Promise<ServerChild> {
  // BENCH_ROUTER_NODE_ARGS: extra Node.js flags for the router (e.g. GC settings), space-separated.
  const nodeArgs: string[] = (process.env['BENCH_ROUTER_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  if (profileName !== undefined) {
    mkdirSync(resultsDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${resultsDir}`, `--cpu-prof-name=${profileName}`);
  }
  // All load comes from a few loopback addresses: the per-address limits would throttle the
  // generator, not protect anything.
  const all = { maxConnectionsPerAddress: 0, registrationRate: 0, ...options };
  return startChild(process.execPath, [...nodeArgs, script('router-process.js'), JSON.stringify(all)], {
    core: ROUTER_CORE,
    ready: /READY (\d+)/,
  });
}

async function startForwarder(): Promise<ServerChild> {
  return startChild(process.execPath, [script('forwarder-process.js')], { core: ROUTER_CORE, ready: /READY (\d+)/ });
}

async function startNats(): Promise<ServerChild> {
  const port = await freePort();
  const conf = `${resultsDir}/nats-bench.conf`;
  mkdirSync(resultsDir, { recursive: true });
  // Large pending and deadline so a generator that falls briefly behind is not cut off as a
  // slow consumer; the benchmark wants throughput, not NATS's drop policy.
  writeFileSync(conf, 'max_payload: 1048576\nmax_pending: 1073741824\nwrite_deadline: "60s"\n');
  return startChild('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-c', conf], {
    core: ROUTER_CORE,
    port,
    stderr: 'ignore',
  });
}

// ------------------------------------------------------------------------ throughput

interface CellSummary {
  system: SystemName;
  pattern: Pattern;
  size: number;
  k: number;
  runs: CellResult[];
  msgsPerSec: number;
  mbPerSec: number;
  serverCpu: number;
  genCpu: number;
  inOrder: boolean;
}

const failures: string[] = [];
const warnings: string[] = [];
let checked = 0;

function record(system: SystemName, label: string, r: CellResult): void {
  checked += r.received;
  if (!r.inOrder || r.errors.length > 0) {
    const msg = `${label}: ${r.inOrder ? 'in order' : 'NOT in order'} (sent ${r.sent}, received ${r.received}, out of order ${r.outOfOrder}, lost ${r.lost}) ${r.errors.slice(0, 3).join('; ')}`;
    // NATS drops to slow consumers by design; its misses are reported, not asserted.
    if (system === 'nats' || r.inOrder) warnings.push(msg);
    else failures.push(msg);
    note(`  ! ${msg}`);
  }
}

async function throughput(wires: Map<SystemName, { wire: Wire; server: ServerChild }>): Promise<CellSummary[]> {
  const out: CellSummary[] = [];
  const cells: Array<{ pattern: Pattern; size: number; k: number }> = [];
  for (const pattern of cfg.patterns) for (const size of cfg.sizes) for (const k of cfg.ks) cells.push({ pattern, size, k });
  // JIT warm-up of every server (and of the generator) before anything is measured.
  for (const [name, { wire, server }] of wires) {
    progress(`warming up ${name}`);
    const r = await runCell(wire, { pattern: 'pairs', size: 16, k: 16, warmupMs: 0, durationMs: quick ? 200 : 1000, serverPid: server.pid });
    record(name, `${name} warm-up`, r);
  }
  let idx = 0;
  for (const c of cells) {
    idx++;
    const runs = new Map<SystemName, CellResult[]>();
    for (let rep = 0; rep < cfg.repeats; rep++) {
      // Systems alternate within a repeat, so drift in the machine hits them alike.
      for (const [name, { wire, server }] of wires) {
        if (c.pattern === 'spray' && !wire.routes) continue;
        const label = `${name} ${c.pattern} ${sizeName(c.size)} K=${c.k}`;
        const spec: CellSpec = {
          ...c,
          warmupMs: cfg.warmupMs,
          durationMs: cfg.durationMs,
          serverPid: server.pid,
          progress: (rate) => progress(`[${idx}/${cells.length}] ${label} rep ${rep + 1}/${cfg.repeats}: ${fmtRate(rate)} msg/s`),
        };
        let r: CellResult;
        try {
          r = await runCell(wire, spec);
        } catch (err) {
          const msg = `${label}: ${(err as Error).message}`;
          (name === 'nats' ? warnings : failures).push(msg);
          note(`  ! ${msg}`);
          continue;
        }
        record(name, label, r);
        if (!tty) note(`${label} rep ${rep + 1}: ${fmtRate(r.msgsPerSec)} msg/s, ${fmtMB(r.mbPerSec)} MB/s${r.inOrder ? '' : ' NOT IN ORDER'}`);
        const l = runs.get(name) ?? [];
        l.push(r);
        runs.set(name, l);
      }
    }
    for (const [system, rs] of runs) {
      out.push({
        system,
        ...c,
        runs: rs,
        msgsPerSec: median(rs.map((r) => r.msgsPerSec)),
        mbPerSec: median(rs.map((r) => r.mbPerSec)),
        serverCpu: median(rs.map((r) => r.serverCpu)),
        genCpu: median(rs.map((r) => r.genCpu)),
        inOrder: rs.every((r) => r.inOrder),
      });
    }
  }
  return out;
}

function find(cells: CellSummary[], system: SystemName, pattern: Pattern, size: number, k: number): CellSummary | undefined {
  return cells.find((c) => c.system === system && c.pattern === pattern && c.size === size && c.k === k);
}

// --------------------------------------------------------------------------- latency

/** The latency cell: few connections, so a moderate rate still goes out in batches. */
const LATENCY_CELL = { pattern: 'pairs' as Pattern, size: 16, k: 4 };
/** Messages/s of the latency probe that runs beside the load (one pair of its own). */
const PROBE_RATE = 10_000;

interface LatencyRow {
  system: SystemName;
  fraction: number;
  saturationPerSec: number;
  offeredPerSec: number;
  deliveredPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  /** The probe beside the load: medians of p50, p99, p99.9; max the worst. */
  probe: { p50: number; p99: number; p999: number; max: number };
  runs: CellResult[];
  probeRuns: CellResult[];
}

/** Runs the latency probe (benchmarks/probe-worker.js) in a worker thread of this process. */
function runProbe(job: ProbeJob): Promise<CellResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./probe-worker.js', import.meta.url), { workerData: job });
    let done = false;
    w.once('message', (m: { ok: boolean; result?: CellResult; error?: string }) => {
      done = true;
      if (m.ok) resolve(m.result!);
      else reject(new Error(`latency probe: ${m.error}`));
      void w.terminate();
    });
    w.once('error', (e) => reject(new Error(`latency probe: ${e.message}`)));
    w.once('exit', (code) => {
      if (!done) reject(new Error(`latency probe exited with code ${code}`));
    });
  });
}

async function latency(
  wires: Map<SystemName, { wire: Wire; server: ServerChild }>,
  cells: CellSummary[],
): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  const base = LATENCY_CELL;
  for (const [name, { wire, server }] of wires) {
    let sat = find(cells, name, base.pattern, base.size, base.k)?.msgsPerSec;
    if (sat === undefined || !Number.isFinite(sat)) {
      const sats: number[] = [];
      for (let rep = 0; rep < cfg.repeats; rep++) {
        const r = await runCell(wire, {
          ...base,
          warmupMs: cfg.warmupMs,
          durationMs: cfg.durationMs,
          serverPid: server.pid,
          progress: (x) => progress(`${name} saturation of the latency cell: ${fmtRate(x)} msg/s`),
        });
        record(name, `${name} saturation`, r);
        sats.push(r.msgsPerSec);
      }
      sat = median(sats);
    }
    for (const fraction of cfg.latencyFractions) {
      const rate = fraction === 0 ? 0 : Math.max(1000, Math.round(sat * fraction));
      const label = fraction === 0 ? `${name} latency, probe alone` : `${name} latency at ${fraction * 100}% (${fmtRate(rate)} msg/s)`;
      const runs: CellResult[] = [];
      const probeRuns: CellResult[] = [];
      for (let rep = 0; rep < Math.min(cfg.repeats, 3); rep++) {
        // The load and the probe (a thread of its own) start together, once both are connected.
        const startAt = performance.timeOrigin + performance.now() + 500;
        const probe = runProbe({
          system: name,
          port: server.port,
          spec: { pattern: 'pairs', size: base.size, k: 1, rate: PROBE_RATE, latency: true, warmupMs: cfg.warmupMs, durationMs: cfg.latencyMs, batchBytes: 4096, indexBase: 1000, startAt },
        });
        if (rate > 0) {
          const r = await runCell(wire, {
            ...base,
            rate,
            latency: true,
            warmupMs: cfg.warmupMs,
            durationMs: cfg.latencyMs,
            serverPid: server.pid,
            batchBytes: 16384,
            startAt,
            progress: (x) => progress(`${label} rep ${rep + 1}: ${fmtRate(x)} msg/s delivered`),
          });
          record(name, label, r);
          runs.push(r);
        }
        const p = await probe;
        record(name, `${label}, probe`, p);
        probeRuns.push(p);
      }
      const row: LatencyRow = {
        system: name,
        fraction,
        saturationPerSec: sat,
        offeredPerSec: rate,
        deliveredPerSec: median(runs.map((r) => r.msgsPerSec)),
        p50: median(runs.map((r) => r.latency?.p50 ?? NaN)),
        p99: median(runs.map((r) => r.latency?.p99 ?? NaN)),
        p999: median(runs.map((r) => r.latency?.p999 ?? NaN)),
        max: Math.max(...runs.map((r) => r.latency?.max ?? 0)),
        probe: {
          p50: median(probeRuns.map((r) => r.latency?.p50 ?? NaN)),
          p99: median(probeRuns.map((r) => r.latency?.p99 ?? NaN)),
          p999: median(probeRuns.map((r) => r.latency?.p999 ?? NaN)),
          max: Math.max(...probeRuns.map((r) => r.latency?.max ?? 0)),
        },
        runs,
        probeRuns,
      };
      if (!tty) note(`${label}: p50 ${row.p50} µs, p99 ${row.p99} µs, p99.9 ${row.p999} µs; probe p99 ${row.probe.p99} µs`);
      rows.push(row);
    }
  }
  return rows;
}

// ------------------------------------------------------------------------------ mesh

interface MeshRow {
  pattern: Pattern;
  size: number;
  k: number;
  /** Two routers: senders on one, receivers on the other, so every message crosses the link. */
  mesh: CellSummary | null;
  /** One router, same cell (from the throughput grid or measured here). */
  single: CellSummary | null;
  ratio: number;
}

/** The same throughput across two linked routers (both on the router core) next to one router. */
async function meshSection(cells: CellSummary[]): Promise<{ status: string; note: string; rows: MeshRow[] }> {
  const secret = 'postern-bench-mesh-secret';
  const grid = quick
    ? [{ pattern: 'pairs' as Pattern, size: 16, k: 16 }]
    : [
        { pattern: 'pairs' as Pattern, size: 16, k: 16 },
        { pattern: 'spray' as Pattern, size: 16, k: 16 },
        { pattern: 'pairs' as Pattern, size: 65536, k: 16 },
      ];
  let a: ServerChild | null = null;
  let b: ServerChild | null = null;
  let single: ServerChild | null = null;
  try {
    a = await startRouter({ keepaliveInterval: 60_000, routerId: 1, meshSecret: secret });
    b = await startRouter({ keepaliveInterval: 60_000, routerId: 2, meshSecret: secret, peers: [`127.0.0.1:${a.port}`] });
    if (!(await probeMesh('127.0.0.1', a.port, b.port))) {
      failures.push('mesh: no message crossed the link within 10 s');
      return { status: 'failed', note: 'link did not come up', rows: [] };
    }
    const wire = posternWire('127.0.0.1', a.port, b.port);
    const rows: MeshRow[] = [];
    for (const c of grid) {
      const runs: CellResult[] = [];
      for (let rep = 0; rep < cfg.repeats; rep++) {
        const label = `mesh ${c.pattern} ${sizeName(c.size)} K=${c.k}`;
        const r = await runCell(wire, {
          ...c,
          warmupMs: cfg.warmupMs,
          durationMs: cfg.durationMs,
          serverPid: a.pid,
          progress: (x) => progress(`${label} rep ${rep + 1}: ${fmtRate(x)} msg/s`),
        });
        record('mesh', label, r);
        runs.push(r);
      }
      const summary = (system: SystemName, rs: CellResult[]): CellSummary => ({
        system,
        ...c,
        runs: rs,
        msgsPerSec: median(rs.map((r) => r.msgsPerSec)),
        mbPerSec: median(rs.map((r) => r.mbPerSec)),
        serverCpu: median(rs.map((r) => r.serverCpu)),
        genCpu: median(rs.map((r) => r.genCpu)),
        inOrder: rs.every((r) => r.inOrder),
      });
      let one = find(cells, 'postern', c.pattern, c.size, c.k) ?? null;
      if (one === null) {
        single ??= await startRouter({ keepaliveInterval: 60_000 });
        const w1 = posternWire('127.0.0.1', single.port);
        const rs: CellResult[] = [];
        for (let rep = 0; rep < cfg.repeats; rep++) {
          const r = await runCell(w1, { ...c, warmupMs: cfg.warmupMs, durationMs: cfg.durationMs, serverPid: single.pid });
          record('postern', `postern ${c.pattern} ${sizeName(c.size)} K=${c.k} (mesh baseline)`, r);
          rs.push(r);
        }
        one = summary('postern', rs);
      }
      const m = summary('mesh', runs);
      rows.push({ ...c, mesh: m, single: one, ratio: m.msgsPerSec / one.msgsPerSec });
      if (!tty) note(`mesh ${c.pattern} ${sizeName(c.size)} K=${c.k}: ${fmtRate(m.msgsPerSec)} msg/s, ${fmtRatio(m.msgsPerSec / one.msgsPerSec)} of one router`);
    }
    return { status: 'measured', note: 'two routers pinned to the same core as the single router: the mesh does two routers\' work on one core', rows };
  } catch (err) {
    failures.push(`mesh: ${(err as Error).message}`);
    return { status: 'failed', note: (err as Error).message, rows: [] };
  } finally {
    await b?.stop();
    await a?.stop();
    await single?.stop();
  }
}

// ---------------------------------------------------------------------------- sealed

interface SealedResult {
  status: string;
  note: string;
  /** Sealed traffic through one router next to plain traffic, same cells. */
  rows: Array<{ pattern: Pattern; size: number; k: number; sealed: CellSummary; plain: CellSummary | null; ratio: number }>;
  /** benchmarks/seal.js (seal/open per second), when it exists: its JSON line. */
  sealOpen: unknown;
}

/**
 * Sealed traffic: SENDs flagged SEALED (the router only ever sees opaque payload bytes, so
 * these are sealed messages as far as it can tell) next to plain SENDs; and seal+open per
 * second from benchmarks/seal.js, run as a child on the generator core.
 */
async function sealedSection(cells: CellSummary[]): Promise<SealedResult> {
  const grid = quick ? [{ pattern: 'pairs' as Pattern, size: 256, k: 16 }] : [
    { pattern: 'pairs' as Pattern, size: 256, k: 16 },
    { pattern: 'pairs' as Pattern, size: 4096, k: 16 },
  ];
  const rows: SealedResult['rows'] = [];
  let router: ServerChild | null = null;
  try {
    router = await startRouter({ keepaliveInterval: 60_000 });
    const sealedWire = posternWire('127.0.0.1', router.port, router.port, 0x04);
    const plainW = posternWire('127.0.0.1', router.port);
    for (const c of grid) {
      const runs: CellResult[] = [];
      const base: CellResult[] = [];
      // A fresh router: warm its JIT first, then alternate which of the two goes first.
      record('postern', 'sealed section warm-up', await runCell(plainW, { ...c, warmupMs: 0, durationMs: quick ? 200 : 1000, serverPid: router.pid }));
      for (let rep = 0; rep < cfg.repeats; rep++) {
        const pair = [[sealedWire, runs], [plainW, base]] as const;
        for (const [w, into] of rep % 2 === 0 ? pair : [pair[1], pair[0]]) {
          const label = `${w.name} ${c.pattern} ${sizeName(c.size)} K=${c.k}`;
          const r = await runCell(w, { ...c, warmupMs: cfg.warmupMs, durationMs: cfg.durationMs, serverPid: router.pid, progress: (x) => progress(`${label} rep ${rep + 1}: ${fmtRate(x)} msg/s`) });
          record(w.name, label, r);
          into.push(r);
        }
      }
      const sum = (system: SystemName, rs: CellResult[]): CellSummary => ({
        system, ...c, runs: rs,
        msgsPerSec: median(rs.map((r) => r.msgsPerSec)),
        mbPerSec: median(rs.map((r) => r.mbPerSec)),
        serverCpu: median(rs.map((r) => r.serverCpu)),
        genCpu: median(rs.map((r) => r.genCpu)),
        inOrder: rs.every((r) => r.inOrder),
      });
      const se = sum('sealed', runs);
      const pl = sum('postern', base);
      rows.push({ ...c, sealed: se, plain: pl, ratio: se.msgsPerSec / pl.msgsPerSec });
      if (!tty) note(`sealed ${c.pattern} ${sizeName(c.size)} K=${c.k}: ${fmtRate(se.msgsPerSec)} msg/s, ${fmtRatio(se.msgsPerSec / pl.msgsPerSec)} of plain`);
    }
  } catch (err) {
    failures.push(`sealed: ${(err as Error).message}`);
  } finally {
    await router?.stop();
  }
  void cells;
  let sealOpen: unknown = null;
  const sealJs = `${here}seal.js`;
  if (quick) {
    sealOpen = { note: 'seal/open micro-benchmark skipped in quick mode' };
  } else if (existsSync(sealJs)) {
    progress('seal/open micro-benchmark (benchmarks/seal.js)');
    try {
      const args = [sealJs, '--json-only'];
      const cmd = machine.pinned ? 'taskset' : process.execPath;
      const argv = machine.pinned ? ['-c', String(GEN_CORE), process.execPath, ...args] : args;
      const out = execFileSync(cmd, argv, { timeout: 120_000, stdio: ['ignore', 'pipe', 'inherit'] }).toString();
      const line = out.split('\n').find((l) => l.startsWith('{"bench":"seal"'));
      sealOpen = line === undefined ? { note: 'seal.js printed no JSON line' } : JSON.parse(line);
    } catch (err) {
      warnings.push(`seal.js: ${(err as Error).message}`);
      sealOpen = { note: `seal.js failed: ${(err as Error).message}` };
    }
  } else {
    sealOpen = { note: 'benchmarks/seal.ts does not exist yet' };
  }
  return {
    status: rows.length > 0 ? 'measured' : 'failed',
    note: 'SENDs flagged SEALED with opaque payloads of the same size, next to plain SENDs through the same router',
    rows,
    sealOpen,
  };
}

// ------------------------------------------------------------------------------ main

async function main(): Promise<number> {
  machine.pinned = pinSelf(GEN_CORE);
  const commit = git(['rev-parse', 'HEAD']);
  const dirty = (git(['status', '--porcelain', '--', 'src', 'benchmarks']) ?? '') !== '';
  note(
    `postern bench (${cfg.mode}): ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, ` +
      `commit ${commit?.slice(0, 10) ?? '?'}${dirty ? ' (dirty)' : ''}; ` +
      (machine.pinned ? `servers on core ${ROUTER_CORE}, generator on core ${GEN_CORE}` : 'not pinned (taskset or a second core missing)'),
  );

  if (machine.loadStart > 0.5) {
    note(`warning: load average is ${machine.loadStart.toFixed(2)}: other processes are using the CPUs, so absolute figures will be low and noisy (ratios within this run hold up better)`);
  }
  const wires = new Map<SystemName, { wire: Wire; server: ServerChild }>();
  const notes: Record<string, string> = {};
  const wantsLoad = cfg.sections.includes('throughput') || cfg.sections.includes('latency');
  if (wantsLoad && cfg.systems.includes('postern')) {
    try {
      const r = await startRouter({ keepaliveInterval: 60_000 }, flags.profile === true ? `router-${Date.now()}.cpuprofile` : undefined);
      wires.set('postern', { wire: posternWire('127.0.0.1', r.port), server: r });
    } catch (err) {
      failures.push(`router did not start: ${(err as Error).message}`);
      note(`! router did not start: ${(err as Error).message}`);
    }
  }
  if (wantsLoad && cfg.systems.includes('plain')) {
    const f = await startForwarder();
    wires.set('plain', { wire: plainWire('127.0.0.1', f.port), server: f });
  }
  if (wantsLoad && cfg.systems.includes('nats')) {
    if (which('nats-server') === null) {
      notes['nats'] = 'nats-server not on PATH: comparison skipped (Debian/Ubuntu: apt-get install nats-server)';
      note(notes['nats']);
    } else {
      try {
        machine.natsServer = execFileSync('nats-server', ['--version']).toString().trim();
        const n = await startNats();
        wires.set('nats', { wire: natsWire('127.0.0.1', n.port), server: n });
      } catch (err) {
        notes['nats'] = `nats-server did not start: ${(err as Error).message}`;
        warnings.push(notes['nats']);
      }
    }
  }

  const timings: Record<string, number> = {};
  const lap = (name: string, since: number): void => {
    timings[name] = Math.round(performance.now() - since) / 1000;
  };
  lap('startup', t0);
  let since = performance.now();
  let cells: CellSummary[] = [];
  if (cfg.sections.includes('throughput')) cells = await throughput(wires);
  lap('throughput', since);
  since = performance.now();
  let lat: LatencyRow[] = [];
  if (cfg.sections.includes('latency')) lat = await latency(wires, cells);
  lap('latency', since);
  since = performance.now();
  for (const { server } of wires.values()) await server.stop();

  let scale: ScaleResult | null = null;
  if (cfg.sections.includes('scale') && cfg.systems.includes('postern')) {
    try {
      const r = await startRouter({ keepaliveInterval: cfg.scaleKeepaliveMs, handshakeTimeout: 60_000 });
      try {
        scale = await runScale(r, {
          n: cfg.scaleN,
          keepaliveMs: cfg.scaleKeepaliveMs,
          idleMs: cfg.scaleIdleMs,
          localAddresses: Array.from({ length: 8 }, (_, i) => `127.0.1.${i + 1}`),
          concurrency: quick ? 64 : 256,
          progress,
        });
      } finally {
        await r.stop();
      }
      if (scale.expired > 0 || scale.lost > 0) failures.push(`scale: ${scale.expired} agents expired by keepalive, ${scale.lost} connections lost`);
      if (scale.errors.length > 0) warnings.push(`scale: ${scale.errors.join('; ')}`);
      if (!tty) note(`scale: ${scale.agents} agents, ${fmtBytes(scale.rssPerAgent)}/agent, ${fmtRate(scale.registrationsPerSec)} reg/s`);
    } catch (err) {
      failures.push(`scale: ${(err as Error).message}`);
    }
  }

  lap('scale', since);
  since = performance.now();
  const mesh = cfg.sections.includes('mesh') && cfg.systems.includes('postern') ? await meshSection(cells) : null;
  lap('mesh', since);
  since = performance.now();
  const seal = cfg.sections.includes('sealed') && cfg.systems.includes('postern') ? await sealedSection(cells) : null;
  lap('sealed', since);
  since = performance.now();
  let e2e: E2EReport | null = null;
  if (cfg.sections.includes('e2e')) {
    e2e = await e2eSection({
      quick,
      sizes: cfg.sizes,
      ks: cfg.e2eKs,
      repeats: cfg.repeats,
      durationMs: cfg.durationMs,
      warmupMs: cfg.warmupMs,
      resultsDir,
      systems: cfg.e2eSystems,
      startRouter: () => startRouter({ keepaliveInterval: 60_000 }),
      startNats,
      progress,
      note,
      misses: (system, label, r) => record(system === 'natsjs' || system === 'mqttjs' ? 'nats' : 'postern', label, { genCpu: NaN, ...r }),
    });
  }
  lap('e2e', since);
  since = performance.now();
  let abuse: AbuseRow[] = [];
  if (cfg.sections.includes('abuse')) {
    try {
      abuse = await abuseSection({
        startRouter, core: GEN_CORE, serverCore: ROUTER_CORE, anchor: flags['no-anchor'] !== true, repeats: cfg.repeats, warmupMs: cfg.warmupMs, durationMs: cfg.durationMs,
        quick, attacks: cfg.attacks, profile: flags.profile === true, progress,
        record: (label, r) => record('postern', label, r),
        fail: (what) => failures.push(what),
      });
    } catch (err) {
      failures.push(`abuse: ${(err as Error).message}`);
    }
  }
  lap('abuse', since);
  since = performance.now();
  const transports = cfg.sections.includes('transports')
    ? await runTransports({ quick, durationMs: cfg.durationMs, warmupMs: cfg.warmupMs, repeats: cfg.repeats, resultsDir, startRouter, progress, note })
    : null;
  if (transports !== null) for (const e of transports.errors) (/ lost, | out of order/.test(e) ? failures : warnings).push(`transports: ${e}`);
  lap('transports', since);
  // benchmarks/streams.ts; --stream-pause <ms> sets how long its paused reader stays paused.
  const streams = cfg.sections.includes('streams') && cfg.systems.includes('postern')
    ? await streamsBench({ mib: quick ? 32 : 256, repeats: cfg.repeats, pauseMs: Number(flags['stream-pause'] ?? (quick ? 1000 : 30_000)), rpcMs: quick ? 300 : 2000, progress: note }).catch((err: unknown) => {
        failures.push(`streams: ${(err as Error).message}`);
        return null;
      })
    : null;
  lap('streams', since);

  machine.loadEnd = loadavg()[0]!;
  // ----------------------------------------------------------------------- ratios and targets
  const ratios = cells
    .filter((c) => c.system === 'postern')
    .map((c) => {
      const plain = find(cells, 'plain', 'pairs', c.size, c.k);
      const nats = find(cells, 'nats', c.pattern, c.size, c.k);
      return {
        pattern: c.pattern,
        size: c.size,
        k: c.k,
        // The forwarder has no spray: a spray row is compared with its pairs ceiling.
        vsPlainMsgs: plain === undefined ? NaN : c.msgsPerSec / plain.msgsPerSec,
        vsPlainBytes: plain === undefined ? NaN : c.mbPerSec / plain.mbPerSec,
        vsNats: nats === undefined ? NaN : c.msgsPerSec / nats.msgsPerSec,
      };
    });
  const ratio = (p: Pattern, size: number, k: number): (typeof ratios)[number] | undefined =>
    ratios.find((r) => r.pattern === p && r.size === size && r.k === k);
  const pairs16 = ratio('pairs', 16, 16);
  const spray16 = ratio('spray', 16, 16);
  const big = ratios.filter((r) => r.pattern === 'pairs' && r.size === 65536);
  const lat50 = lat.find((l) => l.system === 'postern' && l.fraction === 0.5);
  const t = (name: string, want: string, value: number | undefined, ok: (v: number) => boolean, fmt: (v: number) => string) => ({
    name,
    target: want,
    value: value === undefined || !Number.isFinite(value) ? null : value,
    shown: value === undefined || !Number.isFinite(value) ? 'not measured' : fmt(value),
    met: value === undefined || !Number.isFinite(value) ? null : ok(value),
  });
  const targets = [
    t('pairs 16 B K=16 vs nats-server', '>= 5x', pairs16?.vsNats, (v) => v >= 5, fmtRatio),
    t('pairs 16 B K=16 vs plain forwarder', '>= 0.5x', pairs16?.vsPlainMsgs, (v) => v >= 0.5, fmtRatio),
    t('spray 16 B K=16 vs nats-server', '>= 1.5x', spray16?.vsNats, (v) => v >= 1.5, fmtRatio),
    t('pairs 64 KiB vs plain forwarder bytes/s (worst K)', '>= 0.9x', big.length === 0 ? undefined : Math.min(...big.map((r) => r.vsPlainBytes)), (v) => v >= 0.9, fmtRatio),
    t('p99 one-way latency at 50% of saturation (load)', '<= 1000 µs', lat50?.p99, (v) => v <= 1000, (v) => `${v} µs`),
    t('  the same, probe beside the load', '<= 1000 µs', lat50?.probe.p99, (v) => v <= 1000, (v) => `${v} µs`),
    t('router RSS for 100,000 idle agents', '<= 2 GiB', scale?.rssAt100k, (v) => v <= 2 * 2 ** 30, (v) => `${fmtBytes(v)}${scale !== null && scale.agents < 100_000 ? ` (extrapolated from ${scale.agents})` : ''}`),
    t('keepalive expiries of live agents', '0', scale === null ? undefined : scale.expired + scale.lost, (v) => v === 0, String),
    ...(e2e === null ? [] : e2eTargets(e2e.rows).map((x) => t(x.name, x.want, x.value, x.ok, fmtRatio))),
    t('probe p99 at 50% load: postern vs plain forwarder', '<= 1.2x', lat50 === undefined ? undefined : lat50.probe.p99 / (lat.find((l) => l.system === 'plain' && l.fraction === 0.5)?.probe.p99 ?? NaN), (v) => v <= 1.2, fmtRatio),
    t('sealed throughput vs plain (worst cell)', 'same (>= 0.9x)', seal === null || seal.rows.length === 0 ? undefined : Math.min(...seal.rows.map((r) => r.ratio)), (v) => v >= 0.9, fmtRatio),
  ];

  // ----------------------------------------------------------------------------- report
  if (tty) process.stderr.write('\r\x1b[2K');
  const lines: string[] = [];
  lines.push('');
  lines.push(`postern bench, ${cfg.mode} mode: ${machine.cpuModel} (${machine.cores} cores), Node ${machine.node}, commit ${commit?.slice(0, 10) ?? '?'}${dirty ? ' + local changes' : ''}`);
  lines.push(`medians of ${cfg.repeats} run(s) of ${cfg.durationMs} ms after ${cfg.warmupMs} ms warmup; servers pinned: ${machine.pinned ? 'yes' : 'no'}; load average ${machine.loadStart.toFixed(2)} at start, ${machine.loadEnd.toFixed(2)} at end`);
  if (cells.length > 0) {
    const rows: string[][] = [];
    for (const p of cfg.patterns) {
      for (const size of cfg.sizes) {
        for (const k of cfg.ks) {
          const pc = find(cells, 'postern', p, size, k);
          const pl = find(cells, 'plain', 'pairs', size, k);
          const na = find(cells, 'nats', p, size, k);
          const r = ratio(p, size, k);
          rows.push([
            p,
            sizeName(size),
            `K=${k}`,
            fmtRate(pc?.msgsPerSec ?? NaN),
            fmtMB(pc?.mbPerSec ?? NaN),
            pc === undefined ? '-' : `${pc.serverCpu.toFixed(0)}/${pc.genCpu.toFixed(0)}`,
            p === 'pairs' ? fmtRate(pl?.msgsPerSec ?? NaN) : '(pairs)',
            fmtRatio(r?.vsPlainMsgs ?? NaN),
            fmtRate(na?.msgsPerSec ?? NaN),
            fmtRatio(r?.vsNats ?? NaN),
            pc === undefined ? '-' : pc.inOrder ? 'yes' : 'NO',
          ]);
        }
      }
    }
    lines.push('');
    lines.push('throughput (msg/s delivered; MB/s = payload 10^6 B/s; cpu = router/generator % of a core)');
    lines.push(table(['pattern', 'size', 'K', 'postern', 'MB/s', 'cpu%', 'plain', 'vs plain', 'nats', 'vs nats', 'ordered'], rows));
  }
  if (lat.length > 0) {
    lines.push('');
    lines.push(`one-way latency, pairs ${LATENCY_CELL.size} B K=${LATENCY_CELL.k}, at a fraction of each system's own saturation of that cell (µs)`);
    lines.push(`(load: the load's own messages, sent in 1 ms bursts; probe: ${fmtRate(PROBE_RATE)} msg/s on a pair of its own beside the load; load none: the probe alone)`);
    lines.push(
      table(
        ['system', 'load', 'offered', 'delivered', 'p50', 'p99', 'p99.9', 'max', 'probe p50', 'p99', 'p99.9', 'max'],
        lat.map((l) => [
          l.system,
          l.fraction === 0 ? 'none' : `${l.fraction * 100}%`,
          l.fraction === 0 ? '-' : fmtRate(l.offeredPerSec),
          l.fraction === 0 ? '-' : fmtRate(l.deliveredPerSec),
          l.fraction === 0 ? '-' : String(l.p50),
          l.fraction === 0 ? '-' : String(l.p99),
          l.fraction === 0 ? '-' : String(l.p999),
          l.fraction === 0 ? '-' : String(l.max),
          String(l.probe.p50),
          String(l.probe.p99),
          String(l.probe.p999),
          String(l.probe.max),
        ]),
      ),
    );
  }
  if (scale !== null) {
    lines.push('');
    lines.push(`scale: ${scale.agents} idle agents${scale.capNote !== null ? ` (${scale.capNote})` : ''}`);
    lines.push(`  registration ${fmtRate(scale.registrationsPerSec)}/s (${scale.registrationSecs.toFixed(2)} s); router RSS ${fmtBytes(scale.rssBase)} -> ${fmtBytes(scale.rssAfterIdle)}, ${fmtBytes(scale.rssPerAgent)} per agent, ~${fmtBytes(scale.rssAt100k)} at 100k`);
    lines.push(`  keepalive ${scale.keepaliveMs} ms over ${(scale.idleMs / 1000).toFixed(1)} s idle: router CPU ${scale.routerCpuPct.toFixed(1)}% of a core, ${scale.pingsAnswered} PINGs answered, ${scale.cpuUsPerPing.toFixed(1)} µs router CPU per PING; expired ${scale.expired}, lost ${scale.lost}`);
  }
  lines.push('');
  if (mesh !== null) {
    lines.push('');
    lines.push(`mesh: two linked routers, senders on one and receivers on the other (${mesh.note})`);
    if (mesh.rows.length > 0) {
      lines.push(
        table(
          ['pattern', 'size', 'K', 'mesh', 'MB/s', 'one router', 'ratio', 'ordered'],
          mesh.rows.map((r) => [r.pattern, sizeName(r.size), `K=${r.k}`, fmtRate(r.mesh?.msgsPerSec ?? NaN), fmtMB(r.mesh?.mbPerSec ?? NaN), fmtRate(r.single?.msgsPerSec ?? NaN), fmtRatio(r.ratio), r.mesh?.inOrder === true ? 'yes' : 'NO']),
        ),
      );
    }
  }
  if (seal !== null) {
    lines.push('');
    lines.push(`sealed: ${seal.note}`);
    lines.push(
      table(
        ['pattern', 'size', 'K', 'sealed', 'MB/s', 'plain', 'ratio', 'ordered'],
        seal.rows.map((r) => [r.pattern, sizeName(r.size), `K=${r.k}`, fmtRate(r.sealed.msgsPerSec), fmtMB(r.sealed.mbPerSec), fmtRate(r.plain?.msgsPerSec ?? NaN), fmtRatio(r.ratio), r.sealed.inOrder ? 'yes' : 'NO']),
      ),
    );
    const so = seal.sealOpen as { rows?: Array<{ op: string; size: number; opsPerSec: number; mbPerSec: number }>; note?: string } | null;
    if (so?.rows !== undefined) {
      lines.push('seal/open per second (benchmarks/seal.js, generator core):');
      lines.push(table(['op', 'bytes', 'ops/s', 'MB/s'], so.rows.map((r) => [r.op, String(r.size), fmtRate(r.opsPerSec), fmtMB(r.mbPerSec)]), 1));
    } else if (so?.note !== undefined) lines.push(`seal/open: ${so.note}`);
  }
  if (transports !== null) lines.push(...formatTransports(transports));
  if (e2e !== null && e2e.rows.length > 0) {
    lines.push('');
    lines.push('end to end: program to program through one server with each client library (raw: the load generator through the same router, no library)');
    lines.push('(msg/s delivered; MB/s payload; cpu = server/client process % of a core; msg/cpu-s = msg/s per second of client CPU, which holds up better than msg/s on a busy machine)');
    const base = (r: { size: number; k: number }): number => e2e!.rows.find((x) => x.system === 'natsjs' && x.size === r.size && x.k === r.k)?.msgsPerSec ?? NaN;
    lines.push(
      table(
        ['system', 'size', 'K', 'msg/s', 'MB/s', 'cpu%', 'msg/cpu-s', 'vs nats.js', 'ordered'],
        [...e2e.rows].sort((a, b) => a.size - b.size || a.k - b.k).map((r) => [r.system, sizeName(r.size), `K=${r.k}`, fmtRate(r.msgsPerSec), fmtMB(r.mbPerSec), `${r.serverCpu.toFixed(0)}/${r.clientCpu.toFixed(0)}`, fmtRate(r.msgsPerSec / (r.clientCpu / 100)), fmtRatio(r.msgsPerSec / base(r)), r.inOrder ? 'yes' : 'NO']),
      ),
    );
    for (const n of e2e.notes) lines.push(`e2e: ${n}`);
    for (const p of e2e.primitives) {
      lines.push(`sealing primitives (${p.backend}): X25519 ${fmtRate(p.x25519PerSec)}/s, fixed-base X25519 ${fmtRate(p.x25519BasePerSec)}/s, XSalsa20-Poly1305 ${fmtMB(p.secretboxMBps)} MB/s (64 KiB); X25519 bound on sealed msg/s, seal and open on one core: ${fmtRate(p.sealedBoundPerSec)}`);
    }
  }
  if (abuse.length > 0) {
    lines.push('');
    lines.push('abuse: a normal pair (256 B, K=1) alone and under each attack, same router, median of repeats (goal >= 0.90x; the anchor row below each is the same attack without postern)');
    lines.push(table(['attack', 'alone', 'attacked', 'ratio', 'each repeat', 'server cpu% alone / attacked / attack only', 'server µs/conn', 'gen alone / attacked / attacker cpu%', 'server RSS before / peak / after', 'attacker'], abuseTable(abuse, fmtRate, fmtBytes), 1));
    lines.push(...abuseLegend(abuse));
  }
  for (const [k, v] of Object.entries(notes)) lines.push(`${k}: ${v}`);
  lines.push('');
  lines.push('targets (router: issue 3; e2e and probe ratio: issue 14)');
  lines.push(table(['target', 'want', 'measured', 'met'], targets.map((x) => [x.name, x.target, x.shown, x.met === null ? '-' : x.met ? 'yes' : 'NO']), 4));
  if (streams !== null) {
    lines.push('', `streams (benchmarks/streams.ts, ${streams.mib} MiB per run): one stream ${streams.oneStream.postern.toFixed(0)} MB/s, direct TCP ${streams.oneStream.direct.toFixed(0)}, socat ${streams.oneStream.socat?.toFixed(0) ?? '-'}; 64 streams ${streams.parallel64.toFixed(0)} MB/s`);
    lines.push(table(['stream target', 'want', 'measured', 'met'], streams.targets.map((x) => [x.name, `>= ${x.target}x`, `${x.value.toFixed(2)}x`, x.met ? 'yes' : 'NO']), 4));
  }
  for (const w of warnings) lines.push(`warning: ${w}`);
  for (const f of failures) lines.push(`FAILED: ${f}`);
  lines.push('');
  const ok = failures.length === 0;
  lines.push(ok ? `RESULT: all in order (${checked} messages sequence-checked)` : `RESULT: NOT all in order: ${failures.length} failure(s)`);
  process.stdout.write(`${lines.join('\n')}\n`);

  const result = {
    schema: 1,
    startedAt: started.toISOString(),
    elapsedSecs: (performance.now() - t0) / 1000,
    mode: cfg.mode,
    config: cfg,
    machine,
    commit,
    dirty,
    allInOrder: ok,
    messagesChecked: checked,
    throughput: cells,
    ratios,
    latency: lat,
    scale,
    mesh,
    sealed: seal,
    transports,
    streams,
    e2e,
    abuse,
    targets,
    notes,
    timings,
    warnings,
    failures,
  };
  mkdirSync(resultsDir, { recursive: true });
  const out = flags.out ?? `${resultsDir}/${started.toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`;
  writeFileSync(out, `${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  note(`results: ${out} (${((performance.now() - t0) / 1000).toFixed(1)} s: ${Object.entries(timings).map(([k, v]) => `${k} ${v} s`).join(', ')})`);
  return ok ? 0 : 1;
}

main().then(
  async (code) => {
    await sleep(10);
    process.exit(code);
  },
  (err: unknown) => {
    note(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(2);
  },
);
