// router.ts is over 500 lines because the Router is the one object that owns the door (the
// plain server, the listeners of PROTOCOL.md §13, the limits checked before anything is read)
// and the set of connections; listeners.ts and descriptors.ts already hold what splits off.
import { EventEmitter } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ControlCodec } from '../protocol/control.js';
import { WireCode } from '../protocol/frame.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import type { Clock, Timer } from '../net/clock.js';
import { bindServer } from '../net/listen.js';
import { limitLog, type LimitedLogger } from '../net/log-limit.js';
import { TokenBucket } from '../net/token-bucket.js';
import { ConnState, RouterConnection } from './connection.js';
import { RELOADABLE, resolveRouterOptions, type ResolvedRouterOptions, type RouterOptions } from './options.js';
import { Registry } from './registry.js';
import { Parked } from './parked.js';
import { countCode, newStats, type RouterStats } from './stats.js';
import { createHmac, randomBytes } from 'node:crypto';
import { encodeClose, encodePreamble, encodeRouteError } from '../protocol/encoder.js';
import { PROTOCOL_VERSION } from '../protocol/frame.js';
import { createHash } from 'node:crypto';

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
import { routerHex, routerIdOf } from '../protocol/id.js';

const RESUME_LABEL = Buffer.from('postern resume v1');
/** Most stand-ins a restarted router keeps for IDs that may resume. */
const MAX_PLACEHOLDERS = 10_000;
import { Mesh, type LinkInfo, type PeerInfo } from './mesh/mesh.js';
import { ListenerSet, warnTokensInClear, type BoundListener, type ResolvedListener } from './listeners.js';
import { connectionsWithin } from '../net/fd-limit.js';
import { Descriptors } from './descriptors.js';

/** Events of a {@link Router}. */
export interface RouterEvents {
  /** The TCP server is listening. */
  listening: [address: AddressInfo];
  /** An agent registered; `id` is its text ID. */
  register: [id: string];
  /** A connection ended; `id` is '' when it never registered. */
  disconnect: [id: string];
  /** The TCP server failed (e.g. EADDRINUSE after listening). */
  error: [err: Error];
}

/**
 * A postern router: accepts agent connections, registers them, relays their messages.
 *
 * ```ts
 * const router = new Router({ port: 7447 });
 * const addr = await router.listen();
 * // ...
 * await router.close();
 * ```
 */
export class Router extends EventEmitter<RouterEvents> {
  /** The resolved options (defaults filled in). */
  readonly options: ResolvedRouterOptions;
  /** This router's ID (the first 4 bytes of every ID it issues). */
  readonly routerId: number;
  /** Counters since start. */
  readonly stats: RouterStats = newStats();
  /** @internal */
  readonly registry = new Registry<RouterConnection>();
  /** @internal */
  readonly codec = new ControlCodec();
  /** @internal */
  readonly clock: Clock;
  /** @internal The options' logger, with repeated per-connection events summarised. */
  readonly log: LimitedLogger;
  /** @internal */
  readonly mesh: Mesh<RouterConnection>;
  /** @internal */
  readonly meshSecret: Buffer;
  /** @internal Bytes reserved for incomplete frames now, across all connections. [P-12.8] */
  partialBytes = 0;
  // Connections with an incomplete frame (partialCharge > 0).
  private readonly partialHolders = new Set<RouterConnection>();

  /**
   * @internal [P-12.8] When a frame would take the total over partialBytesBudget, the
   * connections holding larger frames than it are closed (largest first) until it fits; when
   * none is larger, it is the one refused. Not simply the newcomer: a normal agent's small
   * frame that happens to straddle two reads must not be refused because a few peers fill
   * the budget with huge frames, and huge frames are the cheapest way to fill it (the size
   * is reserved when the header is read). The scan is over holders, and only when full.
   */
  reservePartial(conn: RouterConnection, delta: number, held: number): boolean {
    const budget = this.options.partialBytesBudget;
    while (delta > 0 && this.partialBytes + delta > budget) {
      let victim: RouterConnection | null = null;
      for (const h of this.partialHolders) {
        if (h !== conn && h.partialCharge > held && (victim === null || h.partialCharge > victim.partialCharge)) victim = h;
      }
      if (victim === null) return false;
      // Its shutdown gives its share back (through this method), so the loop ends.
      victim.evict(WireCode.OVERLOADED, 'largest incomplete frame while the router had no room');
      if (this.partialHolders.has(victim)) return false;
    }
    this.partialBytes += delta;
    if (held > 0) this.partialHolders.add(conn);
    else this.partialHolders.delete(conn);
    return true;
  }

  private readonly conns = new Set<RouterConnection>();
  // Per IP address: open connections and the registration token bucket (burst: two seconds' worth).
  private readonly addrs = new Map<string, { conns: number; bucket: TokenBucket }>();
  private server: net.Server | null = null;
  private sweepTimer: Timer | null = null;
  private readonly sweepPeriod: number;
  private closingP: Promise<void> | null = null;
  private draining = false;
  private readonly resumeKey: Buffer;
  private readonly startedAt: number;
  private readonly fds: Descriptors;

  constructor(options: RouterOptions = {}) {
    super();
    this.options = resolveRouterOptions(options);
    this.routerId = this.options.routerId;
    this.clock = this.options.clock;
    // A flood of hostile connections must not turn into a flood of log lines.
    this.log = limitLog(this.options.logger, { clock: this.clock });
    this.meshSecret = Buffer.from(this.options.meshSecret ?? '');
    this.resumeKey = this.options.resumeSecret !== undefined ? Buffer.from(this.options.resumeSecret) : randomBytes(32);
    this.startedAt = this.clock.now();
    this.mesh = new Mesh(this);
    // [P-8.2] The sweep runs 10 times per keepalive interval (and handshake timeout), so a
    // deadline is acted on at most a tenth of that late, and never early.
    this.sweepPeriod = Math.max(1, Math.floor(Math.min(this.options.keepaliveInterval, this.options.handshakeTimeout) / 10));
    this.fds = new Descriptors(this);
  }

  /** @internal The descriptor limit read at start (null when unknown). */
  get fdLimit(): number | null {
    return this.fds.limit;
  }

  /** @internal True once close() or drain() began. */
  get closing(): boolean {
    return this.closingP !== null || this.draining;
  }

  /** @internal [P-12.3] */
  resumeToken(id: Uint8Array): Buffer {
    return createHmac('sha256', this.resumeKey).update(RESUME_LABEL).update(id).digest();
  }

  /** @internal A restarted router honours tokens for IDs it has no record of during its first resumeGrace ms. */
  inRestartWindow(): boolean {
    return this.options.resumeSecret !== undefined && this.clock.now() - this.startedAt < this.options.resumeGrace;
  }

  private placeholders = 0;

  /** @internal Stand-ins are capped, so random IDs sent during the window cannot grow memory without bound. */
  placeholder(id: Uint8Array): Parked<RouterConnection> | undefined {
    if (this.placeholders >= MAX_PLACEHOLDERS) return undefined;
    this.placeholders++;
    return new Parked(this, Buffer.from(id), null, true);
  }

  /** @internal */
  placeholderGone(): void {
    this.placeholders--;
  }

  /** @internal */
  refuseTo(replyTo: Buffer, code: number, seq: number, dest: Buffer): void {
    const entry = this.registry.lookup(replyTo, 0);
    if (entry !== undefined) {
      if (entry.conn !== null && entry.conn.state === ConnState.OPEN) entry.conn.refuse(code, seq, dest, null);
      return;
    }
    const link = routerIdOf(replyTo) === this.routerId ? undefined : this.mesh.linkFor(routerIdOf(replyTo));
    link?.reply(encodeRouteError(code, seq, dest, replyTo));
  }

  /**
   * Graceful shutdown: stops accepting, tells every agent to reconnect (after `after` ms,
   * to `alternates` or here again), waits up to `grace` ms for them to leave, then closes.
   * Agents flush and leave on their own; nothing they sent before leaving is lost. [P-12.1]
   */
  async drain(options: { after?: number; grace?: number; alternates?: string[] } = {}): Promise<void> {
    if (this.closingP !== null) return this.closingP;
    const after = options.after ?? 1000;
    const grace = options.grace ?? 10_000;
    const alternates = options.alternates ?? [];
    if (!this.draining) {
      this.draining = true;
      this.server?.close();
      void this.ports?.close();
      const agents = [...this.conns].filter((c) => c.kind === 'agent' && c.state === ConnState.OPEN);
      this.log.info('draining', { agents: agents.length, after, grace });
      const frame = this.codec.encodeDrain({ after, grace, alternates });
      for (const c of agents) c.writeChunks(frame);
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(resolve, grace);
        this.drainCheck = (): void => {
          if ([...this.conns].some((c) => c.kind !== 'link' && c.state < ConnState.CLOSING)) return;
          timer.cancel();
          resolve();
        };
        this.drainCheck();
      });
      this.drainCheck = null;
    }
    await this.close();
  }

  private drainCheck: (() => void) | null = null;

  /** Number of open connections (registered or not). */
  get connections(): number {
    return this.conns.size;
  }

  /** Number of agents connected and registered (anonymous ones included, parked ones not). */
  get agents(): number {
    let n = 0;
    for (const c of this.conns) if (c.kind === 'agent' && c.state === ConnState.OPEN) n++;
    return n;
  }

  /** Starts listening on `options.host`:`options.port`; resolves with the bound address. */
  listen(): Promise<AddressInfo> {
    if (this.closingP !== null) return Promise.reject(new PosternError(ErrorCode.CLOSED, 'router is closed'));
    if (this.server !== null) return Promise.reject(new PosternError(ErrorCode.INVALID_ARGUMENT, 'router is already listening'));
    if (this.options.listeners.length > 0) return this.listenAll();
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket, socket.remoteAddress ?? '', socket.remotePort));
    this.server = server;
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EMFILE' || err.code === 'ENFILE') void this.fds.exhausted(err.code, this.conns);
      else this.emit('error', err);
    };
    return bindServer(server, this.options.port, this.options.host, onError).then(
      (addr) => {
        this.log.info('listening', { host: addr.address, port: addr.port, router: routerHex(this.routerId) });
        this.warnPlainTokens();
        if (this.fdLimit !== null && this.options.maxConnections > connectionsWithin(this.fdLimit)) {
          this.log.warn('maxConnections is above what the file descriptor limit allows', {
            maxConnections: this.options.maxConnections,
            fdLimit: this.fdLimit,
            fits: connectionsWithin(this.fdLimit),
          });
        }
        this.emit('listening', addr);
        this.mesh.start();
        return addr;
      },
      (err: unknown) => {
        this.server = null;
        throw err;
      },
    );
  }

  /** The bound address (of the first listener), or null when not listening. */
  address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null | undefined) ?? this.ports?.first() ?? null;
  }

  private ports: ListenerSet | null = null;

  /** Every bound listener: its transport (`tcp`, `tls`, `http`, `https`) and address. */
  addresses(): BoundListener[] {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return [...(a ? [{ transport: 'tcp', address: a }] : []), ...(this.ports?.addresses() ?? [])];
  }

  /** Opens every configured listener (PROTOCOL.md §13); resolves with the first one's address. */
  private async listenAll(): Promise<AddressInfo> {
    const host = { accept: (s: Duplex, a: string, p: number | undefined) => this.accept(s, a, p), log: this.log, handshakeTimeout: this.options.handshakeTimeout };
    this.ports = new ListenerSet(this.options.listeners as ResolvedListener[], host);
    const first = await this.ports.open(this.routerId).catch((err: unknown) => {
      this.ports = null;
      throw err;
    });
    this.warnPlainTokens();
    this.emit('listening', first);
    this.mesh.start();
    return first;
  }

  /** [P-12.7] Admission tokens on a plain, non-loopback listener cross the network in the clear: say so. */
  private warnPlainTokens(): void {
    if (this.options.admissionTokens.length > 0) warnTokensInClear(this.log, this.addresses());
  }

  /**
   * Re-reads the TLS certificates and keys of every TLS listener (what SIGHUP does): new
   * connections get the new ones; a file that fails keeps the old pair and logs an error.
   * Returns how many listeners took a new pair.
   */
  reloadCertificates(): number {
    return this.ports?.reloadCertificates() ?? 0;
  }

  /** A new connection from a listener: limits first, then the postern handshake. */
  private accept(stream: Duplex, address: string, port: number | undefined): void {
    const o = this.options;
    // Room is made before the process runs out of descriptors (see Descriptors).
    if (this.fds.full(this.conns.size) && !this.fds.exhausted('fd limit', this.conns)) {
      stream.destroy();
      return;
    }
    // [P-12.5] limits are checked before anything is read
    if (this.conns.size >= o.maxConnections || (o.maxConnectionsPerAddress > 0 && (this.addrs.get(address)?.conns ?? 0) >= o.maxConnectionsPerAddress)) {
      this.turnAway(stream);
      return;
    }
    const remote = o.logAddresses ? `${address}:${port ?? 0}` : undefined;
    this.handle(stream, remote, address);
  }

  /**
   * Serves one connection over any Duplex (a TCP socket, an in-memory pair, a TLS stream).
   * `remote` is what logs show as the peer's address (nothing when omitted); `address` is
   * the peer's IP for the per-address registration rate (none applies when omitted).
   * Connection limits are checked by {@link listen}'s server, not here.
   */
  handle(stream: Duplex, remote?: string, address = ''): void {
    if (this.closingP !== null) {
      stream.destroy();
      return;
    }
    const conn = new RouterConnection(this, stream, remote);
    conn.address = address;
    const a = this.addrs.get(address);
    if (a === undefined) this.addrs.set(address, { conns: 1, bucket: new TokenBucket(2, this.options.registrationRate, this.clock.now()) });
    else a.conns++;
    this.conns.add(conn);
    this.stats.accepted++;
    this.armSweep();
  }

  /** Queue depths now: bytes queued to connections (total and largest), parked agents and messages held for them, bytes reserved for incomplete frames. */
  queues(): { outboundBytes: number; maxOutboundBytes: number; parked: number; held: number; partialBytes: number } {
    let outboundBytes = 0;
    let maxOutboundBytes = 0;
    for (const c of this.conns) {
      const n = c.queuedBytes;
      outboundBytes += n;
      if (n > maxOutboundBytes) maxOutboundBytes = n;
    }
    let parked = 0;
    let held = 0;
    for (const e of this.registry.values()) {
      if (e instanceof Parked) {
        parked++;
        held += e.held.length;
      }
    }
    return { outboundBytes, maxOutboundBytes, parked, held, partialBytes: this.partialBytes };
  }

  /** Router links that are up, with their traffic. */
  links(): LinkInfo[] {
    return this.mesh.links();
  }

  /** Configured peers that have no link right now. */
  peersDown(): PeerInfo[] {
    return this.mesh.down();
  }

  /** @internal Wraps a socket this router dialled to a peer router. */
  dialled(socket: net.Socket, remote: string): RouterConnection {
    const conn = new RouterConnection(this, socket, this.options.logAddresses ? remote : undefined, true);
    this.conns.add(conn);
    this.armSweep();
    return conn;
  }

  /** Turns away a connection over the limits: our preamble and CLOSE(TOO_MANY_CONNECTIONS), nothing read. */
  private turnAway(socket: Duplex): void {
    this.stats.refused++;
    countCode(this.stats.closes, WireCode.TOO_MANY_CONNECTIONS);
    socket.on('error', () => {});
    this.fds.refusing++;
    socket.on('close', () => this.fds.refusing--);
    // Read and drop whatever comes, so the peer's FIN is seen and the socket can close.
    socket.resume();
    socket.end(Buffer.concat([encodePreamble(PROTOCOL_VERSION), encodeClose(WireCode.TOO_MANY_CONNECTIONS, 'connection limit reached')]));
    this.clock.setTimeout(() => socket.destroy(), this.options.closeTimeout);
  }

  /** @internal */
  admits(token: unknown): boolean {
    if (this.options.admissionTokens.length === 0) return true;
    if (typeof token !== 'string') return false;
    if (this.tokenHashes === null) this.tokenHashes = new Set(this.options.admissionTokens.map(sha256));
    return this.tokenHashes.has(sha256(token));
  }

  private tokenHashes: Set<string> | null = null;

  /** @internal A token bucket per address: `registrationRate` per second, bursts of twice that. */
  registrationAllowed(address: string): boolean {
    const rate = this.options.registrationRate;
    // Streams handed in without an address share no bucket: nothing says they share a host.
    if (rate === 0 || address === '') return true;
    const a = this.addrs.get(address);
    if (a === undefined) return true;
    if (a.bucket.tryTake(1, rate, this.clock.now())) return true;
    this.stats.registrationsLimited++;
    return false;
  }

  /**
   * Changes limits and admission on the live router (what SIGHUP does): only the options in
   * {@link RELOADABLE}; existing connections keep working and see the new values. Throws
   * POSTERN_ERR_INVALID_OPTION, changing nothing, on a bad value or a key that needs a restart.
   */
  reload(changes: Partial<Pick<RouterOptions, (typeof RELOADABLE)[number]>>): void {
    for (const k of Object.keys(changes)) {
      if (!(RELOADABLE as readonly string[]).includes(k)) {
        throw new PosternError(ErrorCode.INVALID_OPTION, `option ${k} cannot be changed without a restart`);
      }
    }
    const merged = resolveRouterOptions({ ...this.options, ...changes } as RouterOptions);
    const target = this.options as unknown as Record<string, unknown>;
    for (const k of RELOADABLE) target[k] = merged[k];
    this.tokenHashes = null;
    this.log.info('reloaded', { changed: Object.keys(changes).join(',') });
    if ('admissionTokens' in changes) this.warnPlainTokens();
  }

  /** Stops accepting, sends CLOSE(GOING_AWAY) to every connection and waits for them to end. */
  close(): Promise<void> {
    if (this.closingP !== null) return this.closingP;
    this.closingP = (async () => {
      this.log.info('shutting down', { connections: this.conns.size });
      this.mesh.stop();
      const server = this.server;
      const serverClosed = Promise.all([
        server === null ? Promise.resolve() : new Promise<void>((r) => server.close(() => r())),
        this.ports?.close(),
      ]);
      for (const c of [...this.conns]) c.close(WireCode.GOING_AWAY, 'router shutting down');
      await Promise.all([serverClosed, this.allClosed()]);
      this.sweepTimer?.cancel();
      this.sweepTimer = null;
      this.log.flush();
      this.log.info('closed');
    })();
    return this.closingP;
  }

  private allClosed(): Promise<void> {
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.drained = resolve;
    });
  }

  private drained: (() => void) | null = null;

  // Destinations with gathered frames, written after the reads of this event-loop turn.
  private pending: RouterConnection[] = [];
  private readonly flushPending = (): void => {
    const list = this.pending;
    this.pending = [];
    // One connection's failure must not stop the others' writes. [P-9.3]
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      try {
        c.writePending();
      } catch (err) {
        c.failSafely(err);
      }
    }
  };

  /** @internal */
  schedule(conn: RouterConnection): void {
    if (this.pending.length === 0) setImmediate(this.flushPending);
    this.pending.push(conn);
  }

  /** @internal */
  onRegistered(conn: RouterConnection): void {
    this.emit('register', conn.idText);
  }

  /** @internal */
  onClosed(conn: RouterConnection): void {
    if (!this.conns.delete(conn)) return;
    this.fds.evicted.delete(conn);
    const a = this.addrs.get(conn.address);
    if (a !== undefined) a.conns--;
    this.mesh.onClosed(conn, conn.closeCode);
    if (conn.kind !== 'link') this.emit('disconnect', conn.idText);
    this.drainCheck?.();
    if (this.conns.size === 0 && this.drained !== null) {
      const d = this.drained;
      this.drained = null;
      d();
    }
  }

  private armSweep(): void {
    if (this.sweepTimer === null) this.sweepTimer = this.clock.setTimeout(this.sweep, this.sweepPeriod);
  }

  private readonly sweep = (): void => {
    this.sweepTimer = null;
    const now = this.clock.now();
    for (const c of this.conns) {
      if (c.state >= ConnState.CLOSING) continue;
      try {
        c.tick(now);
      } catch (err) {
        c.failSafely(err);
      }
    }
    // Forget addresses with no connections once their bucket would be full again.
    const rate = this.options.registrationRate;
    for (const [k, a] of this.addrs) {
      if (a.conns <= 0 && (rate === 0 || a.bucket.full(rate, now))) this.addrs.delete(k);
    }
    // The rest of a burst of failed accepts, once the interval is over.
    this.fds.log(this.conns.size);
    if (this.conns.size > 0) this.armSweep();
  };
}
