import { DEFAULT_PORT, MAX_MAX_FRAME, MIN_MAX_FRAME } from '../protocol/frame.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { isValidRouterId } from '../protocol/id.js';
import { systemClock, type Clock } from '../net/clock.js';
import { isHostPort, parseEndpoint } from '../net/address.js';
import { silentLogger, type Logger } from '../net/log.js';
import { randomInt } from 'node:crypto';
import { resolveListeners, type ListenerOptions } from './listeners.js';
import { connectionsWithin, readFdLimit } from '../net/fd-limit.js';

/** Options of a {@link Router}. Every field is optional; defaults are in {@link ROUTER_DEFAULTS}. */
export interface RouterOptions {
  /** Address to listen on. Default `0.0.0.0` (every IPv4 interface). */
  host?: string;
  /** TCP port; 0 picks a free one. Default 7447. */
  port?: number;
  /** This router's ID, embedded in every agent ID it issues: 1..2^32-1. Default: random. */
  routerId?: number;
  /** Largest frame (bytes, length field included) accepted after registration and announced. Default 1 MiB. */
  maxFrame?: number;
  /** Keepalive interval in ms, announced to agents; the timeout is 1.5x this. Default 30000. */
  keepaliveInterval?: number;
  /** Ms a new connection has to send its preamble and REGISTER. Default 10000. */
  handshakeTimeout?: number;
  /** Bytes queued towards one connection above which its senders are paused. Default 1 MiB. */
  maxOutbound?: number;
  /** Ms a connection may stay above `maxOutbound` before it is closed as a slow consumer. Default 10000. */
  slowConsumerTimeout?: number;
  /** Ms a closing connection has to flush before it is destroyed. Default 5000. */
  closeTimeout?: number;
  /** Peer routers to link with, as `host:port` or `tls://host[:port]` (TLS, verified against `meshCa`). Default none. */
  peers?: string[];
  /**
   * Other routers agents may fail over to, announced in every REGISTERED (PROTOCOL.md
   * §13.7), as addresses of §13.1 (`tls://r2.example.com`, `r2:7447`); at most 16. Default [].
   */
  alternates?: string[];
  /** PEM file of the CA that signs the certificates of `tls://` peers. Default: the system CAs. */
  meshCa?: string;
  /** Shared secret that authenticates router links (at least 16 characters); required to link. Default none: links refused. */
  meshSecret?: string;
  /** Most router links a message may cross. Default 2. */
  meshHopLimit?: number;
  /** Ms before redialling a lost peer the first time; doubles (with jitter) up to `linkRetryMax`. Default 200. */
  linkRetryMin?: number;
  /** Most ms between redials of a peer. Default 5000. */
  linkRetryMax?: number;
  /** Ms a lost agent's ID (and messages for it) is held for it to resume; 0 disables resume. Default 30000. */
  resumeGrace?: number;
  /** Secret that signs resume tokens (16+ characters); set it so IDs survive a restart. Default: random per process. */
  resumeSecret?: string;
  /** Messages held for one lost agent while it may resume. Default 1024. */
  holdMessages?: number;
  /** Bytes held for one lost agent while it may resume. Default 1 MiB. */
  holdBytes?: number;
  /**
   * Most connections at once; more are refused with TOO_MANY_CONNECTIONS. Default 200000,
   * lowered to fit under the process's file descriptor limit (`ulimit -n`, less a tenth, at
   * least 32, kept for other files); a value given above that is kept, with a warning at
   * listen. Reloadable.
   */
  maxConnections?: number;
  /** Most connections at once from one IP address; 0 = no limit. Default 1000. Reloadable. */
  maxConnectionsPerAddress?: number;
  /** Registrations per second allowed from one IP address (burst: twice that); 0 = no limit. Default 50. Reloadable. */
  registrationRate?: number;
  /** Messages per second one connection may send (burst: one second's worth); 0 = no limit. Default 0. Reloadable. */
  maxMessageRate?: number;
  /** Bytes per second one connection may send (burst: one second's worth); 0 = no limit. Default 0. Reloadable. */
  maxByteRate?: number;
  /** When not empty, REGISTER must carry one of these tokens (`token`), else ADMISSION_DENIED. Default []. Reloadable. */
  admissionTokens?: string[];
  /** Reply handles one connection may have live at once; the oldest is retired past it. Default 1024. */
  maxHandles?: number;
  /** Whether log lines may carry remote IP addresses. Default true. Anonymous connections' addresses are never logged. */
  logAddresses?: boolean;
  /**
   * The ports to listen on, each plain TCP, TLS, and/or HTTP Upgrade + WebSocket
   * (PROTOCOL.md §13), e.g. `[{ port: 7447 }, { port: 443, tls: { cert, key }, http: true }]`.
   * When given, `host` and `port` are not used. Default `[]`: one plain listener on `host`:`port`.
   */
  listeners?: ListenerOptions[];
  /**
   * Bytes the router may reserve for incomplete frames across all connections; a frame
   * counts its whole declared size once its header is read. Over it, holders of larger
   * frames are closed with OVERLOADED, else the newcomer is. Default 128 MiB (128 frames of the default
   * `maxFrame`). [P-12.8]
   */
  partialBytesBudget?: number;
  /**
   * Bytes per second a connection must keep sending while one of its frames is
   * incomplete, or be closed with FRAME_TOO_SLOW; 0 for no minimum. Default 1024. [P-12.8]
   */
  minFrameRate?: number;
  /** Ms over which `minFrameRate` is measured (time with reading paused by the router does not count). Default 10000. */
  frameRateWindow?: number;
  /**
   * @internal For tests and benchmarks only: `false` turns the relay fast path off, so every
   * frame goes through the decoder (the slow twin the fast path must match byte for byte,
   * see spec/router/relay-model.test.ts). Default true.
   */
  relayFastPath?: boolean;
  /** Time source. Default the system clock. */
  clock?: Clock;
  /** Where events are logged. Default: nowhere. */
  logger?: Logger;
}

/** Resolved options: every field present. */
export type ResolvedRouterOptions = Required<Omit<RouterOptions, 'routerId' | 'meshSecret' | 'resumeSecret' | 'meshCa'>> & {
  meshCa: string | undefined;
  routerId: number;
  meshSecret: string | undefined;
  resumeSecret: string | undefined;
};

/** Defaults of every router option except `routerId` (random when not given). */
export const ROUTER_DEFAULTS: Readonly<Omit<ResolvedRouterOptions, 'routerId'>> = Object.freeze({
  host: '0.0.0.0',
  port: DEFAULT_PORT,
  maxFrame: 1024 * 1024,
  keepaliveInterval: 30_000,
  handshakeTimeout: 10_000,
  maxOutbound: 1024 * 1024,
  slowConsumerTimeout: 10_000,
  closeTimeout: 5_000,
  peers: [] as string[],
  meshSecret: undefined,
  meshCa: undefined,
  alternates: [] as string[],
  meshHopLimit: 2,
  linkRetryMin: 200,
  linkRetryMax: 5000,
  resumeGrace: 30_000,
  resumeSecret: undefined,
  holdMessages: 1024,
  holdBytes: 1024 * 1024,
  maxHandles: 1024,
  maxConnections: 200_000,
  maxConnectionsPerAddress: 1000,
  registrationRate: 50,
  maxMessageRate: 0,
  maxByteRate: 0,
  admissionTokens: [] as string[],
  logAddresses: true,
  listeners: [] as ListenerOptions[],
  partialBytesBudget: 128 * 1024 * 1024,
  minFrameRate: 1024,
  frameRateWindow: 10_000,
  relayFastPath: true,
  clock: systemClock,
  logger: silentLogger,
});

const KNOWN = new Set<string>([...Object.keys(ROUTER_DEFAULTS), 'routerId']);

/** Merges `options` over the defaults and validates every field; throws POSTERN_ERR_INVALID_OPTION naming the option. */
export function resolveRouterOptions(options: RouterOptions = {}): ResolvedRouterOptions {
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k)) bad(k, 'is not a router option');
  }
  const o = { ...ROUTER_DEFAULTS, ...stripUndefined(options) } as ResolvedRouterOptions;
  if (options.routerId === undefined) o.routerId = randomInt(1, 0xffffffff);
  if (options.maxConnections === undefined) {
    // The default stays under the descriptor limit, so connections over it are refused
    // cleanly (TOO_MANY_CONNECTIONS) rather than failing in accept().
    const limit = readFdLimit();
    if (limit !== null) o.maxConnections = Math.min(o.maxConnections, connectionsWithin(limit));
  }
  if (!isValidRouterId(o.routerId)) bad('routerId', 'must be an integer in 1..4294967295');
  if (typeof o.host !== 'string' || o.host.length === 0) bad('host', 'must be a non-empty string');
  int('port', o.port, 0, 65535);
  o.listeners = resolveListeners(o.listeners);
  int('maxFrame', o.maxFrame, MIN_MAX_FRAME, MAX_MAX_FRAME);
  int('keepaliveInterval', o.keepaliveInterval, 10, 3_600_000);
  int('handshakeTimeout', o.handshakeTimeout, 10, 3_600_000);
  int('maxOutbound', o.maxOutbound, 1024, 1 << 30);
  int('slowConsumerTimeout', o.slowConsumerTimeout, 10, 3_600_000);
  int('closeTimeout', o.closeTimeout, 1, 3_600_000);
  if (!Array.isArray(o.peers)) bad('peers', 'must be an array of host:port strings');
  for (const p of o.peers) {
    if (!isHostPort(p) && !isTlsPeer(p)) bad('peers', `entry ${JSON.stringify(p)} is not host:port or tls://host:port`);
  }
  if (o.meshSecret !== undefined && (typeof o.meshSecret !== 'string' || o.meshSecret.length < 16)) {
    bad('meshSecret', 'must be a string of at least 16 characters');
  }
  if (!Array.isArray(o.alternates) || o.alternates.length > 16) bad('alternates', 'must be an array of at most 16 router addresses');
  for (const a of o.alternates) {
    if (typeof a !== 'string' || Buffer.byteLength(a) > 262) bad('alternates', 'entries must be strings of at most 262 bytes');
    parseEndpoint(a, 'alternates');
  }
  if (o.meshCa !== undefined && (typeof o.meshCa !== 'string' || o.meshCa === '')) bad('meshCa', 'must be the path of a PEM file');
  if (o.peers.length > 0 && o.meshSecret === undefined) bad('meshSecret', 'is required when peers are given');
  int('meshHopLimit', o.meshHopLimit, 1, 16);
  int('linkRetryMin', o.linkRetryMin, 1, 3_600_000);
  int('linkRetryMax', o.linkRetryMax, o.linkRetryMin, 3_600_000);
  int('maxHandles', o.maxHandles, 1, 1 << 20);
  int('maxConnections', o.maxConnections, 1, 10_000_000);
  int('maxConnectionsPerAddress', o.maxConnectionsPerAddress, 0, 10_000_000);
  int('registrationRate', o.registrationRate, 0, 1_000_000);
  int('maxMessageRate', o.maxMessageRate, 0, 1_000_000_000);
  int('maxByteRate', o.maxByteRate, 0, 1_000_000_000_000);
  if (!Array.isArray(o.admissionTokens) || !o.admissionTokens.every((t) => typeof t === 'string' && t.length >= 8 && t.length <= 256)) {
    bad('admissionTokens', 'must be an array of strings of 8..256 characters');
  }
  int('resumeGrace', o.resumeGrace, 0, 86_400_000);
  if (o.resumeSecret !== undefined && (typeof o.resumeSecret !== 'string' || o.resumeSecret.length < 16)) {
    bad('resumeSecret', 'must be a string of at least 16 characters');
  }
  int('holdMessages', o.holdMessages, 0, 1 << 20);
  int('holdBytes', o.holdBytes, 0, 1 << 30);
  int('partialBytesBudget', o.partialBytesBudget, 4096, 2 ** 40);
  int('minFrameRate', o.minFrameRate, 0, 1 << 30);
  int('frameRateWindow', o.frameRateWindow, 10, 3_600_000);
  if (typeof o.logAddresses !== 'boolean') bad('logAddresses', 'must be a boolean');
  if (typeof o.relayFastPath !== 'boolean') bad('relayFastPath', 'must be a boolean');
  if (typeof o.clock?.now !== 'function' || typeof o.clock.setTimeout !== 'function') bad('clock', 'must be a Clock');
  for (const m of ['debug', 'info', 'warn', 'error'] as const) {
    if (typeof o.logger?.[m] !== 'function') bad('logger', `must have a ${m}() method`);
  }
  return o;
}

/** `tls://host[:port]` (PROTOCOL.md §13.1), for `peers`. */
function isTlsPeer(v: unknown): boolean {
  if (typeof v !== 'string' || !/^tls:\/\//i.test(v)) return false;
  try {
    parseEndpoint(v, 'peers');
    return true;
  } catch {
    return false;
  }
}

/** Options {@link Router.reload} may change on a live router. */
export const RELOADABLE = Object.freeze([
  'maxConnections',
  'maxConnectionsPerAddress',
  'registrationRate',
  'maxMessageRate',
  'maxByteRate',
  'admissionTokens',
  'handshakeTimeout',
  'slowConsumerTimeout',
  'maxOutbound',
  'holdMessages',
  'holdBytes',
  'logAddresses',
  'partialBytesBudget',
  'minFrameRate',
  'frameRateWindow',
] as const);

function int(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    bad(name, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
}

function bad(name: string, what: string): never {
  throw new PosternError(ErrorCode.INVALID_OPTION, `option ${name} ${what}`);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
