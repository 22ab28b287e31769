import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WIRE_CODE_NAMES } from '../protocol/frame.js';
import type { Router } from './router.js';
import { bindServer } from '../net/listen.js';

/**
 * Prometheus text exposition (format 0.0.4) of a router's counters, and a small HTTP
 * listener serving it at /metrics with /healthz beside it. Label values come from fixed
 * sets (wire code names, drop reasons, peer router IDs): never an agent ID or an address.
 */

type Sample = [labels: Record<string, string | number> | null, value: number];

function family(out: string[], name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) {
    const l = labels === null ? '' : `{${Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/["\\\n]/g, '_')}"`).join(',')}}`;
    out.push(`${name}${l} ${Number.isFinite(value) ? value : 0}`);
  }
}

function byCode(counts: Record<number, number>): Sample[] {
  return Object.entries(counts).map(([code, n]) => [{ code: WIRE_CODE_NAMES[Number(code)] ?? `code_${code}` }, n]);
}

/** This package's version, from its package.json (dist/src/router/ -> the package root); '0.0.0' if unreadable. */
export const PACKAGE_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/** `Max open files` (soft) from /proc/self/limits, or undefined where there is no /proc. */
function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Open descriptors: the entries of /proc/self/fd (less the one readdir itself holds). */
function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

/**
 * The standard process_* families (the names prom-client and the Go client use, so stock
 * dashboards work) and postern_build_info. Descriptor counts come from /proc/self, which
 * the unit's ProcSubset=pid leaves visible; elsewhere they are left out, not faked.
 */
function processFamilies(out: string[]): void {
  const cpu = process.cpuUsage();
  family(out, 'process_cpu_user_seconds_total', 'counter', 'User CPU time spent in seconds.', [[null, cpu.user / 1e6]]);
  family(out, 'process_cpu_system_seconds_total', 'counter', 'System CPU time spent in seconds.', [[null, cpu.system / 1e6]]);
  family(out, 'process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', [[null, (cpu.user + cpu.system) / 1e6]]);
  family(out, 'process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [[null, process.memoryUsage.rss()]]);
  // performance.timeOrigin is when this process started: no /proc/stat (hidden by ProcSubset=pid) needed.
  family(out, 'process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', [[null, Math.round(performance.timeOrigin / 1000)]]);
  const open = openFds();
  if (open !== undefined) family(out, 'process_open_fds', 'gauge', 'Number of open file descriptors.', [[null, open]]);
  const max = maxFds();
  if (max !== undefined) family(out, 'process_max_fds', 'gauge', 'Maximum number of open file descriptors.', [[null, max]]);
  family(out, 'postern_build_info', 'gauge', 'The postern version and the Node.js version running it; always 1.', [[{ version: PACKAGE_VERSION, node: process.version }, 1]]);
}

/** The router's metrics as Prometheus text. */
export function renderMetrics(router: Router): string {
  const s = router.stats;
  const q = router.queues();
  const out: string[] = [];
  processFamilies(out);
  family(out, 'postern_info', 'gauge', 'Router identity.', [[{ router_id: router.routerId }, 1]]);
  family(out, 'postern_connections', 'gauge', 'Open connections (agents, links, handshakes).', [[null, router.connections]]);
  family(out, 'postern_agents', 'gauge', 'Registered agents connected now.', [[null, router.agents]]);
  family(out, 'postern_connections_accepted_total', 'counter', 'Connections accepted.', [[null, s.accepted]]);
  family(out, 'postern_connections_refused_total', 'counter', 'Connections refused by connection limits.', [[null, s.refused]]);
  family(out, 'postern_accept_fd_exhausted_total', 'counter', 'Connections not accepted for lack of file descriptors (EMFILE, ENFILE).', [[null, s.fdExhausted]]);
  family(out, 'postern_registrations_total', 'counter', 'Successful registrations.', [[null, s.registrations]]);
  family(out, 'postern_registrations_rate_limited_total', 'counter', 'REGISTERs answered RATE_LIMITED.', [[null, s.registrationsLimited]]);
  family(out, 'postern_admission_denied_total', 'counter', 'Registrations refused by admission.', [[null, s.admissionDenied]]);
  family(out, 'postern_resumes_total', 'counter', 'Registrations that resumed an earlier ID.', [[null, s.resumes]]);
  family(out, 'postern_frames_received_total', 'counter', 'Frames read.', [[null, s.framesIn]]);
  family(out, 'postern_messages_relayed_total', 'counter', 'Messages relayed (SEND to DELIVER or forwarded).', [[null, s.relayed]]);
  family(out, 'postern_relayed_bytes_total', 'counter', 'Bytes of relayed frames.', [[null, s.relayedBytes]]);
  family(out, 'postern_bytes_received_total', 'counter', 'Bytes read from connections.', [[null, s.bytesIn]]);
  family(out, 'postern_bytes_sent_total', 'counter', 'Bytes queued to connections.', [[null, s.bytesOut]]);
  family(out, 'postern_errors_sent_total', 'counter', 'ERROR frames sent, by code.', byCode(s.errors));
  family(out, 'postern_closes_total', 'counter', 'Connections closed by the router, by code.', byCode(s.closes));
  family(out, 'postern_drops_total', 'counter', 'Messages not delivered, by reason (each reported to its sender).', [
    [{ reason: 'hold_full' }, s.dropped.holdFull],
    [{ reason: 'resume_expired' }, s.dropped.resumeExpired],
  ]);
  family(out, 'postern_keepalive_expiries_total', 'counter', 'Connections closed for keepalive silence.', [[null, s.keepaliveExpiries]]);
  family(out, 'postern_handshake_timeouts_total', 'counter', 'Connections closed for not registering in time.', [[null, s.handshakeTimeouts]]);
  family(out, 'postern_slow_consumers_total', 'counter', 'Connections closed as slow consumers.', [[null, s.slowConsumers]]);
  family(out, 'postern_rate_limited_total', 'counter', 'Times a connection was slowed by its rate limit.', [[null, s.rateLimited]]);
  family(out, 'postern_outbound_queue_bytes', 'gauge', 'Bytes queued to connections now.', [[null, q.outboundBytes]]);
  family(out, 'postern_outbound_queue_max_bytes', 'gauge', 'Largest queue to one connection now.', [[null, q.maxOutboundBytes]]);
  family(out, 'postern_parked_agents', 'gauge', 'Lost agents whose ID is held for resume.', [[null, q.parked]]);
  family(out, 'postern_held_messages', 'gauge', 'Messages held for parked agents.', [[null, q.held]]);
  family(out, 'postern_partial_frame_bytes', 'gauge', 'Bytes reserved for incomplete frames now (bounded by partialBytesBudget).', [[null, q.partialBytes]]);
  const links = router.links();
  family(out, 'postern_mesh_links', 'gauge', 'Router links up.', [[null, links.length]]);
  family(out, 'postern_mesh_peers_down', 'gauge', 'Configured peers without a link.', [[null, router.peersDown().length]]);
  family(
    out,
    'postern_link_bytes_received_total',
    'counter',
    'Bytes read from each router link, by peer router ID.',
    links.map((l) => [{ peer_router: l.router, direction: l.direction }, l.bytesIn]),
  );
  family(
    out,
    'postern_link_bytes_sent_total',
    'counter',
    'Bytes queued to each router link, by peer router ID.',
    links.map((l) => [{ peer_router: l.router, direction: l.direction }, l.bytesOut]),
  );
  return out.join('\n') + '\n';
}

/** A running metrics listener. */
export interface MetricsServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text) and `/healthz` (200 `ok` while the router serves,
 * 503 `draining` once it drains or closes) on `host`:`port`.
 */
export function startMetricsServer(router: Router, options: { host?: string; port?: number } = {}): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(renderMetrics(router));
    } else if (path === '/healthz') {
      const ok = !router.closing && router.address() !== null;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'draining\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  });
  return bindServer(server, options.port ?? 9447, options.host ?? '127.0.0.1').then((address) => ({
    address,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  }));
}
