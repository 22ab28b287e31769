import { performance } from 'node:perf_hooks';
import { PosternConn } from './wire.js';
import { cpuMsOf, openFileLimit, rssOf, sleep, type ServerChild } from './proc.js';
import { WireCode } from '../../src/protocol/frame.js';

/**
 * Scale: N registered idle agents with keepalive running. Each agent is a bare registered
 * connection that answers the router's PINGs, nothing else (the router pings an agent it has
 * not heard from for one keepalive interval, so answering is what keeps it alive).
 */

/** Options of {@link runScale}. */
export interface ScaleSpec {
  /** Agents wanted; capped by the open-file limits of both processes. */
  n: number;
  /** Keepalive interval the router was started with, ms. */
  keepaliveMs: number;
  /** Ms of the idle window over which router CPU is measured. */
  idleMs: number;
  /** Source addresses to spread connections over (each has its own ephemeral ports). */
  localAddresses: string[];
  /** Registrations in flight at once. */
  concurrency: number;
  progress?: (text: string) => void;
}

/** What the scale run measured. */
export interface ScaleResult {
  requested: number;
  agents: number;
  /** Why fewer agents than requested, when so. */
  capNote: string | null;
  registrationSecs: number;
  registrationsPerSec: number;
  /** Router RSS before any agent, after registration and after the idle window, bytes. */
  rssBase: number;
  rssRegistered: number;
  rssAfterIdle: number;
  /** (RSS after the idle window - RSS before) / agents, bytes. */
  rssPerAgent: number;
  /** Router RSS extrapolated to 100,000 agents, bytes. */
  rssAt100k: number;
  keepaliveMs: number;
  idleMs: number;
  /** Router CPU over the idle window: ms and % of one core. */
  routerCpuMs: number;
  routerCpuPct: number;
  /** PINGs the agents answered during the idle window. */
  pingsAnswered: number;
  /** Router CPU per keepalive round trip, µs. */
  cpuUsPerPing: number;
  /** Agents closed with KEEPALIVE_TIMEOUT, and connections lost any other way. */
  expired: number;
  lost: number;
  errors: string[];
}

/** Registers the agents against `router`, idles, measures, disconnects. */
export async function runScale(router: ServerChild, spec: ScaleSpec): Promise<ScaleResult> {
  const errors: string[] = [];
  const onError = (what: string): void => {
    if (errors.length < 10 && !what.startsWith('CLOSE GOING_AWAY')) errors.push(what);
  };
  // Each side holds one descriptor per agent, plus a margin for everything else.
  const limit = Math.min(openFileLimit('self'), openFileLimit(router.pid)) - 300;
  const n = Math.max(1, Math.min(spec.n, limit));
  const capNote =
    n < spec.n
      ? `capped at ${n} by the open-file limit (RLIMIT_NOFILE ${Math.min(openFileLimit('self'), openFileLimit(router.pid))}); ` +
        `raise it with \`ulimit -n ${spec.n * 2 + 1000}\` (needs a hard limit that high) for ${spec.n}`
      : null;
  await sleep(200);
  const rssBase = rssOf(router.pid);
  const conns = new Array<PosternConn>(n);
  let lost = 0;
  let done = false;
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const la = spec.localAddresses[i % spec.localAddresses.length];
      const c = await PosternConn.open('127.0.0.1', router.port, onError, la, 60_000);
      c.sock.on('close', () => {
        if (!done) lost++;
      });
      conns[i] = c;
      if (i % 1000 === 999) spec.progress?.(`scale: registered ${i + 1}/${n}`);
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  const registrationSecs = (performance.now() - t0) / 1000;
  const rssRegistered = rssOf(router.pid);

  const pings0 = conns.reduce((a, c) => a + c.pings, 0);
  const cpu0 = cpuMsOf(router.pid);
  const tIdle = performance.now();
  while (performance.now() - tIdle < spec.idleMs) {
    await sleep(Math.min(500, spec.idleMs - (performance.now() - tIdle)));
    spec.progress?.(`scale: ${n} idle agents, ${((performance.now() - tIdle) / 1000).toFixed(1)}/${spec.idleMs / 1000} s`);
  }
  const idleMs = performance.now() - tIdle;
  const routerCpuMs = cpuMsOf(router.pid) - cpu0;
  const pingsAnswered = conns.reduce((a, c) => a + c.pings, 0) - pings0;
  const rssAfterIdle = rssOf(router.pid);
  const expired = conns.filter((c) => c.closeCode === WireCode.KEEPALIVE_TIMEOUT).length;

  done = true;
  for (const c of conns) c.sock.destroy();
  const rssPerAgent = (rssAfterIdle - rssBase) / n;
  return {
    requested: spec.n,
    agents: n,
    capNote,
    registrationSecs,
    registrationsPerSec: n / registrationSecs,
    rssBase,
    rssRegistered,
    rssAfterIdle,
    rssPerAgent,
    rssAt100k: rssBase + rssPerAgent * 100_000,
    keepaliveMs: spec.keepaliveMs,
    idleMs,
    routerCpuMs,
    routerCpuPct: (routerCpuMs / idleMs) * 100,
    pingsAnswered,
    cpuUsPerPing: pingsAnswered > 0 ? (routerCpuMs * 1000) / pingsAnswered : NaN,
    expired,
    lost,
    errors,
  };
}
