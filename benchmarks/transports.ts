/**
 * The transports section of `npm run bench`: the same throughput cells
 * over plain TCP, TLS and WebSocket (wss) through ONE router process with three listeners,
 * nats-server over plain TCP and over TLS as the anchor, in the same run; and the TLS
 * handshake rate (new agents per second, TLS handshake + REGISTER) beside plain TCP's.
 *
 * Targets: TLS >= 0.7x plain bytes/s at 64 KiB, >= 0.5x plain msgs/s at 16 B K=16; postern
 * over TLS >= 3x nats-server over TLS msgs/s at 16 B K=16.
 *
 * @module
 */
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { mkdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { runCell, type CellResult } from './lib/load.js';
import { NatsReader, PosternConn, natsWire, posternWire, type ErrorFn, type MessageFn, type Opener, type Wire } from './lib/wire.js';
import { freePort, startChild, which, type ServerChild } from './lib/proc.js';
import { median } from './lib/stats.js';
import { WebSocketDuplex } from '../src/net/ws-stream.js';
import { makePki } from '../spec/helpers/certs.js';

/** What the section needs from run.ts. */
export interface TransportsContext {
  quick: boolean;
  durationMs: number;
  warmupMs: number;
  repeats: number;
  resultsDir: string;
  startRouter(options: Record<string, unknown>): Promise<ServerChild>;
  progress(line: string): void;
  note(line: string): void;
}

/** One cell, every system. */
export interface TransportCell {
  size: number;
  k: number;
  /** system → median msgs/s and MB/s. */
  systems: Record<string, { msgsPerSec: number; mbPerSec: number; inOrder: boolean }>;
}

/** The section's result (in the JSON output under `transports`). */
export interface TransportsResult {
  status: 'measured' | 'failed';
  cells: TransportCell[];
  handshakes: Record<string, { agentsPerSec: number; n: number }>;
  ratios: { name: string; target: string; value: number | null; met: boolean | null }[];
  errors: string[];
}

const LO = '127.0.0.1';

function natsSubject(i: number): Buffer {
  return Buffer.from(`r.${String(i).padStart(5, '0')}`);
}

/**
 * nats-server 2.9 speaks TLS after its INFO line (no TLS-first): read INFO in the clear,
 * start TLS on the same socket, then CONNECT, as the NATS clients do.
 */
function natsTlsWire(port: number, ca: string): Wire {
  const base = natsWire(LO, port);
  async function openConn(sub: Buffer | null, onError: ErrorFn, onMessage: MessageFn | null, la?: string): Promise<{ sock: Socket; dest: Buffer; close(): void }> {
    const raw = net.connect(la === undefined ? { host: LO, port } : { host: LO, port, localAddress: la });
    raw.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      let got = '';
      const onData = (c: Buffer): void => {
        got += c.toString('latin1');
        if (got.includes('\r\n')) {
          raw.off('data', onData);
          raw.pause();
          resolve();
        }
      };
      raw.on('data', onData);
      raw.once('error', reject);
    });
    const sock = tls.connect({ socket: raw, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', () => resolve());
      sock.once('error', reject);
    });
    let pong!: () => void;
    const ponged = new Promise<void>((r) => (pong = r));
    const reader = new NatsReader(sock, onMessage, onError, () => pong());
    let closing = false;
    sock.on('data', (chunk: Buffer) => reader.push(chunk));
    sock.on('error', (err) => {
      if (!closing) onError(`nats tls socket: ${err.message}`);
    });
    sock.write(
      'CONNECT {"verbose":false,"pedantic":false,"echo":false,"tls_required":true,"lang":"postern-bench","version":"1"}\r\n' +
        (sub !== null ? `SUB ${sub.toString()} 1\r\n` : '') +
        'PING\r\n',
    );
    await Promise.race([ponged, new Promise((_, reject) => setTimeout(() => reject(new Error('nats tls: no PONG in 15 s')), 15_000).unref())]);
    return {
      sock,
      dest: sub ?? natsSubject(0),
      close() {
        closing = true;
        sock.end();
      },
    };
  }
  return {
    ...base,
    openReceiver: (i, onMessage, onError, la) => openConn(natsSubject(i), onError, onMessage, la),
    openSender: (_i, onError, la) => openConn(null, onError, null, la),
  };
}

function tlsOpener(ca: string): Opener {
  return (host, port, localAddress) => {
    const s = tls.connect({ host, port, ca, servername: 'localhost', ALPNProtocols: ['postern/1'], ...(localAddress !== undefined ? { localAddress } : {}) });
    s.setNoDelay(true);
    return s;
  };
}

function wsOpener(ca: string): Opener {
  return (host, port, localAddress) => {
    const ws = new WebSocket(`wss://${host}:${port}/postern`, ['postern'], { ca, perMessageDeflate: false, ...(localAddress !== undefined ? { localAddress } : {}) });
    // The generator only uses the stream side of a socket (write, cork, events, destroy).
    return new WebSocketDuplex(ws) as unknown as Socket;
  };
}

async function startNats(resultsDir: string, name: string, tlsConf: string): Promise<ServerChild> {
  const port = await freePort();
  mkdirSync(resultsDir, { recursive: true });
  const conf = `${resultsDir}/${name}.conf`;
  writeFileSync(conf, `max_payload: 1048576\nmax_pending: 1073741824\nwrite_deadline: "60s"\n${tlsConf}`);
  return startChild('nats-server', ['-a', LO, '-p', String(port), '-c', conf], { core: 0, port, stderr: 'ignore' });
}

/** New connections per second: TCP (+TLS) + preamble + REGISTER → REGISTERED, `concurrency` at a time. */
async function handshakeRate(port: number, opener: Opener | undefined, n: number, concurrency: number): Promise<number> {
  let next = 0;
  const errors: string[] = [];
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const c = await PosternConn.open(LO, port, (e) => void errors.push(e), undefined, 15_000, opener);
      c.close();
      c.sock.destroy();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (errors.length > 0 && errors.some((e) => !/CLOSE NORMAL|socket/.test(e))) throw new Error(errors[0]);
  return n / ((performance.now() - t0) / 1000);
}

/** Runs the section; never throws (failures land in `errors`). */
export async function runTransports(ctx: TransportsContext): Promise<TransportsResult> {
  const errors: string[] = [];
  const servers: ServerChild[] = [];
  const cells: TransportCell[] = [];
  const handshakes: TransportsResult['handshakes'] = {};
  try {
    const pki = makePki(['localhost', LO]);
    const [pPlain, pTls, pWs] = [await freePort(), await freePort(), await freePort()];
    const tlsFiles = { cert: pki.cert, key: pki.key };
    const router = await ctx.startRouter({
      listeners: [
        { host: LO, port: pPlain },
        { host: LO, port: pTls, tls: tlsFiles },
        { host: LO, port: pWs, tls: tlsFiles, http: true },
      ],
    });
    servers.push(router);
    const wires = new Map<string, { wire: Wire; server: ServerChild }>([
      ['postern/tcp', { wire: posternWire(LO, pPlain), server: router }],
      ['postern/tls', { wire: posternWire(LO, pTls, pTls, 0, tlsOpener(pki.caPem)), server: router }],
      ['postern/wss', { wire: posternWire(LO, pWs, pWs, 0, wsOpener(pki.caPem)), server: router }],
    ]);
    if (which('nats-server') !== null) {
      const plain = await startNats(ctx.resultsDir, 'nats-transports', '');
      servers.push(plain);
      const secured = await startNats(ctx.resultsDir, 'nats-transports-tls', `tls {\n  cert_file: "${pki.cert}"\n  key_file: "${pki.key}"\n}\n`);
      servers.push(secured);
      wires.set('nats/tcp', { wire: natsWire(LO, plain.port), server: plain });
      wires.set('nats/tls', { wire: natsTlsWire(secured.port, pki.caPem), server: secured });
    } else {
      errors.push('nats-server not installed: no anchor');
    }
    for (const [name, { wire, server }] of wires) {
      ctx.progress(`transports: warming up ${name}`);
      await runCell(wire, { pattern: 'pairs', size: 16, k: 16, warmupMs: 0, durationMs: ctx.quick ? 200 : 1000, serverPid: server.pid });
    }
    const specs = [
      { size: 16, k: 16 },
      { size: 65536, k: 1 },
      { size: 65536, k: 16 },
    ];
    for (const c of specs) {
      const runs = new Map<string, CellResult[]>();
      for (let rep = 0; rep < ctx.repeats; rep++) {
        // Systems alternate within a repeat, so drift in the machine hits them alike.
        for (const [name, { wire, server }] of wires) {
          ctx.progress(`transports: ${name} ${c.size} B K=${c.k} rep ${rep + 1}/${ctx.repeats}`);
          try {
            const r = await runCell(wire, { pattern: 'pairs', ...c, warmupMs: ctx.warmupMs, durationMs: ctx.durationMs, serverPid: server.pid });
            if (!r.inOrder) errors.push(`${name} ${c.size} B K=${c.k}: ${r.lost} lost, ${r.outOfOrder} out of order`);
            runs.set(name, [...(runs.get(name) ?? []), r]);
          } catch (err) {
            errors.push(`${name} ${c.size} B K=${c.k}: ${(err as Error).message}`);
          }
        }
      }
      const systems: TransportCell['systems'] = {};
      for (const [name, rs] of runs) {
        systems[name] = { msgsPerSec: median(rs.map((r) => r.msgsPerSec)), mbPerSec: median(rs.map((r) => r.mbPerSec)), inOrder: rs.every((r) => r.inOrder) };
      }
      cells.push({ ...c, systems });
    }
    const n = ctx.quick ? 200 : 2000;
    for (const [name, port, opener] of [
      ['postern/tcp', pPlain, undefined],
      ['postern/tls', pTls, tlsOpener(pki.caPem)],
    ] as const) {
      ctx.progress(`transports: handshake rate ${name}`);
      try {
        handshakes[name] = { agentsPerSec: await handshakeRate(port, opener, n, 32), n };
      } catch (err) {
        errors.push(`handshakes ${name}: ${(err as Error).message}`);
      }
    }
  } catch (err) {
    errors.push(`transports: ${(err as Error).message}`);
  } finally {
    for (const s of servers) await s.stop();
  }
  const get = (size: number, k: number, sys: string, what: 'msgsPerSec' | 'mbPerSec'): number | undefined =>
    cells.find((c) => c.size === size && c.k === k)?.systems[sys]?.[what];
  const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined || b === 0 ? null : a / b);
  const big = [1, 16].map((k) => ratio(get(65536, k, 'postern/tls', 'mbPerSec'), get(65536, k, 'postern/tcp', 'mbPerSec'))).filter((v): v is number => v !== null);
  const ratios = [
    { name: 'TLS vs plain bytes/s at 64 KiB (worst K)', target: '>= 0.7x', value: big.length > 0 ? Math.min(...big) : null, want: 0.7 },
    { name: 'TLS vs plain msgs/s at 16 B K=16', target: '>= 0.5x', value: ratio(get(16, 16, 'postern/tls', 'msgsPerSec'), get(16, 16, 'postern/tcp', 'msgsPerSec')), want: 0.5 },
    { name: 'postern/TLS vs nats-server/TLS msgs/s at 16 B K=16', target: '>= 3x', value: ratio(get(16, 16, 'postern/tls', 'msgsPerSec'), get(16, 16, 'nats/tls', 'msgsPerSec')), want: 3 },
    { name: 'WebSocket vs plain bytes/s at 64 KiB K=16 (informative)', target: '-', value: ratio(get(65536, 16, 'postern/wss', 'mbPerSec'), get(65536, 16, 'postern/tcp', 'mbPerSec')), want: 0 },
    { name: 'WebSocket vs plain msgs/s at 16 B K=16 (informative)', target: '-', value: ratio(get(16, 16, 'postern/wss', 'msgsPerSec'), get(16, 16, 'postern/tcp', 'msgsPerSec')), want: 0 },
  ].map((r) => ({ name: r.name, target: r.target, value: r.value, met: r.value === null || r.want === 0 ? null : r.value >= r.want }));
  return { status: cells.length > 0 ? 'measured' : 'failed', cells, handshakes, ratios, errors };
}

/** The section as report lines. */
export function formatTransports(r: TransportsResult): string[] {
  const lines: string[] = ['', 'transports (one router, three listeners; nats-server plain and TLS as anchors): msgs/s | MB/s'];
  const systems = [...new Set(r.cells.flatMap((c) => Object.keys(c.systems)))];
  lines.push(`  ${'cell'.padEnd(14)}${systems.map((s) => s.padStart(22)).join('')}`);
  for (const c of r.cells) {
    const cellName = `${c.size >= 1024 ? `${c.size / 1024} KiB` : `${c.size} B`} K=${c.k}`;
    lines.push(
      `  ${cellName.padEnd(14)}${systems
        .map((s) => {
          const v = c.systems[s];
          return (v === undefined ? '-' : `${Math.round(v.msgsPerSec).toLocaleString('en')} | ${v.mbPerSec.toFixed(1)}`).padStart(22);
        })
        .join('')}`,
    );
  }
  for (const [name, h] of Object.entries(r.handshakes)) lines.push(`  handshakes ${name}: ${Math.round(h.agentsPerSec)} new agents/s (${h.n}, 32 at a time)`);
  for (const t of r.ratios) lines.push(`  ${t.name}: ${t.value === null ? 'not measured' : `${t.value.toFixed(2)}x`} (target ${t.target})${t.met === null ? '' : t.met ? ' met' : ' NOT met'}`);
  for (const e of r.errors) lines.push(`  ! ${e}`);
  return lines;
}
