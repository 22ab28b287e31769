import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../net/clock.js';
import { DEFAULT_PORT } from '../protocol/frame.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import type { KeyPair } from '../crypto/sealed-box.js';
import { parsePublicKey } from '../crypto/keys.js';
import { isSmallOrder, x25519Base } from '../crypto/x25519.js';
import type { JitterMode } from '../net/backoff.js';
import { parseEndpoints, parseRouterAddress, type Endpoint } from '../net/address.js';
import { resolveTransport, type ResolvedTransport } from '../net/dial.js';
import { resolveStreamOptions, type ResolvedStreamOptions, type StreamOptions } from '../stream/options.js';
import { HEX_ID } from './arguments.js';

export { parseRouterAddress };

/**
 * Options of {@link connect}. Every field is optional; the default of each is given in its
 * TSDoc and collected in {@link AGENT_DEFAULTS}. {@link resolveAgentOptions} validates them
 * and throws POSTERN_ERR_INVALID_OPTION naming the first bad option.
 */
export interface AgentOptions {
  /**
   * The router to dial: `'host:port'`, `'[v6addr]:port'`, `'host'` (port 7447),
   * `{ host, port }`, or a URL naming the transport (PROTOCOL.md §13): `tcp://host[:7447]`,
   * `tls://host[:443]`, `ws://host[:80]/path`, `wss://host[:443]/path`, `http://` and
   * `https://` (HTTP Upgrade; the path defaults to `/postern`). A list (array, or one string
   * separated by commas) is tried in order: a failed attempt moves to the next; after a
   * loss the agent first returns to the router it was on (to resume). Default
   * `'127.0.0.1:7447'`. Ignored when `createConnection` is given.
   */
  router?: string | readonly string[] | { host: string; port: number };
  /**
   * Proxy for every dial: `http://[user:pass@]host:port` (CONNECT), `socks5://…` (names
   * resolved here), `socks5h://…` (names resolved by the proxy), `'env'` to read
   * `https_proxy` / `HTTPS_PROXY` / `http_proxy` / `ALL_PROXY` / `NO_PROXY` as curl does, or
   * `false`. Default `false` (a library does not read the environment unless asked).
   */
  proxy?: string | false;
  /** PEM CA certificate(s), as text or a file path, trusted for TLS instead of the system CAs. Default: the system CAs. */
  ca?: string | Buffer;
  /** SPKI pin of the router's certificate, `sha256/<base64>` (see `spkiPin()`), checked on top of the CA chain. Default: none. */
  pin?: string;
  /** Do not verify TLS certificates (a pin is still checked). Warns on every start. Default `false`. */
  insecure?: boolean;
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
   * Messages held for the consumer, in messages. The queue is fair across senders: each
   * sender ID has its own turn (all anonymous senders share one), and the consumer gets one
   * message per sender in turn, so a flooding sender delays another's next message by one
   * of its own; order is kept per sender, not across senders. When a message arrives while
   * this many already wait, the agent stops reading the socket (TCP backpressure reaches the
   * router and the senders) and resumes when half have been taken. A full queue that gets
   * no more messages keeps reading, so streams go on. Frames already read in the same socket
   * chunk are still queued, so the queue may exceed this by one chunk's worth. While reading
   * is paused, streams on the connection wait too, and a pause longer than the router's
   * slow-consumer timeout (10 s by default) makes the router close the connection: its
   * senders get `POSTERN_ERR_DESTINATION_SLOW` for what it dropped, and the agent
   * reconnects. Also bounds the messages held back, in order, behind sealed
   * ones whose sender is being checked with the key directory: past it, the oldest check
   * gives up and its message is delivered with `verification: 'lookup-failed'` (reading
   * cannot pause for these: the answers come in behind the messages). Default `1024`.
   */
  maxQueue?: number;
  /**
   * Bytes of message payload held for the consumer: the queue also counts as full once its
   * messages carry this many bytes (the next message pauses reading, as with `maxQueue`),
   * and reading resumes at half. Stream data is not queued here: each stream holds at most
   * its own window. Default `67108864` (64 MiB).
   */
  maxQueueBytes?: number;
  /**
   * `connect()` waits for a router that is not up yet: a failed first attempt is retried
   * with the reconnect policy (`reconnectDelay`, `reconnectMaxDelay`, `maxReconnectAttempts`)
   * instead of rejecting at once. Permanent errors (bad magic, version, admission) still
   * reject. Default `false`.
   */
  waitForRouter?: boolean;
  /**
   * Register for the stable ID of `keyPair` on the router (its router ID, then a hash of the
   * public key: PROTOCOL.md §15), proving the key at REGISTER, instead of a random ID: the
   * agent keeps its address across reconnects and router restarts. Needs `keyPair` (and its
   * key published). Default `false`.
   */
  stableId?: boolean;
  /** Stream layer limits, windows and timers (see {@link StreamOptions}). Default: `STREAM_DEFAULTS`. */
  streams?: StreamOptions;
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
  /**
   * X25519 public key (32 bytes) to publish in the router's key directory. [P-11.4]
   * Default: `keyPair.publicKey` when `keyPair` is given (and `publishKey` is not false), else
   * none. Given together with `keyPair`, it must be `keyPair.publicKey`. Anonymous
   * connections publish nothing (they have no ID to look it up by).
   */
  publicKey?: Uint8Array;
  /**
   * The agent's static X25519 key pair (32-byte halves that belong together). With it the
   * agent opens sealed messages sent to it (see {@link Message}), proves its ID in the
   * envelopes it seals, and publishes the public half in the router's key directory unless
   * `publishKey` is false. Keep the secret half secret: load it with `loadKeyFile()`.
   * Default: none (sealed messages are delivered unopened, envelopes carry no sender proof).
   */
  keyPair?: KeyPair;
  /**
   * Publish `keyPair.publicKey` in the key directory at each registration. False keeps the
   * key out of the directory: correspondents must then pin it (`trustedKeys`). Default `true`.
   */
  publishKey?: boolean;
  /**
   * Public keys pinned out of band, by agent ID (32 hex digits): 32 bytes, or their base64
   * text form (`formatPublicKey`). A pinned key wins over the directory in both directions:
   * `send(to, data, { seal: true })` seals to it, and a sealed message claiming that ID is
   * `verified` only if made with it (the directory is not asked). Remember that agent IDs
   * change when an agent reconnects without resuming. Default: none.
   */
  trustedKeys?: Readonly<Record<string, Uint8Array | string>> | ReadonlyMap<string, Uint8Array | string>;
  /**
   * Accept the router's key directory (LOOKUP) as the authority on which key belongs to an
   * ID that is not pinned, when checking the sender of a sealed message. False: only pinned
   * keys verify a sender. Default `true`.
   */
  verifyWithDirectory?: boolean;
  /**
   * Keys looked up in the directory kept for later seals and checks (least recently used
   * dropped first), in entries. 0 caches nothing. Default `256`.
   */
  keyCacheSize?: number;
}

/** Options after defaults and validation. */
export interface ResolvedAgentOptions {
  /** The first router to dial (of `endpoints`). */
  readonly host: string;
  readonly port: number;
  /** Every router address, in the order they are tried. */
  readonly endpoints: readonly Endpoint[];
  /** TLS trust and proxy for dialling. */
  readonly transport: ResolvedTransport;
  readonly reconnect: boolean;
  readonly reconnectDelay: number;
  readonly reconnectMaxDelay: number;
  readonly reconnectJitter: JitterMode;
  readonly maxReconnectAttempts: number;
  readonly connectTimeout: number;
  readonly closeTimeout: number;
  readonly maxQueue: number;
  readonly maxStatusQueue: number;
  readonly maxQueueBytes: number;
  readonly waitForRouter: boolean;
  readonly stableId: boolean;
  readonly streams: ResolvedStreamOptions;
  readonly maxSendBuffer: number;
  readonly clock: Clock;
  readonly createConnection: (() => Duplex) | undefined;
  readonly signal: AbortSignal | undefined;
  readonly random: () => number;
  readonly resume: boolean;
  readonly token: string | undefined;
  readonly anonymous: boolean;
  /** The key REGISTER carries, if any (see `publicKey`, `keyPair`, `publishKey`). */
  readonly publicKey: Uint8Array | undefined;
  readonly keyPair: Readonly<KeyPair> | undefined;
  /** Pinned keys by lowercase text ID. */
  readonly trustedKeys: ReadonlyMap<string, Buffer>;
  readonly verifyWithDirectory: boolean;
  readonly keyCacheSize: number;
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
  maxQueueBytes: 64 * 1024 * 1024,
  waitForRouter: false,
  stableId: false,
  maxSendBuffer: 8 * 1024 * 1024,
  clock: systemClock,
  random: Math.random,
  resume: true,
  anonymous: false,
  publishKey: true,
  verifyWithDirectory: true,
  keyCacheSize: 256,
});

const KNOWN = new Set<string>([
  ...Object.keys(AGENT_DEFAULTS),
  'createConnection',
  'signal',
  'token',
  'publicKey',
  'keyPair',
  'trustedKeys',
  'proxy',
  'ca',
  'pin',
  'insecure',
  'streams',
]);

/** Merges `options` over {@link AGENT_DEFAULTS} and validates every field. */
export function resolveAgentOptions(options: AgentOptions = {}): ResolvedAgentOptions {
  if (options === null || typeof options !== 'object') bad('options', 'must be an object');
  // A misspelt option would otherwise be silently replaced by its default.
  for (const k of Object.keys(options)) if (!KNOWN.has(k)) bad(k, 'is not an agent option');
  const endpoints = parseEndpoints(options.router ?? AGENT_DEFAULTS.router, 'router');
  const { host, port } = endpoints[0]!;
  const transport = resolveTransport({ proxy: options.proxy, ca: options.ca, pin: options.pin, insecure: options.insecure });
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
  const keyPair = resolveKeyPair(options.keyPair);
  const publishKey = options.publishKey ?? AGENT_DEFAULTS.publishKey;
  if (typeof publishKey !== 'boolean') bad('publishKey', 'must be a boolean');
  let publicKey = options.publicKey;
  if (publicKey !== undefined && !(publicKey instanceof Uint8Array && publicKey.length === 32)) bad('publicKey', 'must be 32 bytes');
  if (publicKey !== undefined && !publishKey) bad('publicKey', 'cannot be published with publishKey: false');
  if (publicKey !== undefined && keyPair !== undefined && !Buffer.from(publicKey).equals(keyPair.publicKey)) {
    bad('publicKey', 'must be keyPair.publicKey when both are given');
  }
  if (publicKey === undefined && publishKey && keyPair !== undefined) publicKey = keyPair.publicKey;
  const waitForRouter = options.waitForRouter ?? AGENT_DEFAULTS.waitForRouter;
  if (typeof waitForRouter !== 'boolean') bad('waitForRouter', 'must be a boolean');
  const stableId = options.stableId ?? AGENT_DEFAULTS.stableId;
  if (typeof stableId !== 'boolean') bad('stableId', 'must be a boolean');
  if (stableId && (keyPair === undefined || !publishKey || anonymous)) bad('stableId', 'needs keyPair, a published key, and a non-anonymous agent');
  const verifyWithDirectory = options.verifyWithDirectory ?? AGENT_DEFAULTS.verifyWithDirectory;
  if (typeof verifyWithDirectory !== 'boolean') bad('verifyWithDirectory', 'must be a boolean');
  return Object.freeze({
    host,
    port,
    endpoints: Object.freeze(endpoints),
    transport,
    reconnect,
    reconnectDelay,
    reconnectMaxDelay,
    reconnectJitter: jitter,
    maxReconnectAttempts,
    connectTimeout: int(options, 'connectTimeout', 1),
    closeTimeout: int(options, 'closeTimeout', 0),
    maxQueue: int(options, 'maxQueue', 1),
    maxStatusQueue: int(options, 'maxStatusQueue', 1),
    maxQueueBytes: int(options, 'maxQueueBytes', 1),
    waitForRouter,
    stableId,
    streams: resolveStreamOptions(options.streams),
    maxSendBuffer: int(options, 'maxSendBuffer', 0),
    clock,
    createConnection: options.createConnection,
    signal: options.signal,
    random,
    resume,
    token,
    anonymous,
    publicKey: publicKey === undefined ? undefined : Uint8Array.from(publicKey),
    keyPair,
    trustedKeys: resolveTrustedKeys(options.trustedKeys),
    verifyWithDirectory,
    keyCacheSize: int(options, 'keyCacheSize', 0),
  });
}

/** Checks a key pair (both halves 32 bytes, the public one derived from the secret one) and copies it. */
function resolveKeyPair(kp: KeyPair | undefined): Readonly<KeyPair> | undefined {
  if (kp === undefined) return undefined;
  if (kp === null || typeof kp !== 'object') bad('keyPair', 'must be { publicKey, secretKey }');
  const { publicKey, secretKey } = kp;
  if (!(publicKey instanceof Uint8Array && publicKey.length === 32)) bad('keyPair', 'publicKey must be 32 bytes');
  if (!(secretKey instanceof Uint8Array && secretKey.length === 32)) bad('keyPair', 'secretKey must be 32 bytes');
  // A mismatched pair would seal envelopes whose sender proof never opens.
  if (!Buffer.from(x25519Base(secretKey)).equals(publicKey)) bad('keyPair', 'publicKey does not belong to secretKey');
  return Object.freeze({ publicKey: Uint8Array.from(publicKey), secretKey: Uint8Array.from(secretKey) });
}

/** Normalizes pinned keys to a map from lowercase text ID to a 32-byte key. */
function resolveTrustedKeys(
  keys: Readonly<Record<string, Uint8Array | string>> | ReadonlyMap<string, Uint8Array | string> | undefined,
): ReadonlyMap<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (keys === undefined) return out;
  if (keys === null || typeof keys !== 'object') bad('trustedKeys', 'must be an object or a Map of ID to key');
  const entries = keys instanceof Map ? [...(keys as ReadonlyMap<string, Uint8Array | string>).entries()] : Object.entries(keys);
  for (const [id, key] of entries) {
    if (typeof id !== 'string' || !HEX_ID.test(id) || /^0{8}/.test(id)) {
      bad('trustedKeys', `key ${JSON.stringify(String(id).slice(0, 40))} is not an agent ID`);
    }
    let bytes: Uint8Array;
    if (typeof key === 'string') {
      try {
        bytes = parsePublicKey(key);
      } catch {
        bad('trustedKeys', `the key of ${id} is not a base64 public key`);
      }
    } else if (key instanceof Uint8Array && key.length === 32) {
      bytes = key;
    } else {
      bad('trustedKeys', `the key of ${id} must be 32 bytes or base64 text`);
    }
    // A small-order key gives a box key anyone can compute: it can never prove anything.
    if (isSmallOrder(bytes)) bad('trustedKeys', `the key of ${id} has small order`);
    out.set(id.toLowerCase(), Buffer.from(bytes));
  }
  return out;
}

type IntKey =
  | 'reconnectDelay'
  | 'reconnectMaxDelay'
  | 'connectTimeout'
  | 'closeTimeout'
  | 'maxQueue'
  | 'maxStatusQueue'
  | 'maxQueueBytes'
  | 'maxSendBuffer'
  | 'keyCacheSize';

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
