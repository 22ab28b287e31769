/**
 * The `abuse` section: one normal pair's throughput through the router
 * alone and under each attack, as a ratio within one run (median of repeats). The attacks
 * run in a child process of their own (`node abuse.js attack <name> <port>`, pinned to the
 * generator core), so their JavaScript does not stall the pair's generator loop; each attack
 * gets a fresh router with the default limits (keepalive 60 s), and comes from 127.0.0.2..17
 * while the pair comes from 127.0.0.1.
 *
 * Each attack also runs against an anchor (null-router-process.js: a null router for the
 * attacker and a plain forwarder for the pair, one process on the router's core): the
 * pair's ratio there is what the attack costs on this machine (kernel, the attacker's CPU
 * on the generator's core) with no postern work, so the router's ratio can be read against
 * it. The goal stays the router's ratio: >= 0.9x.
 *
 * Every attack is bounded: in count (connections), in time (the parent stops it after the
 * measured run; the child also exits when its stdin closes) and in memory (the parent stops
 * an attack whose router passes RSS_GUARD).
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Decoder } from '../src/protocol/decoder.js';
import { ControlCodec, readClose } from '../src/protocol/control.js';
import { encodePing, encodePreamble, encodeSend } from '../src/protocol/encoder.js';
import { FrameType, MAX_MAX_FRAME, PROTOCOL_VERSION, RELAY_HEADER_SIZE, WIRE_CODE_NAMES } from '../src/protocol/frame.js';
import { cpuMsOf, rssOf, script, sleep, startChild, type ServerChild } from './lib/proc.js';
import { runCell, type CellResult, type CellSpec } from './lib/load.js';
import { plainWire, posternWire, type Wire } from './lib/wire.js';
import { median } from './lib/stats.js';

/** The attacks, in the order they run. */
export const ATTACKS = ['random', 'nonreading', 'register', 'register-max', 'idle', 'ping', 'trickle', 'trickle-unbounded'] as const;
export type AttackName = (typeof ATTACKS)[number];

const DESCRIBE: Record<AttackName, string> = {
  random: '64 connections sending random bytes, ~200 new a second',
  nonreading: '20 receivers that never read, 20 senders flooding them',
  register: 'registration flood from 16 addresses at 1,000 connections/s (at most 64 in flight): connect, REGISTER, hang up on the answer',
  'register-max': 'the same as fast as answers come: 64 loops, connect, REGISTER, hang up on the answer (a faster server gets more connections)',
  idle: '15,000 registered idle connections',
  ping: '4 connections sending PINGs, never reading the PONGs',
  trickle: '300 x 1 MiB SEND 16 bytes short, a byte every 5 s',
  'trickle-unbounded': 'the same, partialBytesBudget and minFrameRate off (as before the fix)',
};

/** Router RSS at which an attack is stopped early (the machine is shared). */
const RSS_GUARD = 1.5 * 2 ** 30;

/** The pair's figures under one attack against one server (the router, or the anchor), medians of repeats. */
export interface PairFigures {
  /** The pair alone and under the attack, messages/s. */
  alone: number;
  attacked: number;
  /** Median of the per-repeat ratios attacked / alone, and each of them. */
  ratio: number;
  ratios: number[];
  /** Server CPU (% of a core) over the pair's window, alone and attacked. */
  cpuAlone: number;
  cpuAttacked: number;
  /** The pair's generator CPU (% of a core) alone and attacked, and the attacker's: on a busy machine the generator, not the server, may be what starves. */
  genAlone: number;
  genAttacked: number;
  attackerCpu: number;
  /**
   * Server CPU (% of a core) over 1 s of the attack with no pair: what the attack alone
   * costs the server, and the attacker's connections per second then (from its counters).
   */
  cpuAttackOnly: number;
  /** Server RSS before the first attack, its peak under attack, and 2 s after the last one ended. */
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
  /** What the attacker saw (connections made, closes by code, ...), from its last repeat. */
  attacker: Record<string, number>;
  stoppedEarly: boolean;
  inOrder: boolean;
}

/** One row of the section: the pair through the router, and through the anchor (when measured). */
export interface AbuseRow extends PairFigures {
  attack: AttackName;
  what: string;
  /**
   * The same attack against a null router (answers each preamble with one canned REGISTERED,
   * then reads at most 256 KiB more), while the pair goes through a plain forwarder in the same process on
   * the same core: what the attack costs on this machine with no postern work at all.
   */
  anchor: PairFigures | null;
}

/** What the section needs from run.js. */
export interface AbuseContext {
  startRouter(options: Record<string, unknown>, profileName?: string): Promise<ServerChild>;
  /** The generator's core (the attacker runs there too) and the servers' core (the anchor runs there). */
  core: number;
  serverCore: number;
  repeats: number;
  warmupMs: number;
  durationMs: number;
  quick: boolean;
  attacks: AttackName[];
  /** Also run each attack against the anchor. */
  anchor: boolean;
  /** Write a CPU profile of each attack's router (node --cpu-prof) into benchmarks/results. */
  profile: boolean;
  progress(text: string): void;
  record(label: string, r: CellResult): void;
  /** Reports an attack that could not be measured. */
  fail(what: string): void;
}

function routerOptions(attack: AttackName): Record<string, unknown> {
  // The default limits, as an operator runs it; keepalive long enough that idle attackers
  // need not answer PINGs within a run.
  const base: Record<string, unknown> = { keepaliveInterval: 60_000, maxConnectionsPerAddress: 1000, registrationRate: 50 };
  // 15,000 registrations from 16 addresses take 19 s at the default rate: the idle attack
  // measures idle connections, not their arrival.
  if (attack === 'idle') base['registrationRate'] = 0;
  if (attack === 'trickle-unbounded') Object.assign(base, { partialBytesBudget: 2 ** 40, minFrameRate: 0 });
  return base;
}

/** Where the pair and the attacker go: the router (one port for both) or the anchor. */
interface Target {
  label: string;
  wire: Wire;
  pid: number;
  attackPort: number;
}

/** Runs the section: one fresh router (and anchor) per attack. */
export async function abuseSection(ctx: AbuseContext): Promise<AbuseRow[]> {
  const rows: AbuseRow[] = [];
  for (const attack of ctx.attacks) {
    // One attack that fails (e.g. the pair cannot register on a starved machine) is reported
    // and the others still run.
    try {
      let figures: PairFigures;
      const router = await ctx.startRouter(routerOptions(attack), ctx.profile ? `abuse-${attack}-${Date.now()}.cpuprofile` : undefined);
      try {
        figures = await measure(ctx, attack, { label: `abuse ${attack}`, wire: posternWire('127.0.0.1', router.port), pid: router.pid, attackPort: router.port });
      } finally {
        await router.stop();
      }
      let anchor: PairFigures | null = null;
      if (ctx.anchor && attack !== 'trickle-unbounded') {
        const nul = await startChild(process.execPath, [script('null-router-process.js')], { core: ctx.serverCore, ready: /READY (\d+) (\d+)/ });
        try {
          anchor = await measure(ctx, attack, { label: `abuse ${attack} anchor`, wire: plainWire('127.0.0.1', nul.port), pid: nul.pid, attackPort: Number(nul.announced[2]) });
        } finally {
          await nul.stop();
        }
      }
      rows.push({ attack, what: DESCRIBE[attack], ...figures, anchor });
    } catch (err) {
      ctx.fail(`abuse ${attack}: ${(err as Error).message}`);
    }
  }
  return rows;
}

async function measure(ctx: AbuseContext, attack: AttackName, target: Target): Promise<PairFigures> {
  const { wire, label } = target;
  const cell: CellSpec = { pattern: 'pairs', size: 256, k: 1, warmupMs: ctx.warmupMs, durationMs: ctx.durationMs, serverPid: target.pid };
  // Warm the server's JIT first.
  ctx.record(`${label} warm-up`, await runCell(wire, { ...cell, warmupMs: 0, durationMs: ctx.quick ? 200 : 1000 }));
  const rssBefore = rssOf(target.pid);
  let rssPeak = rssBefore;
  const alone: number[] = [];
  const attacked: number[] = [];
  const ratios: number[] = [];
  const cpuAlone: number[] = [];
  const cpuAttacked: number[] = [];
  const genAlone: number[] = [];
  const genAttacked: number[] = [];
  const attackerCpu: number[] = [];
  const cpuAttackOnly: number[] = [];
  let attacker: Record<string, number> = {};
  let stoppedEarly = false;
  let inOrder = true;
  for (let rep = 0; rep < ctx.repeats; rep++) {
    ctx.progress(`${label} rep ${rep + 1}: pair alone`);
    const a = await runCell(wire, { ...cell, progress: (x) => ctx.progress(`${label} rep ${rep + 1} alone: ${Math.round(x)} msg/s`) });
    ctx.record(`${label} alone`, a);
    ctx.progress(`${label} rep ${rep + 1}: starting the attack`);
    const child = await startAttacker(attack, target.attackPort, ctx.core);
    const watch = setInterval(() => {
      try {
        const rss = rssOf(target.pid);
        if (rss > rssPeak) rssPeak = rss;
        if (rss > RSS_GUARD && !stoppedEarly) {
          stoppedEarly = true;
          void child.stop(2000);
        }
      } catch {
        // the server is gone: the run reports it
      }
    }, 100);
    let b: CellResult;
    const c0 = cpuMsOf(child.pid);
    const t0 = performance.now();
    try {
      b = await runCell(wire, { ...cell, progress: (x) => ctx.progress(`${label} rep ${rep + 1} attacked: ${Math.round(x)} msg/s`) });
      attackerCpu.push(((cpuMsOf(child.pid) - c0) * 100) / (performance.now() - t0));
      // The attack with no pair: the server's CPU for the attack alone.
      const s0 = cpuMsOf(target.pid);
      const t1 = performance.now();
      await sleep(ctx.quick ? 300 : 1000);
      cpuAttackOnly.push(((cpuMsOf(target.pid) - s0) * 100) / (performance.now() - t1));
    } finally {
      attacker = await child.finish();
      clearInterval(watch);
    }
    ctx.record(`${label} attacked`, b);
    inOrder &&= a.inOrder && b.inOrder;
    alone.push(a.msgsPerSec);
    attacked.push(b.msgsPerSec);
    ratios.push(b.msgsPerSec / a.msgsPerSec);
    cpuAlone.push(a.serverCpu);
    cpuAttacked.push(b.serverCpu);
    genAlone.push(a.genCpu);
    genAttacked.push(b.genCpu);
    // Let the server see the attackers go before the next pair runs alone.
    await sleep(ctx.quick ? 200 : 1000);
  }
  await sleep(1000);
  return {
    alone: median(alone),
    attacked: median(attacked),
    ratio: median(ratios),
    ratios,
    cpuAlone: median(cpuAlone),
    cpuAttacked: median(cpuAttacked),
    genAlone: median(genAlone),
    genAttacked: median(genAttacked),
    attackerCpu: median(attackerCpu),
    cpuAttackOnly: median(cpuAttackOnly),
    rssBefore,
    rssPeak,
    rssAfter: rssOf(target.pid),
    attacker,
    stoppedEarly,
    inOrder,
  };
}

interface Attacker {
  readonly pid: number;
  /** Stops the attack; resolves once the child is gone. */
  stop(ms?: number): Promise<void>;
  /** Stops it and returns its counters. */
  finish(): Promise<Record<string, number>>;
}

async function startAttacker(attack: AttackName, port: number, core: number): Promise<Attacker> {
  const name = attack === 'trickle-unbounded' ? 'trickle' : attack;
  // On the generator's core, so the router's core sees only the router. Not niced: on a
  // busy machine a niced attacker barely runs and the attack does not happen (the attacker
  // column says how much of it did).
  const child = await startChild(process.execPath, [script('abuse.js'), 'attack', name, String(port)], { core, ready: /READY (\d+)/, timeoutMs: 120_000 });
  let out = '';
  child.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    pid: child.pid,
    stop: (ms) => child.stop(ms),
    async finish() {
      await child.stop(5000);
      const line = out.split('\n').reverse().find((l) => l.startsWith('STATS '));
      return line === undefined ? {} : (JSON.parse(line.slice(6)) as Record<string, number>);
    },
  };
}

/**
 * Server CPU per attacker connection in µs (user + system, over the attack with no pair),
 * for the attacks that are a stream of connections ("-" for the others). CPU time holds up
 * on a busy machine far better than the pair's throughput does.
 */
const CONNECTION_FLOODS: readonly AttackName[] = ['random', 'register', 'register-max'];

function usPerConnection(attack: AttackName, r: PairFigures): string {
  const rate = r.attacker['conn_per_s'] ?? 0;
  return CONNECTION_FLOODS.includes(attack) && rate > 0 ? ((r.cpuAttackOnly * 1e4) / rate).toFixed(0) : '-';
}

/** The section's table rows, for run.js's report: each attack through the router, then its anchor. */
export function abuseTable(rows: AbuseRow[], fmtRate: (x: number) => string, fmtBytes: (x: number) => string): string[][] {
  const line = (attack: AttackName, name: string, r: PairFigures): string[] => [
    name,
    fmtRate(r.alone),
    fmtRate(r.attacked),
    `${r.ratio.toFixed(2)}x`,
    r.ratios.map((x) => x.toFixed(2)).join(' '),
    `${r.cpuAlone.toFixed(0)} / ${r.cpuAttacked.toFixed(0)} / ${r.cpuAttackOnly.toFixed(0)}`,
    usPerConnection(attack, r),
    `${r.genAlone.toFixed(0)} / ${r.genAttacked.toFixed(0)} / ${r.attackerCpu.toFixed(0)}`,
    `${fmtBytes(r.rssBefore)} / ${fmtBytes(r.rssPeak)} / ${fmtBytes(r.rssAfter)}`,
    Object.entries(r.attacker)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') + (r.stoppedEarly ? ' (stopped at the RSS guard)' : ''),
  ];
  return rows.flatMap((r) => (r.anchor === null ? [line(r.attack, r.attack, r)] : [line(r.attack, r.attack, r), line(r.attack, '  anchor', r.anchor)]));
}

/** Descriptions of the attacks, for the report. */
export function abuseLegend(rows: AbuseRow[]): string[] {
  const legend = rows.map((r) => `  ${r.attack}: ${r.what}`);
  if (rows.some((r) => r.anchor !== null)) {
    legend.push('  anchor: the same attack against a null router (one canned REGISTERED per preamble, then reads and drops 256 KiB at most; closes anything else after one read), the pair through a plain forwarder in that process: the cost of the attack on this machine without postern');
  }
  return legend;
}

// ------------------------------------------------------------------------------ attacker

const codec = new ControlCodec();
const HELLO = Buffer.concat([encodePreamble(PROTOCOL_VERSION), ...codec.encodeRegister({})]);
const ADDRESSES = Array.from({ length: 16 }, (_, i) => `127.0.0.${i + 2}`);

const stats: Record<string, number> = {};
const bump = (k: string, n = 1): void => {
  stats[k] = (stats[k] ?? 0) + n;
};
const sockets = new Set<Socket>();
/** Ms from connect to the first answer, per registration attempt. */
const answerMs: number[] = [];
let stopping = false;

function open(port: number, i: number): Socket {
  const s = connect({ port, host: '127.0.0.1', localAddress: ADDRESSES[i % ADDRESSES.length]! });
  s.setNoDelay(true);
  sockets.add(s);
  bump('connections');
  s.on('error', () => {});
  s.on('close', () => sockets.delete(s));
  return s;
}

/** Reads frames from `s`: the REGISTERED body's ID and each CLOSE code go to the callbacks. */
function frames(s: Socket, onRegistered: (id: Buffer) => void, onOther?: (type: number) => void): void {
  const d = new Decoder(
    {
      frame(buf, start, end) {
        const type = buf[start + 4]!;
        if (type === FrameType.REGISTERED) onRegistered(Buffer.from(codec.decodeRegistered(buf, start, end).id));
        else if (type === FrameType.CLOSE) bump(`close_${WIRE_CODE_NAMES[readClose(buf, start, end).code] ?? 'other'}`);
        else onOther?.(type);
      },
    },
    { maxFrame: MAX_MAX_FRAME, preamble: true },
  );
  s.on('data', (c: Buffer) => {
    try {
      d.push(c);
    } catch {
      // the router's bytes are not what this attacker looks at
    }
  });
}

function register(port: number, i: number): Promise<{ s: Socket; id: Buffer }> {
  return new Promise((resolve, reject) => {
    const s = open(port, i);
    s.write(HELLO);
    frames(s, (id) => resolve({ s, id }));
    s.once('close', () => reject(new Error('closed before REGISTERED')));
  });
}

/** Writes `batch` whenever the socket takes it, until it closes. */
function flood(s: Socket, batch: Buffer, counter: string): void {
  const go = (): void => {
    while (!s.destroyed && !stopping) {
      bump(counter, batch.length);
      if (!s.write(batch)) {
        s.once('drain', go);
        return;
      }
    }
  };
  go();
}

/** Connects, sends REGISTER, hangs up on the first answer; resolves when the socket is closed. */
function registerOnce(port: number, i: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t0 = performance.now();
    const s = open(port, i);
    s.write(HELLO);
    s.once('data', () => {
      answerMs.push(performance.now() - t0);
      bump('answers');
      s.destroy();
    });
    s.once('close', () => resolve());
  });
}

async function inBatches(n: number, concurrency: number, f: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n && !stopping) await f(next++);
    }),
  );
}

const attacks: Record<string, (port: number) => Promise<void>> = {
  async random(port) {
    const pool = Array.from({ length: 64 }, () => randomBytes(1024));
    let live = 0;
    let i = 0;
    // At most one new connection per 5 ms (200 a second), at most 64 at once.
    setInterval(() => {
      if (stopping || live >= 64) return;
      live++;
      const s = open(port, i);
      s.write(pool[i++ % pool.length]!);
      s.resume();
      s.once('close', () => live--);
    }, 5);
  },

  async nonreading(port) {
    const pair = async (i: number): Promise<void> => {
      while (!stopping) {
        try {
          const rx = await register(port, i);
          // Never reads again.
          rx.s.pause();
          const tx = await register(port, i + 20);
          const batch = Buffer.concat(Array.from({ length: 256 }, () => Buffer.concat(encodeSend(rx.id, 0, Buffer.alloc(230)))));
          flood(tx.s, batch, 'bytes_sent');
          await new Promise<void>((r) => {
            rx.s.once('close', r);
            tx.s.once('close', r);
          });
          rx.s.destroy();
          tx.s.destroy();
          bump('pairs_cut');
        } catch {
          await sleep(100);
        }
      }
    };
    for (let i = 0; i < 20; i++) void pair(i);
  },

  async register(port) {
    // Open loop at a fixed rate: the router and the anchor get the same offered load, however
    // fast each answers (a closed loop gives a faster server more connections to handle).
    const rate = 1000;
    const t0 = performance.now();
    let opened = 0;
    let live = 0;
    setInterval(() => {
      const due = Math.floor(((performance.now() - t0) * rate) / 1000);
      while (!stopping && opened < due && live < 64) {
        opened++;
        live++;
        registerOnce(port, opened).then(() => live--, () => live--);
      }
      // Behind by more than the cap: the missed ones are not made up in a burst.
      if (due - opened > 64) opened = due - 64;
    }, 5);
  },

  async 'register-max'(port) {
    const loop = async (i: number): Promise<void> => {
      while (!stopping) await registerOnce(port, i);
    };
    for (let i = 0; i < 64; i++) void loop(i);
  },

  async idle(port) {
    await inBatches(15_000, 256, async (i) => {
      try {
        await register(port, i);
        bump('registered');
      } catch {
        bump('failed');
      }
    });
  },

  async ping(port) {
    const batch = Buffer.concat(Array.from({ length: 64 * 1024 / 6 }, () => encodePing()));
    for (let i = 0; i < 4; i++) {
      const { s } = await register(port, i);
      s.pause();
      flood(s, batch, 'ping_bytes');
    }
  },

  async trickle(port) {
    const total = 1024 * 1024;
    let ready = 0;
    await inBatches(300, 32, async (i) => {
      try {
        const { s, id } = await register(port, i);
        const frame = Buffer.concat(encodeSend(id, 1, Buffer.alloc(total - RELAY_HEADER_SIZE, 1)));
        await new Promise<void>((r) => s.write(frame.subarray(0, total - 16), () => r()));
        ready++;
        let at = total - 16;
        const t = setInterval(() => {
          if (s.destroyed || at >= total - 1) return clearInterval(t);
          s.write(frame.subarray(at, ++at));
        }, 5000);
      } catch {
        bump('failed');
      }
    });
    bump('partial_frames_sent', ready);
  },
};

const started = performance.now();

async function attackMain(name: string, port: number): Promise<void> {
  const f = attacks[name];
  if (f === undefined) throw new Error(`unknown attack ${name}`);
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    bump('open_at_end', sockets.size);
    if (answerMs.length > 0) {
      answerMs.sort((a, b) => a - b);
      stats['answer_ms_p50'] = Math.round(answerMs[answerMs.length >> 1]! * 10) / 10;
      stats['answer_ms_p99'] = Math.round(answerMs[Math.floor(answerMs.length * 0.99)]! * 10) / 10;
    }
    stats['conn_per_s'] = Math.round(((stats['connections'] ?? 0) * 1000) / (performance.now() - started));
    process.stdout.write(`STATS ${JSON.stringify(stats)}\n`);
    for (const s of sockets) s.destroy();
    setTimeout(() => process.exit(0), 50);
  };
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
  // Hard stop, whatever happens.
  setTimeout(stop, 10 * 60_000).unref();
  await f(port);
  process.stdout.write('READY 0\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'attack') {
  attackMain(process.argv[3] ?? '', Number(process.argv[4])).catch((err: unknown) => {
    process.stderr.write(`attacker failed: ${String(err)}\n`);
    process.exit(2);
  });
}
