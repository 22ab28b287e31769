import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../net/clock.js';
import { DEFAULT_PORT } from '../protocol/frame.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import type { JitterMode } from './reconnect.js';

/**
 * Options of {@link connect}. Every field is optional; the default of each is given in its
 * TSDoc and collected in {@link AGENT_DEFAULTS}. {@link resolveAgentOptions} validates them
 * and throws POSTERN_ERR_INVALID_OPTION naming the first bad option.
 */
export interface AgentOptions {
  /**
   * The router to dial: `'host:port'`, `'[v6addr]:port'`, `'host'` (port 7447) or
   * `{ host, port }`. Default `'127.0.0.1:7447'`. Ignored when `createConnection` is given.
   */
  router?: string | { host: string; port: number };
  /** Reconnect after the connection is lost (not after `close()`). Default `true`. */
  reconnect?: boolean;
  /** Base of the exponential backoff between reconnect attempts, in ms. Default `250`. */
  reconnectDelay?: number;
  /** Upper bound of any one backoff delay, in ms. Default `30000`. */
  reconnectMaxDelay?: number;
  /**
   * Jitter of the backoff: `'full'` (uniform in 0..base·2^(n-1), capped) or `'decorrelated'`
   * (uniform in base..3·previous, capped). Default `'full'`.
   */
  reconnectJitter?: JitterMode;
  /** Give up (and close the agent with the last error) after this many failed attempts in a row. Default `Infinity`. */
  maxReconnectAttempts?: number;
  /** Time allowed for one connection attempt: TCP connect, preambles and REGISTERED, in ms. Default `10000`. */
  connectTimeout?: number;
  /** Time `close()` waits for the router to end the connection after our CLOSE before destroying it, in ms. Default `2000`. */
  closeTimeout?: number;
  /**
   * Messages held for the consumer, in messages. When this many wait, the agent stops reading
   * the socket (TCP backpressure reaches the router) and resumes when half have been taken.
   * Frames already read in the same socket chunk are still queued, so the queue may exceed
   * this by one chunk's worth. Default `1024`.
   */
  maxQueue?: number;
  /** Status events held per `status()` iterator; the oldest is dropped (and counted) beyond this. Default `64`. */
  maxStatusQueue?: number;
  /**
   * Bytes the agent lets pile up in the socket's write buffer; a `send()` that would go beyond
   * throws POSTERN_ERR_SEND_BUFFER_FULL (a single frame is always accepted into an empty
   * buffer). Watch `agent.writable` and the `'drain'` event to stay below it. Default `8388608` (8 MiB).
   */
  maxSendBuffer?: number;
  /** Time source for every timer (keepalive, backoff, timeouts). Default: the system clock. */
  clock?: Clock;
  /**
   * Opens the transport for each connection attempt instead of a TCP socket to `router`
   * (an in-memory duplex, a TLS socket, a proxy). Default: `net.connect(router)`.
   */
  createConnection?: () => Duplex;
  /** Aborting it closes the agent (or fails a pending `connect()` with POSTERN_ERR_CLOSED). Default: none. */
  signal?: AbortSignal;
  /** Random source in [0, 1) for backoff jitter (jitter needs no CSPRNG). Default `Math.random`. */
  random?: () => number;
  /**
   * After losing a connection, ask the same router for the old ID back (with the resume
   * token it issued, within its announced `resumeGrace`) and receive the messages it held.
   * [P-12.3] Default `true`.
   */
  resume?: boolean;
  /** Admission token sent in REGISTER (8..256 characters) for routers that require one. [P-12.7] Default: none. */
  token?: string;
  /** Register anonymously: no agent ID; every SEND goes out under a reply handle. [P-11.1] Default `false`. */
  anonymous?: boolean;
  /** X25519 public key (32 bytes) to publish in the router's key directory. [P-11.4] Default: none. */
  publicKey?: Uint8Array;
}

/** Options after defaults and validation. */
export interface ResolvedAgentOptions {
  readonly host: string;
  readonly port: number;
  readonly reconnect: boolean;
  readonly reconnectDelay: number;
  readonly reconnectMaxDelay: number;
  readonly reconnectJitter: JitterMode;
  readonly maxReconnectAttempts: number;
  readonly connectTimeout: number;
  readonly closeTimeout: number;
  readonly maxQueue: number;
  readonly maxStatusQueue: number;
  readonly maxSendBuffer: number;
  readonly clock: Clock;
  readonly createConnection: (() => Duplex) | undefined;
  readonly signal: AbortSignal | undefined;
  readonly random: () => number;
  readonly resume: boolean;
  readonly token: string | undefined;
  readonly anonymous: boolean;
  readonly publicKey: Uint8Array | undefined;
}

/** The defaults, in one frozen object. No other default hides elsewhere. */
export const AGENT_DEFAULTS = Object.freeze({
  router: `127.0.0.1:${DEFAULT_PORT}`,
  reconnect: true,
  reconnectDelay: 250,
  reconnectMaxDelay: 30_000,
  reconnectJitter: 'full' as JitterMode,
  maxReconnectAttempts: Infinity,
  connectTimeout: 10_000,
  closeTimeout: 2_000,
  maxQueue: 1024,
  maxStatusQueue: 64,
  maxSendBuffer: 8 * 1024 * 1024,
  clock: systemClock,
  random: Math.random,
  resume: true,
  anonymous: false,
});

const KNOWN = new Set<string>([...Object.keys(AGENT_DEFAULTS), 'createConnection', 'signal', 'token', 'publicKey']);

/** Merges `options` over {@link AGENT_DEFAULTS} and validates every field. */
export function resolveAgentOptions(options: AgentOptions = {}): ResolvedAgentOptions {
  if (options === null || typeof options !== 'object') bad('options', 'must be an object');
  // A misspelt option would otherwise be silently replaced by its default.
  for (const k of Object.keys(options)) if (!KNOWN.has(k)) bad(k, 'is not an agent option');
  const { host, port } = parseRouterAddress(options.router ?? AGENT_DEFAULTS.router, 'router');
  const reconnectDelay = int(options, 'reconnectDelay', 0);
  const reconnectMaxDelay = int(options, 'reconnectMaxDelay', 0);
  if (reconnectMaxDelay < reconnectDelay) bad('reconnectMaxDelay', 'must be >= reconnectDelay');
  const jitter = options.reconnectJitter ?? AGENT_DEFAULTS.reconnectJitter;
  if (jitter !== 'full' && jitter !== 'decorrelated') bad('reconnectJitter', "must be 'full' or 'decorrelated'");
  const maxReconnectAttempts = options.maxReconnectAttempts ?? AGENT_DEFAULTS.maxReconnectAttempts;
  if (maxReconnectAttempts !== Infinity && !(Number.isInteger(maxReconnectAttempts) && maxReconnectAttempts >= 0)) {
    bad('maxReconnectAttempts', 'must be a non-negative integer or Infinity');
  }
  const reconnect = options.reconnect ?? AGENT_DEFAULTS.reconnect;
  if (typeof reconnect !== 'boolean') bad('reconnect', 'must be a boolean');
  const clock = options.clock ?? AGENT_DEFAULTS.clock;
  if (typeof clock?.now !== 'function' || typeof clock.setTimeout !== 'function') bad('clock', 'must implement now() and setTimeout()');
  if (options.createConnection !== undefined && typeof options.createConnection !== 'function') {
    bad('createConnection', 'must be a function returning a Duplex');
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) bad('signal', 'must be an AbortSignal');
  const random = options.random ?? AGENT_DEFAULTS.random;
  if (typeof random !== 'function') bad('random', 'must be a function');
  const resume = options.resume ?? AGENT_DEFAULTS.resume;
  if (typeof resume !== 'boolean') bad('resume', 'must be a boolean');
  const anonymous = options.anonymous ?? AGENT_DEFAULTS.anonymous;
  if (typeof anonymous !== 'boolean') bad('anonymous', 'must be a boolean');
  const token = options.token;
  if (token !== undefined && (typeof token !== 'string' || token.length < 8 || token.length > 256)) bad('token', 'must be a string of 8..256 characters');
  const publicKey = options.publicKey;
  if (publicKey !== undefined && !(publicKey instanceof Uint8Array && publicKey.length === 32)) bad('publicKey', 'must be 32 bytes');
  return Object.freeze({
    host,
    port,
    reconnect,
    reconnectDelay,
    reconnectMaxDelay,
    reconnectJitter: jitter,
    maxReconnectAttempts,
    connectTimeout: int(options, 'connectTimeout', 1),
    closeTimeout: int(options, 'closeTimeout', 0),
    maxQueue: int(options, 'maxQueue', 1),
    maxStatusQueue: int(options, 'maxStatusQueue', 1),
    maxSendBuffer: int(options, 'maxSendBuffer', 0),
    clock,
    createConnection: options.createConnection,
    signal: options.signal,
    random,
    resume,
    token,
    anonymous,
    publicKey: publicKey === undefined ? undefined : Uint8Array.from(publicKey),
  });
}

/**
 * Parses a router address: `'host:port'`, `'[v6addr]:port'`, `'host'` (default port) or
 * `{ host, port }`. Throws POSTERN_ERR_INVALID_OPTION naming `option`.
 */
export function parseRouterAddress(
  value: string | { host: string; port: number },
  option = 'router',
): { host: string; port: number } {
  let host: string;
  let port: number;
  if (typeof value === 'string') {
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
    const plain = /^([^:[\]\s]+)(?::(\d+))?$/.exec(value);
    const m = v6 ?? plain;
    if (m === null) bad(option, `is not host:port: ${JSON.stringify(value.slice(0, 100))}`);
    host = m[1]!;
    port = m[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  } else if (value !== null && typeof value === 'object') {
    host = value.host;
    port = value.port;
    if (typeof host !== 'string' || host.length === 0) bad(option, 'host must be a non-empty string');
  } else {
    bad(option, "must be 'host:port' or { host, port }");
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) bad(option, 'port must be an integer in 1..65535');
  return { host, port };
}

type IntKey =
  | 'reconnectDelay'
  | 'reconnectMaxDelay'
  | 'connectTimeout'
  | 'closeTimeout'
  | 'maxQueue'
  | 'maxStatusQueue'
  | 'maxSendBuffer';

function int(options: AgentOptions, key: IntKey, min: number): number {
  const v = options[key] ?? AGENT_DEFAULTS[key];
  // 2^31-1: the largest delay a Node timer honours; also a sane ceiling for counts.
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 0x7fffffff) {
    bad(key, `must be an integer in ${min}..2147483647, got ${String(v)}`);
  }
  return v;
}

function bad(option: string, why: string): never {
  throw new PosternError(ErrorCode.INVALID_OPTION, `option ${option} ${why}`);
}
