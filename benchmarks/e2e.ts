/**
 * The end-to-end section of `npm run bench` (`--sections e2e`): program to program through
 * one server, using each system's client library on both sides (see `lib/e2e.ts`), next to
 * the raw load generator through the same router (the ceiling: no library), nats.js through
 * nats-server and mqtt.js (QoS 0) through mosquitto. Sealed cells (anonymous envelope, and
 * with the sender proof) beside plain ones. Every message is sequence-checked.
 *
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { runCell, type CellResult } from './lib/load.js';
import { primitiveSpeeds, runE2E, type E2EResult, type E2ESystem, type PrimitiveSpeed } from './lib/e2e.js';
import { nativeCryptoAvailable } from '../src/crypto/backend.js';
import { freePort, startChild, which, type ServerChild } from './lib/proc.js';
import { median } from './lib/stats.js';
import { posternWire } from './lib/wire.js';

/** Today's figure for sealed 256 B (seal and open, K = 1), before fast sealing: the target is 3x it. */
export const SEALED_256_BEFORE = 3680;

/** What the section needs from run.ts. */
export interface E2EEnv {
  quick: boolean;
  sizes: number[];
  ks: number[];
  repeats: number;
  durationMs: number;
  warmupMs: number;
  resultsDir: string;
  /** 'postern', 'postern-iter', 'raw', 'natsjs', 'mqttjs', 'sealed-anon', 'sealed-proof'. */
  systems: string[];
  startRouter(): Promise<ServerChild>;
  startNats(): Promise<ServerChild>;
  progress(text: string): void;
  note(text: string): void;
  /** Records a run: counts its messages, and reports one that lost or reordered something (postern: a failure; the others: a warning). */
  misses(system: string, label: string, r: E2EResult | CellResult): void;
}

/** One cell's medians. */
export interface E2ERow {
  system: string;
  size: number;
  k: number;
  msgsPerSec: number;
  mbPerSec: number;
  serverCpu: number;
  clientCpu: number;
  inOrder: boolean;
  runs: Array<E2EResult | CellResult>;
}

/** The section's result (also stored in the JSON). */
export interface E2EReport {
  rows: E2ERow[];
  notes: string[];
  /** The sealing primitives' own speed, per backend, measured in this run. */
  primitives: PrimitiveSpeed[];
}

/** The CORE the servers are pinned to (run.ts pins itself to the other). */
const SERVER_CORE = 0;

async function startMosquitto(resultsDir: string): Promise<ServerChild> {
  const port = await freePort();
  mkdirSync(resultsDir, { recursive: true });
  const conf = `${resultsDir}/mosquitto-bench.conf`;
  // Loopback only; no persistence; QoS 0 to an online subscriber is never queued for long,
  // but a large byte cap keeps mosquitto from dropping what the benchmark's window allows.
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_bytes 0\nmax_queued_messages 0\n`);
  const bin = which('mosquitto') ?? '/usr/sbin/mosquitto';
  return startChild(bin, ['-c', conf], { core: SERVER_CORE, port, stderr: 'ignore' });
}

/** Runs the section. Servers are started here and stopped before it returns. */
export async function e2eSection(env: E2EEnv): Promise<E2EReport> {
  const notes: string[] = [];
  const rows: E2ERow[] = [];
  const servers: ServerChild[] = [];
  const want = (s: string): boolean => env.systems.includes(s);
  try {
    const router = await env.startRouter();
    servers.push(router);
    let nats: ServerChild | null = null;
    if (want('natsjs')) {
      if (which('nats-server') === null) notes.push('nats-server not on PATH: nats.js skipped');
      else {
        nats = await env.startNats();
        servers.push(nats);
      }
    }
    let mosq: ServerChild | null = null;
    if (want('mqttjs')) {
      if (which('mosquitto') === null && which('/usr/sbin/mosquitto') === null) notes.push('mosquitto not installed: mqtt.js skipped');
      else {
        try {
          mosq = await startMosquitto(env.resultsDir);
          servers.push(mosq);
        } catch (err) {
          notes.push(`mosquitto did not start: ${(err as Error).message}`);
        }
      }
    }
    const serverOf = (system: string): ServerChild | null =>
      system === 'natsjs' ? nats : system === 'mqttjs' ? mosq : router;

    const cells: Array<{ system: string; size: number; k: number }> = [];
    const plainSystems = ['raw', 'postern', 'postern-iter', 'natsjs', 'mqttjs'].filter(want);
    for (const size of env.sizes) for (const k of env.ks) for (const system of plainSystems) cells.push({ system, size, k });
    const sealedSystems = ['sealed-anon', 'sealed-proof', 'sealed-anon-portable', 'sealed-proof-portable'].filter(want);
    const sealedSizes = env.quick ? [env.sizes[0]!] : [256, 65536];
    const sealedKs = env.quick ? [1] : env.ks;
    for (const size of sealedSizes) {
      for (const k of sealedKs) {
        // The portable backend only at K = 1: it is the "before" of the sealed rows.
        for (const system of sealedSystems) if (k === 1 || !system.endsWith('-portable')) cells.push({ system, size, k });
        if (!env.sizes.includes(size) && want('postern')) cells.push({ system: 'postern', size, k });
      }
    }
    // Warm the JIT of the library and of each server before measuring.
    for (const system of new Set(cells.map((c) => c.system))) {
      const s = serverOf(system);
      if (s === null || system === 'raw' || env.quick) continue;
      env.progress(`e2e warm-up ${system}`);
      await runE2E({ system: system as E2ESystem, host: '127.0.0.1', port: s.port, size: 256, k: 1, warmupMs: 0, durationMs: env.quick ? 100 : 500 });
    }
    // Cells of one size and K alternate systems within each repeat, so drift hits them alike.
    const groups = new Map<string, typeof cells>();
    for (const c of cells) {
      const key = `${c.size}/${c.k}`;
      groups.set(key, [...(groups.get(key) ?? []), c]);
    }
    for (const group of groups.values()) {
      const runs = new Map<string, Array<E2EResult | CellResult>>();
      for (let rep = 0; rep < env.repeats; rep++) {
        for (const c of group) {
          const s = serverOf(c.system);
          if (s === null) continue;
          const label = `e2e ${c.system} ${c.size} B K=${c.k}`;
          env.progress(`${label} rep ${rep + 1}/${env.repeats}`);
          let r: E2EResult | CellResult;
          try {
            r =
              c.system === 'raw'
                ? await runCell(posternWire('127.0.0.1', s.port), { pattern: 'pairs', size: c.size, k: c.k, warmupMs: env.warmupMs, durationMs: env.durationMs, serverPid: s.pid })
                : await runE2E({ system: c.system as E2ESystem, host: '127.0.0.1', port: s.port, size: c.size, k: c.k, warmupMs: env.warmupMs, durationMs: env.durationMs, serverPid: s.pid });
          } catch (err) {
            env.misses(c.system, label, { msgsPerSec: NaN, mbPerSec: NaN, serverCpu: NaN, clientCpu: NaN, inOrder: false, sent: 0, received: 0, outOfOrder: 0, lost: 0, errors: [(err as Error).message] });
            continue;
          }
          env.misses(c.system, label, r);
          const l = runs.get(c.system) ?? [];
          l.push(r);
          runs.set(c.system, l);
        }
      }
      for (const c of group) {
        const rs = runs.get(c.system);
        if (rs === undefined || rs.length === 0) continue;
        const row: E2ERow = {
          ...c,
          msgsPerSec: median(rs.map((r) => r.msgsPerSec)),
          mbPerSec: median(rs.map((r) => r.mbPerSec)),
          serverCpu: median(rs.map((r) => r.serverCpu)),
          clientCpu: median(rs.map((r) => ('clientCpu' in r ? r.clientCpu : r.genCpu))),
          inOrder: rs.every((r) => r.inOrder),
          runs: rs,
        };
        rows.push(row);
        if (!env.quick) env.note(`e2e ${c.system} ${c.size} B K=${c.k}: ${Math.round(row.msgsPerSec)} msg/s, ${row.mbPerSec.toFixed(1)} MB/s`);
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }
  const primitives: PrimitiveSpeed[] = [];
  if (env.systems.some((s) => s.startsWith('sealed'))) {
    env.progress('sealing primitives');
    primitives.push(...(await primitiveSpeeds(nativeCryptoAvailable() ? ['native', 'portable'] : ['portable'], env.quick ? 20 : 60, env.quick ? 1 : 9)));
  }
  return { rows, notes, primitives };
}

/** The ratios issue 14 asks for, from one run's rows. */
export function e2eTargets(rows: E2ERow[]): Array<{ name: string; want: string; value: number | undefined; ok: (v: number) => boolean; unit: 'x' | 'msg/s' }> {
  const get = (system: string, size: number, k: number): E2ERow | undefined => rows.find((r) => r.system === system && r.size === size && r.k === k);
  const ratio = (a: E2ERow | undefined, b: E2ERow | undefined, bytes = false): number | undefined =>
    a === undefined || b === undefined ? undefined : bytes ? a.mbPerSec / b.mbPerSec : a.msgsPerSec / b.msgsPerSec;
  const worst = (xs: Array<number | undefined>): number | undefined => {
    const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
    return v.length === 0 ? undefined : Math.min(...v);
  };
  const ks = [...new Set(rows.map((r) => r.k))];
  const out: ReturnType<typeof e2eTargets> = [];
  for (const k of [1, 16].filter((x) => ks.includes(x))) {
    out.push({ name: `e2e 16 B K=${k}: postern lib vs nats.js`, want: '>= 3x', value: ratio(get('postern', 16, k), get('natsjs', 16, k)), ok: (v) => v >= 3, unit: 'x' });
  }
  out.push({ name: 'e2e 64 KiB bytes/s: postern lib vs raw generator (worst K)', want: '>= 0.8x', value: worst(ks.map((k) => ratio(get('postern', 65536, k), get('raw', 65536, k), true))), ok: (v) => v >= 0.8, unit: 'x' });
  out.push({ name: 'e2e 64 KiB: postern lib vs nats.js (worst K)', want: '>= 2x', value: worst(ks.map((k) => ratio(get('postern', 65536, k), get('natsjs', 65536, k), true))), ok: (v) => v >= 2, unit: 'x' });
  out.push({
    name: 'e2e sealed 64 KiB bytes/s vs plain (worst of anon/proof, K)',
    want: '>= 0.5x',
    value: worst(ks.flatMap((k) => ['sealed-anon', 'sealed-proof'].map((s) => ratio(get(s, 65536, k), get('postern', 65536, k), true)))),
    ok: (v) => v >= 0.5,
    unit: 'x',
  });
  const s256 = worst(['sealed-anon', 'sealed-proof'].map((s) => get(s, 256, 1)?.msgsPerSec));
  out.push({ name: `e2e sealed 256 B K=1 msg/s (worst of anon/proof) vs ${SEALED_256_BEFORE} (issue 14)`, want: '>= 3x', value: s256 === undefined ? undefined : s256 / SEALED_256_BEFORE, ok: (v) => v >= 3, unit: 'x' });
  const p256 = worst(['sealed-anon-portable', 'sealed-proof-portable'].map((s) => get(s, 256, 1)?.msgsPerSec));
  out.push({ name: 'e2e sealed 256 B K=1: native vs portable crypto, same run', want: '>= 3x', value: s256 === undefined || p256 === undefined ? undefined : s256 / p256, ok: (v) => v >= 3, unit: 'x' });
  return out;
}
