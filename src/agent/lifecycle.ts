import type { Duplex } from 'node:stream';
import type { ControlCodec, DrainBody, RegisteredBody } from '../protocol/control.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { ID_SIZE, RELAY_HEADER_SIZE, WireCode } from '../protocol/frame.js';
import { formatId } from '../protocol/id.js';
import { stableProof } from '../protocol/stable-id.js';
import { parseEndpoint, type Endpoint } from '../net/address.js';
import { openTransport } from '../net/dial.js';
import { toPosternError, type KeyDirectory } from './directory.js';
import type { RouterInfo, Status } from './events.js';
import { Flushes } from './flushes.js';
import type { Inbound } from './inbound.js';
import type { ResolvedAgentOptions } from './options.js';
import { isPermanentError, ReconnectLoop } from './reconnect.js';
import { Session } from './session.js';

/**
 * The agent's connection lifecycle: dial, register, lose, drain, reconnect, finish. One
 * {@link Lifecycle} per agent holds the agent's state, its current {@link Session} (one
 * connection), where to dial next and what to resume, and the pending flushes; it is also
 * the one usable-state check every write goes through ({@link Lifecycle.liveSession}).
 * It reaches back to the agent only through {@link LifecycleHost}.
 *
 * @module
 */

/** The agent's states: CONNECTING → OPEN ⇄ RECONNECTING → CLOSING → CLOSED. */
export type AgentState = 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

/** What the lifecycle needs from the agent it serves. */
export interface LifecycleHost {
  /** True while the agent keeps reading paused (its inbox is full): a new session starts paused. */
  readonly readPaused: boolean;
  /** Publishes a status event. */
  status(s: Status): void;
  /** An ERROR frame that answered no lookup: 'undeliverable' when it names a SEND, else 'warning'. */
  routerError(err: PosternError): void;
  /** The send backlog that made `writable` false is gone. */
  drained(): void;
  /** The agent ended for good: end the inbox and the status iterators (with a `closed` status). */
  ended(err: PosternError | undefined): void;
}

/** Bytes waiting to be sent before `writable` goes false (at most half of maxSendBuffer). */
const WRITE_WAIT = 256 * 1024;

/** The connection lifecycle of one agent (see the module note). */
export class Lifecycle {
  state: AgentState = 'connecting';
  session: Session | null = null;
  /** The current agent ID (a reconnect changes it), bytes and text. */
  idBuf: Buffer = Buffer.alloc(ID_SIZE);
  idText = '';
  /** What the router announced at the last registration. */
  info: RouterInfo | null = null;
  /** A write left more than `writeWait` bytes waiting: `'drain'` is owed. */
  wantDrain = false;
  /** Settles once the agent is closed for good; never rejects. */
  readonly done: Promise<PosternError | undefined>;
  private resolveDone!: (err: PosternError | undefined) => void;
  private readonly flushes = new Flushes();
  private readonly reconnector: ReconnectLoop;
  /** Where to dial: the configured router, or a draining router's alternates. */
  private targets: Endpoint[];
  private targetIndex = 0;
  /** Resume state of the last registration: token, grace, which target issued it, when it was lost. */
  private resumeToken: Buffer | null = null;
  private resumeGrace = 0;
  private resumeTarget: Endpoint | null = null;
  private lostAt = 0;
  /** Why the last connection or attempt ended; carried by the next `reconnecting` status. */
  private lastError: PosternError = new PosternError(ErrorCode.CONNECTION_LOST, 'not connected');
  /**
   * Holds the process open while reconnecting. Connected, the socket does that; between
   * attempts only a (possibly unref'd) backoff timer exists, and a program blocked in
   * `for await (const m of agent)` would otherwise exit in the middle of a router restart.
   */
  private hold: NodeJS.Timeout | null = null;
  /** The session left after a router's DRAIN, and what finishes it. */
  private draining: Session | null = null;
  private drainDone: (() => void) | null = null;
  private readonly onAbort = (): void => {
    void this.close();
  };

  constructor(
    private readonly opts: ResolvedAgentOptions,
    private readonly codec: ControlCodec,
    private readonly directory: KeyDirectory,
    private readonly inbound: Inbound,
    private readonly host: LifecycleHost,
  ) {
    this.targets = [...opts.endpoints];
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.reconnector = new ReconnectLoop(
      {
        clock: opts.clock,
        policy: { initialDelay: opts.reconnectDelay, maxDelay: opts.reconnectMaxDelay, jitter: opts.reconnectJitter },
        maxAttempts: opts.maxReconnectAttempts,
        random: opts.random,
      },
      {
        attempt: (n) => this.dial(n),
        isPermanent: isPermanentError,
        onWait: (n, delayMs) => {
          this.host.status({ type: 'reconnecting', attempt: n, delayMs, error: this.lastError });
        },
        onGiveUp: (err) => this.finish(toPosternError(err)),
      },
    );
  }

  /** CLOSED while the agent is closing or closed, else undefined. */
  closedError(): PosternError | undefined {
    return this.state === 'closed' || this.state === 'closing' ? new PosternError(ErrorCode.CLOSED, 'the agent is closed') : undefined;
  }

  /**
   * The session to write to, or why there is none: CLOSED (closing or closed), NOT_CONNECTED
   * (reconnecting: nothing is queued, the router gives no receipt across connections). The
   * one check of "usable" for every write.
   */
  liveSession(): Session | PosternError {
    const closed = this.closedError();
    if (closed !== undefined) return closed;
    const s = this.session;
    if (this.state !== 'open' || s === null || s.state !== 'open') {
      return new PosternError(ErrorCode.NOT_CONNECTED, 'not connected to a router (reconnecting)');
    }
    return s;
  }

  /** The session a SEND of `size` payload bytes may go to now; throws the reason it may not. */
  sendableSession(size: number): Session {
    const info = this.info!;
    if (size > info.maxPayload) {
      throw new PosternError(ErrorCode.FRAME_TOO_LARGE, `payload of ${size} bytes exceeds the router's limit of ${info.maxPayload}`);
    }
    const s = this.liveSession();
    if (!(s instanceof Session)) throw s;
    const buffered = s.writableLength;
    if (buffered > 0 && buffered + RELAY_HEADER_SIZE + size > this.opts.maxSendBuffer) {
      throw new PosternError(ErrorCode.SEND_BUFFER_FULL, `${buffered} bytes already wait to be sent`);
    }
    return s;
  }

  /** The first connection attempt (see `connect()`). */
  async start(): Promise<void> {
    const signal = this.opts.signal;
    if (signal !== undefined) {
      if (signal.aborted) {
        const err = new PosternError(ErrorCode.CLOSED, 'aborted before connecting', { cause: signal.reason });
        this.finish(err);
        throw err;
      }
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
    try {
      // One attempt per configured router: the first that registers wins. [P-13.7]
      for (let i = 1; ; i++) {
        try {
          await this.dial(i);
          break;
        } catch (err) {
          if (i >= this.opts.endpoints.length || this.opts.createConnection !== undefined || isPermanentError(err) || this.state !== 'connecting') throw err;
        }
      }
    } catch (err) {
      const e = this.state === 'closing' || this.state === 'closed'
        ? new PosternError(ErrorCode.CLOSED, 'closed while connecting', { cause: signal?.reason ?? err })
        : toPosternError(err);
      this.finish(e);
      throw e;
    }
  }

  /** A PING round trip behind every earlier SEND (see `Agent.flush()`). [P-6.5] */
  flush(): Promise<void> {
    const s = this.liveSession();
    if (!(s instanceof Session)) return Promise.reject(s);
    return new Promise<void>((resolve, reject) => {
      s.ping(this.flushes.add({ resolve, reject }));
    });
  }

  /** Stops reconnecting, closes the session gracefully and ends the agent (see `Agent.close()`). */
  async close(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') {
      await this.done;
      return;
    }
    this.state = 'closing';
    this.reconnector.stop();
    const s = this.session;
    this.session = null;
    if (s !== null) {
      const err = new PosternError(ErrorCode.CLOSED, 'the agent was closed');
      if (s.state === 'open') s.close(WireCode.NORMAL, '', err);
      else s.abort(err);
      await s.done;
    }
    this.finish(undefined);
  }

  /** The REGISTER body for an attempt at `target`. [P-4.1] [P-11.1] [P-12.3] [P-12.7] */
  private registerBody(target: Endpoint): Record<string, unknown> {
    const body: Record<string, unknown> = {};
    if (this.opts.token !== undefined) body['token'] = this.opts.token;
    if (this.opts.anonymous) body['anonymous'] = true;
    // An anonymous connection publishes no key: it would link its messages to one identity.
    if (this.opts.publicKey !== undefined && !this.opts.anonymous) body['key'] = Buffer.from(this.opts.publicKey);
    if (this.opts.stableId) body['stable'] = true; // [P-15.2] proven in the second REGISTER
    // The token goes back only to the router that issued it (another could replay it there
    // to take our ID), and only within the grace it announced.
    if (
      this.opts.resume &&
      this.resumeToken !== null &&
      this.resumeTarget === target &&
      this.opts.clock.now() - this.lostAt < this.resumeGrace
    ) {
      body['id'] = Buffer.from(this.idBuf);
      body['resume'] = this.resumeToken;
    }
    return body;
  }

  /** One connection attempt: resolves when registered, rejects with why it failed. */
  private dial(attempt: number): Promise<void> {
    const closed = this.closedError();
    if (closed !== undefined) return Promise.reject(closed);
    this.host.status({ type: 'connecting', attempt });
    const target = this.targets[this.targetIndex % this.targets.length]!;
    let opened: Duplex | Promise<Duplex>;
    try {
      opened = this.opts.createConnection !== undefined ? this.opts.createConnection() : openTransport(target, this.opts.transport, this.opts.connectTimeout);
    } catch (err) {
      this.targetIndex++;
      return Promise.reject(err instanceof PosternError ? err : new PosternError(ErrorCode.CONNECTION_LOST, 'could not open a connection', { cause: err }));
    }
    if (!(opened instanceof Promise)) return this.startSession(opened, target);
    // TLS, upgrades and proxies first finish their own handshakes (PROTOCOL.md §13).
    return opened.then(
      (socket) => {
        if (this.state !== 'closing' && this.state !== 'closed') return this.startSession(socket, target);
        socket.destroy();
        throw new PosternError(ErrorCode.CLOSED, 'the agent is closed');
      },
      (err: unknown) => {
        this.targetIndex++;
        this.lastError = toPosternError(err);
        throw this.lastError;
      },
    );
  }

  /** Runs the postern handshake on an open transport: resolves when registered, rejects with why it failed. */
  private startSession(socket: Duplex, target: Endpoint): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let registered = false;
      const session: Session = new Session(
        socket,
        {
          clock: this.opts.clock,
          connectTimeout: this.opts.connectTimeout,
          closeTimeout: this.opts.closeTimeout,
          codec: this.codec,
          register: this.registerBody(target),
          // A stream of large messages should not stop for 'drain' after each one.
          writeWait: Math.min(WRITE_WAIT, this.opts.maxSendBuffer >> 1),
          prove: this.opts.stableId ? (nonce) => stableProof(this.opts.keyPair!.secretKey, this.opts.keyPair!.publicKey, nonce) : undefined,
        },
        {
          registered: (body) => {
            registered = true;
            this.onRegistered(session, body, target);
            resolve();
          },
          ended: (err) => {
            if (this.session === session) this.session = null;
            if (!registered) {
              this.lastError = err;
              this.targetIndex++;
              reject(err);
            } else if (this.drainDone !== null && this.draining === session) {
              this.drainDone();
            } else {
              this.onLost(err);
            }
          },
          message: (from, data, flags) => {
            // A session left after DRAIN still hands over what the router had sent it.
            if (this.session === session || session.isLingering) {
              this.inbound.deliver(from, data, flags);
            }
          },
          errorFrame: (err) => {
            if (this.session !== session) return;
            if (this.directory.onError(err.seq ?? 0, err)) return;
            this.host.routerError(err);
          },
          pong: (payload) => this.flushes.onPong(payload),
          routerDrain: (body) => this.onRouterDrain(session, body),
          lookupResult: (body) => this.directory.onResult(body),
          writeDrained: () => {
            if (this.session === session && this.wantDrain) {
              this.wantDrain = false;
              this.host.drained();
            }
          },
        },
      );
      this.session = session;
      if (this.host.readPaused) session.pause();
      session.start();
      // A stream whose handshake read an HTTP head was left paused: data flows from here.
      if (!this.host.readPaused) socket.resume();
    });
  }

  private onRegistered(session: Session, body: RegisteredBody, target: Endpoint): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    // [P-4.4] a registration brings a new ID unless it resumed the old one [P-12.3].
    const resumed = body.resumed === true;
    this.resumeToken = body.resume === undefined ? null : Buffer.from(body.resume);
    this.resumeGrace = body.resumeGrace ?? 0;
    this.resumeTarget = target;
    // After a loss, this router first (to resume), then the configured list in order. [P-13.7]
    const i = this.opts.endpoints.indexOf(target);
    this.targets = i >= 0 ? [...this.opts.endpoints] : [target, ...this.opts.endpoints];
    this.targetIndex = Math.max(i, 0);
    // Alternates the router announced come after the configured list. [P-13.7]
    if (this.opts.createConnection === undefined) {
      for (const a of body.alternates ?? []) {
        try {
          const e = parseEndpoint(a, 'alternates');
          if (!this.targets.some((t) => t.url === e.url)) this.targets.push(e);
        } catch {
          // A bad entry is skipped, as in DRAIN.
        }
      }
    }
    this.idBuf = Buffer.from(body.id);
    this.idText = formatId(this.idBuf);
    this.info = Object.freeze({
      routerId: body.router,
      maxFrame: body.maxFrame,
      maxPayload: body.maxFrame - RELAY_HEADER_SIZE, // [P-4.2]
      keepalive: body.keepalive,
      timeout: body.timeout,
    });
    this.state = 'open';
    this.session = session;
    this.release();
    this.host.status({ type: 'registered', id: this.idText, router: this.info, resumed });
    if (this.wantDrain) {
      // The old socket's backlog is gone with it; the new one is empty.
      this.wantDrain = false;
      this.host.drained();
    }
  }

  private onLost(err: PosternError): void {
    if (this.state !== 'open') return;
    this.lastError = err;
    this.lostAt = this.opts.clock.now();
    this.failPending(new PosternError(ErrorCode.NOT_SENT, 'the connection was lost before the router answered', { cause: err }));
    this.host.status({ type: 'disconnected', error: err });
    this.reconnectOrFinish(err);
  }

  private reconnectOrFinish(err: PosternError, firstDelay?: number): void {
    if (this.opts.reconnect && this.opts.maxReconnectAttempts > 0 && !isPermanentError(err)) {
      this.state = 'reconnecting';
      this.hold ??= setInterval(noop, 0x7fffffff);
      void this.reconnector.start(firstDelay);
    } else {
      this.finish(err);
    }
  }

  /**
   * [P-12.2-1] The router is draining: stop sending, flush so everything sent so far is routed,
   * CLOSE(NORMAL) (so the router does not park us), then reconnect after a random delay in
   * 0..`after` ms to one of the alternates (or the same router).
   */
  private onRouterDrain(session: Session, body: DrainBody): void {
    if (this.state !== 'open' || this.session !== session) return;
    const err = new PosternError(ErrorCode.DRAINING, 'the router is draining');
    this.state = 'reconnecting';
    this.lastError = err;
    this.hold ??= setInterval(noop, 0x7fffffff);
    if (this.opts.createConnection === undefined) {
      const alternates: Endpoint[] = [];
      for (const a of body.alternates) {
        try {
          alternates.push(parseEndpoint(a, 'alternates'));
        } catch {
          // A bad entry is skipped; the others (or the same router) still serve.
        }
      }
      if (alternates.length > 0) {
        this.targets = alternates;
        this.targetIndex = Math.floor(clampRandom(this.opts.random()) * alternates.length);
      }
    }
    this.host.status({ type: 'disconnected', error: err });
    this.draining = session;
    let done = false;
    this.drainDone = () => {
      if (done) return;
      done = true;
      this.draining = null;
      this.drainDone = null;
      if (this.session === session) this.session = null;
      this.lostAt = this.opts.clock.now();
      session.close(WireCode.NORMAL, 'drained', err, true);
      this.failPending(new PosternError(ErrorCode.NOT_SENT, 'the connection closed before the router answered', { cause: err }));
      if (this.state !== 'reconnecting') return;
      this.reconnectOrFinish(err, Math.floor(clampRandom(this.opts.random()) * (body.after + 1)));
    };
    // The PONG comes after every earlier SEND was routed; the session's end also finishes.
    session.ping(this.flushes.add({ resolve: this.drainDone, reject: this.drainDone }));
  }

  private release(): void {
    if (this.hold !== null) clearInterval(this.hold);
    this.hold = null;
  }

  /** Rejects every pending flush and lookup. */
  private failPending(err: PosternError): void {
    this.flushes.failAll(err);
    this.directory.failAll(err);
  }

  /** Ends the agent for good (idempotent). */
  private finish(err: PosternError | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.reconnector.stop();
    this.release();
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    const s = this.session;
    this.session = null;
    s?.abort(err ?? new PosternError(ErrorCode.CLOSED, 'the agent was closed'));
    this.failPending(new PosternError(ErrorCode.CLOSED, 'the agent was closed', { cause: err }));
    this.host.ended(err);
    this.resolveDone(err);
  }
}

function noop(): void {}

function clampRandom(r: number): number {
  return Number.isFinite(r) ? Math.min(Math.max(r, 0), 0.9999999999) : 0;
}
