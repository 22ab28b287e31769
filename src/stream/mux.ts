// Over 500 lines because the stream layer's receive dispatch, credit, window growth, reset
// and keepalive rules (PROTOCOL.md §14) share one state per stream and read best side by side.
import type { Clock, Timer } from '../net/clock.js';
import { IncomingMessage, type Message, type MessageSender, type SendOptions, type Verification } from '../agent/message.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import {
  decodeStreamFrame,
  encodeStreamFrame,
  INITIAL_WINDOW,
  MAX_RESET_REASON,
  MAX_SERVICE_NAME,
  RESET_CODE_NAMES,
  ResetCode,
  STREAM_HEADER_SIZE,
  StreamFlag,
  StreamType,
  writeStreamHeader,
  type StreamFrame,
} from './frame.js';
import type { ResolvedStreamOptions } from './options.js';
import { Stream, type StreamOwner } from './stream.js';

/**
 * The stream layer of one agent (PROTOCOL.md §14): streams and requests to any number of
 * peers, multiplexed over the agent's one router connection inside ordinary SEND payloads.
 * The agent hands it every received payload that starts with the stream marker; it sends
 * through the agent's public `send()`/`sendSealed()` and listens to its public events, so the
 * agent itself knows nothing of streams beyond that one hook.
 *
 * @module
 */

/** What the mux needs of its agent: the public face of `Agent`. */
export interface StreamHost {
  readonly id: string;
  readonly connected: boolean;
  readonly writable: boolean;
  readonly routerInfo: { readonly maxPayload: number };
  send(to: string, data: Uint8Array, options?: SendOptions): number;
  sendPrefixed(to: string, prefix: Buffer, body: Buffer, written: (err?: Error | null) => void): void;
  sendSealed(to: string, data: Uint8Array, options?: SendOptions): Promise<number>;
  on(event: 'drain', fn: () => void): unknown;
  on(event: 'undeliverable', fn: (err: PosternError) => void): unknown;
  on(event: 'status', fn: (s: { type: string }) => void): unknown;
  emit(event: 'stream', s: Stream): boolean;
  listenerCount(event: 'stream'): number;
}

/** Options of `agent.openStream()`. */
export interface OpenStreamOptions {
  /** Service name sent in OPEN (at most 255 bytes of UTF-8). Default: none. */
  service?: string;
  /**
   * Seal the OPEN to the peer's key with this agent's sender proof, so the acceptor can check
   * who opens (e.g. `postern expose --allow-key`). Default: true when the agent has a
   * `keyPair`. The key comes as for `sendSealed()` (pinned, cached, or the directory).
   */
  seal?: boolean;
}

/** Options of `agent.request()`. */
export interface RequestOptions {
  /** Time to wait for the reply, in ms; POSTERN_ERR_TIMEOUT after it. Default: the `streams.requestTimeout` option. */
  timeout?: number;
  /** Seal the REQUEST (as `sendSealed()`). Default false. */
  seal?: boolean;
}

/** Largest DATA body per frame: big enough that per-frame costs vanish, small enough to interleave streams. */
const MAX_DATA_CHUNK = 64 * 1024;
/**
 * DATA bytes the mux still hands to a socket that reported full before it waits for 'drain'.
 * Waiting at the first "full" (16 KiB) would empty the pipe between writes; the agent's own
 * bound (`maxSendBuffer`, 8 MiB) stays far away.
 */
const SOCKET_SLACK = 1024 * 1024;
/** Stream keys remembered after a reset, so frames still in flight for them draw no RESET back. */
const RECENT_RESETS = 1024;
const MAX_U32 = 0xffffffff;

interface PendingRequest {
  readonly to: string;
  resolve(m: Message): void;
  reject(err: PosternError): void;
  timer: Timer;
}

/** @internal A request or reply delivered to the application: a message whose reply goes through the stream layer. */
export class StreamMessage extends IncomingMessage {
  constructor(
    from: string,
    data: Buffer,
    anonymous: boolean,
    sealed: boolean,
    sender: MessageSender | undefined,
    verification: Verification,
    /** The request ID of a REQUEST (replying answers it), or undefined for a reply. */
    readonly requestId: number | undefined,
    /** For a request: sends the REPLY. For a reply: a plain message back. */
    replyFn: (data: Uint8Array | string, options?: SendOptions) => number,
  ) {
    super({ _reply: (_m, d, o) => replyFn(d, o) }, from, data, anonymous, sealed, sender, verification);
  }
}

/** The stream layer of one agent. @internal Created by the agent on first use. */
export class StreamMux implements StreamOwner {
  private readonly streams = new Map<string, Stream>();
  private readonly requests = new Map<number, PendingRequest>();
  private readonly blocked = new Set<Stream>();
  private readonly recent = new Set<string>();
  /** Streams lost with the router connection, to RESET(RECONNECTED) once registered again. */
  private lost: { peer: string; id: number; flags: number }[] = [];
  /** DATA's stream header, rewritten per frame (`sendPrefixed` copies it at once). */
  private readonly dataHead = Buffer.allocUnsafe(STREAM_HEADER_SIZE);
  private nextStream = 0;
  private nextRequest = 0;
  private nextProbe = 0;
  private budgetUsed = 0;
  private keepaliveTimer: Timer | null = null;
  /** DATA bytes handed to the socket since it last reported full (see {@link SOCKET_SLACK}). */
  private overshoot = 0;

  constructor(
    private readonly host: StreamHost,
    private readonly opts: ResolvedStreamOptions,
    private readonly clock: Clock,
  ) {
    host.on('drain', () => {
      this.overshoot = 0;
      const bs = [...this.blocked];
      this.blocked.clear();
      for (const s of bs) this.pump(s);
    });
    host.on('undeliverable', (err) => this.onUndeliverable(err));
    host.on('status', (s) => {
      if (s.type === 'disconnected') this.onDisconnected();
      else if (s.type === 'registered') this.onRegistered();
      else if (s.type === 'closed') this.failAll(new PosternError(ErrorCode.CLOSED, 'the agent was closed'), false);
    });
  }

  /** Streams open now. */
  get size(): number {
    return this.streams.size;
  }

  /** Opens a stream to `to` (see `Agent.openStream`). */
  open(to: string, options: OpenStreamOptions, canSeal: boolean): Stream {
    const service = options.service ?? '';
    if (typeof service !== 'string' || Buffer.byteLength(service) > MAX_SERVICE_NAME) {
      throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'service must be a string of at most 255 bytes');
    }
    if (this.streams.size >= this.opts.maxStreams) {
      throw new PosternError(ErrorCode.STREAM_REFUSED, `${this.opts.maxStreams} streams are open already (streams.maxStreams)`);
    }
    const seal = options.seal ?? canSeal;
    const id = this.allocate(to);
    const s = new Stream(this, { peer: to, id, opener: true, service, sendCredit: INITIAL_WINDOW, highWaterMark: this.opts.maxWindow });
    s._lastHeard = this.clock.now();
    this.streams.set(key(to, id, true), s);
    this.armKeepalive();
    const open = encodeStreamFrame(StreamType.OPEN, 0, id, s._granted, Buffer.from(service, 'utf8'));
    s._openTimer = this.clock.setTimeout(() => {
      if (!s._accepted) s.destroy(new PosternError(ErrorCode.TIMEOUT, `stream ${id} to ${to}: no answer within ${this.opts.openTimeout} ms`, { to }));
    }, this.opts.openTimeout);
    if (seal) {
      this.host.sendSealed(to, open).then(
        () => {
          s._openSent = true;
          this.pump(s);
        },
        (err: unknown) => {
          s._noReset = true;
          s.destroy(err as Error);
        },
      );
    } else {
      // Thrown synchronously (invalid ID, not connected): the caller gets it, no stream exists.
      try {
        this.host.send(to, open);
      } catch (err) {
        s._openTimer.cancel();
        this.streams.delete(key(to, id, true));
        throw err;
      }
      s._openSent = true;
    }
    return s;
  }

  /** Sends a REQUEST and resolves with the REPLY (see `Agent.request`). */
  request(to: string, payload: Uint8Array | string, options: RequestOptions): Promise<Message> {
    const timeout = options.timeout ?? this.opts.requestTimeout;
    if (!Number.isInteger(timeout) || timeout < 1) {
      return Promise.reject(new PosternError(ErrorCode.INVALID_ARGUMENT, 'timeout must be a positive integer (ms)'));
    }
    if (this.requests.size >= this.opts.maxPendingRequests) {
      return Promise.reject(new PosternError(ErrorCode.SEND_BUFFER_FULL, `${this.requests.size} requests wait for replies (streams.maxPendingRequests)`));
    }
    let id = this.nextRequest;
    do id = id >= MAX_U32 ? 1 : id + 1;
    while (this.requests.has(id));
    this.nextRequest = id;
    const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    const frame = encodeStreamFrame(StreamType.REQUEST, 0, id, 0, body);
    return new Promise<Message>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.requests.delete(id);
        reject(new PosternError(ErrorCode.TIMEOUT, `no reply from ${to} within ${timeout} ms`, { to }));
      }, timeout);
      const pending: PendingRequest = { to, resolve, reject, timer };
      const fail = (err: unknown): void => {
        timer.cancel();
        this.requests.delete(id);
        reject(err);
      };
      this.requests.set(id, pending);
      if (options.seal === true) {
        this.host.sendSealed(to, frame).catch(fail);
        return;
      }
      try {
        this.host.send(to, frame);
      } catch (err) {
        fail(err);
      }
    });
  }

  /**
   * A received payload that starts with the stream marker. Returns the message to deliver
   * to the application (a REQUEST), or undefined when the stream layer consumed it.
   */
  receive(m: Message): Message | undefined {
    const f = decodeStreamFrame(m.data);
    // [P-14.2] a malformed stream frame is dropped; it is never delivered as a plain message.
    if (typeof f === 'string') return undefined;
    const peer = m.from;
    if (f.type === StreamType.REQUEST) {
      if (f.flags !== 0) return undefined; // [P-14.7] a REQUEST never has the ACCEPTOR flag
      return new StreamMessage(peer, f.body, m.anonymous, m.sealed, m.sender, m.verification, f.id, (data, o) =>
        this.host.send(peer, encodeStreamFrame(StreamType.REPLY, StreamFlag.ACCEPTOR, f.id, 0, toBytes(data)), o),
      );
    }
    if (f.type === StreamType.REPLY) {
      const r = this.requests.get(f.id);
      // [P-14.7] a reply counts only from the agent the request went to.
      if (r === undefined || r.to !== peer) return undefined;
      this.requests.delete(f.id);
      r.timer.cancel();
      r.resolve(new StreamMessage(peer, f.body, m.anonymous, m.sealed, m.sender, m.verification, undefined, (data, o) => this.host.send(peer, toBytes(data), o)));
      return undefined;
    }
    // [P-14.2] the ACCEPTOR flag says whose ID space the stream ID is in.
    const localOpener = (f.flags & StreamFlag.ACCEPTOR) !== 0;
    if (f.type === StreamType.OPEN) {
      if (localOpener) this.protocolReset(peer, f, 'OPEN from an acceptor');
      else this.onOpen(m, f);
      return undefined;
    }
    const k = key(peer, f.id, localOpener);
    const s = this.streams.get(k);
    if (s === undefined) {
      // [P-14.6] a frame for a stream we do not have draws RESET(UNKNOWN_STREAM), except a
      // RESET (no reset loops) and frames of a stream reset lately (still in flight).
      if (f.type !== StreamType.RESET && !this.recent.has(k)) this.sendReset(peer, f.id, !localOpener, ResetCode.UNKNOWN_STREAM, '');
      return undefined;
    }
    s._lastHeard = this.clock.now();
    s._kaSent = 0;
    if (localOpener && !s._accepted && f.type !== StreamType.RESET) {
      s._accepted = true;
      s._openTimer?.cancel();
      s._openTimer = null;
      s.emit('accepted');
    }
    switch (f.type) {
      case StreamType.DATA:
        this.onData(s, f.body);
        break;
      case StreamType.WINDOW:
        if (s._sendCredit + f.value > MAX_U32) {
          this.fail(s, ResetCode.PROTOCOL, 'credit beyond 2^32-1');
          break;
        }
        s._sendCredit += f.value;
        this.pump(s);
        break;
      case StreamType.FIN:
        if (s._finReceived) {
          this.fail(s, ResetCode.PROTOCOL, 'a second FIN');
          break;
        }
        s._finReceived = true;
        s.push(null);
        this.maybeClean(s);
        break;
      case StreamType.RESET:
        this.onReset(s, f.value, f.body.toString('utf8'));
        break;
      case StreamType.PING:
        this.control(s, StreamType.PONG, f.value);
        break;
      case StreamType.PONG:
        this.onPong(s, f.value);
        break;
    }
    return undefined;
  }

  // --- StreamOwner ---------------------------------------------------------------------

  pump(s: Stream): void {
    const p = s._pending;
    if (p === null || s.destroyed || !s._openSent) return;
    const max = Math.min(MAX_DATA_CHUNK, this.host.routerInfo.maxPayload - STREAM_HEADER_SIZE);
    while (p.off < p.chunk.length) {
      if (s._sendCredit === 0) return; // [P-14.4] wait for WINDOW
      if (!this.host.writable && this.overshoot >= SOCKET_SLACK) {
        this.blocked.add(s);
        return;
      }
      const n = Math.min(p.chunk.length - p.off, s._sendCredit, max);
      const last = p.off + n === p.chunk.length;
      writeStreamHeader(this.dataHead, 0, StreamType.DATA, flagsOf(s), s.streamId, 0);
      try {
        // The body is a view of the writer's chunk, not a copy: the chunk's write callback
        // waits until the socket is done with its last piece (pieces are written in order).
        this.host.sendPrefixed(s.peer, this.dataHead, p.chunk.subarray(p.off, p.off + n), last ? () => p.cb() : noop);
      } catch (err) {
        s._noReset = true;
        s.destroy(err as Error);
        return;
      }
      p.off += n;
      s._sendCredit -= n;
      if (!this.host.writable) this.overshoot += n;
    }
    s._pending = null;
    if (p.chunk.length === 0) p.cb();
  }

  fin(s: Stream): void {
    if (s._finSent || s.destroyed) return;
    s._finSent = true;
    this.control(s, StreamType.FIN, 0);
    this.maybeClean(s);
  }

  grant(s: Stream): void {
    if (s.destroyed || s._finReceived) return;
    // [P-14.4] the peer may have at most `window` bytes unread here: grant up to consumed + window.
    const consumed = s._received - s.readableLength;
    const inc = consumed + s._window - s._granted;
    if (inc <= 0 || inc < s._window / 2) return;
    s._granted += inc;
    this.control(s, StreamType.WINDOW, inc);
  }

  destroyed(s: Stream, err: Error | null): void {
    const k = key(s.peer, s.streamId, s.opener);
    if (this.streams.get(k) === s) this.streams.delete(k);
    this.blocked.delete(s);
    this.budgetUsed -= s._window - INITIAL_WINDOW;
    s._window = INITIAL_WINDOW;
    if (this.streams.size === 0) this.disarmKeepalive();
    if (s._clean || s._noReset) return;
    this.remember(k);
    const code = s.resetCode ?? ResetCode.CANCEL;
    s.resetCode = code;
    const reason = s._resetReason !== '' ? s._resetReason : err === null ? '' : String(err.message);
    this.sendReset(s.peer, s.streamId, !s.opener, code, reason);
  }

  // --- receiving -----------------------------------------------------------------------

  private onOpen(m: Message, f: StreamFrame): void {
    const peer = m.from;
    const k = key(peer, f.id, false);
    if (this.streams.has(k)) {
      // [P-14.3] a second OPEN for a live stream ID is a protocol error on that stream.
      this.fail(this.streams.get(k)!, ResetCode.PROTOCOL, 'OPEN for an open stream');
      return;
    }
    if (this.streams.size >= this.opts.maxStreams) {
      this.sendReset(peer, f.id, true, ResetCode.LIMIT, 'too many streams');
      return;
    }
    if (this.host.listenerCount('stream') === 0) {
      this.sendReset(peer, f.id, true, ResetCode.REFUSED, 'this agent accepts no streams');
      return;
    }
    const s = new Stream(this, {
      peer,
      id: f.id,
      opener: false,
      service: f.body.toString('utf8'),
      sendCredit: f.value,
      sender: m.sender,
      verification: m.verification,
      highWaterMark: this.opts.maxWindow,
    });
    s._lastHeard = this.clock.now();
    this.streams.set(k, s);
    this.armKeepalive();
    this.host.emit('stream', s);
    // [P-14.3] the acceptor answers every OPEN: WINDOW (accepted) unless the listener reset it.
    if (!s.destroyed) this.control(s, StreamType.WINDOW, 0);
  }

  private onData(s: Stream, body: Buffer): void {
    if (s._finReceived) {
      this.fail(s, ResetCode.PROTOCOL, 'DATA after FIN');
      return;
    }
    if (s._received + body.length > s._granted) {
      // [P-14.4] more than the credit granted: the sender broke flow control.
      this.fail(s, ResetCode.FLOW_CONTROL, 'DATA beyond the granted window');
      return;
    }
    s._received += body.length;
    if (body.length > 0) s.push(body);
    // [P-14.5] auto-tuning: measure what arrives in one round trip of a PING.
    if (s._probe !== 0) s._probeBytes += body.length;
    else if (s._window < this.opts.maxWindow && this.budgetUsed < this.opts.windowBudget) {
      this.nextProbe = this.nextProbe >= MAX_U32 - 1 ? 1 : this.nextProbe + 1;
      s._probe = this.nextProbe;
      s._probeBytes = 0;
      this.control(s, StreamType.PING, s._probe);
    }
    this.grant(s);
  }

  private onPong(s: Stream, token: number): void {
    if (token === 0 || token !== s._probe) return; // a keepalive answer (heard already) or a stale one
    s._probe = 0;
    // A round trip brought in at least 2/3 of the window: the window, not the reader or the
    // path, limits this stream. Double it, within the per-stream maximum and the agent's budget.
    if (s._probeBytes * 3 < s._window * 2) return;
    const grow = Math.min(s._window, this.opts.maxWindow - s._window, this.opts.windowBudget - this.budgetUsed);
    if (grow <= 0) return;
    s._window += grow;
    this.budgetUsed += grow;
    this.grant(s);
  }

  private onReset(s: Stream, code: number, reason: string): void {
    s.resetCode = code;
    s._noReset = true;
    this.remember(key(s.peer, s.streamId, s.opener));
    const name = RESET_CODE_NAMES[code] ?? `code ${code}`;
    const text = `stream ${s.streamId} reset by ${s.peer}: ${name}${reason === '' ? '' : `: ${reason}`}`;
    let ec: ErrorCode = ErrorCode.STREAM_RESET;
    if (s.opener && !s._accepted) {
      if (code === ResetCode.REFUSED || code === ResetCode.LIMIT) ec = ErrorCode.STREAM_REFUSED;
      else if (code === ResetCode.UNKNOWN_SERVICE) ec = ErrorCode.UNKNOWN_SERVICE;
    }
    s.destroy(new PosternError(ec, text, { to: s.peer }));
  }

  private onUndeliverable(err: PosternError): void {
    const to = err.to;
    if (to === undefined) return;
    // A SEND to this peer was refused: some stream frame may be lost, so every stream with the
    // peer ends with the router's code instead of going on with a hole. [P-14.8]
    for (const s of [...this.streams.values()]) {
      if (s.peer !== to) continue;
      s._noReset = true;
      this.remember(key(s.peer, s.streamId, s.opener));
      s.destroy(new PosternError(err.code, `stream ${s.streamId} to ${to}: ${err.message}`, { to, cause: err, wireCode: err.wireCode }));
    }
    for (const [id, r] of [...this.requests]) {
      if (r.to !== to) continue;
      this.requests.delete(id);
      r.timer.cancel();
      r.reject(err);
    }
  }

  /** [P-14.8] The router connection is gone: every stream ends, with a code, never truncated. */
  private onDisconnected(): void {
    for (const s of this.streams.values()) {
      if (this.lost.length < this.opts.maxStreams) this.lost.push({ peer: s.peer, id: s.streamId, flags: flagsOf(s) });
    }
    this.failAll(new PosternError(ErrorCode.CONNECTION_LOST, 'the router connection was lost; its streams are reset'), true);
  }

  private onRegistered(): void {
    const lost = this.lost;
    this.lost = [];
    for (const l of lost) {
      try {
        this.host.send(l.peer, encodeStreamFrame(StreamType.RESET, l.flags, l.id, ResetCode.RECONNECTED));
      } catch {
        // Best effort: the peer learns it from its keepalive otherwise.
      }
    }
  }

  private failAll(err: PosternError, remember: boolean): void {
    for (const s of [...this.streams.values()]) {
      s._noReset = true;
      s.resetCode = ResetCode.RECONNECTED;
      if (remember) this.remember(key(s.peer, s.streamId, s.opener));
      s.destroy(err);
    }
    for (const r of this.requests.values()) {
      r.timer.cancel();
      r.reject(err);
    }
    this.requests.clear();
  }

  // --- sending ---------------------------------------------------------------------------

  private allocate(to: string): number {
    let id = this.nextStream;
    do id = id >= MAX_U32 ? 1 : id + 1;
    while (this.streams.has(key(to, id, true)));
    this.nextStream = id;
    return id;
  }

  private control(s: Stream, type: number, value: number): void {
    try {
      this.host.send(s.peer, encodeStreamFrame(type, flagsOf(s), s.streamId, value));
    } catch (err) {
      // Not connected, or the send buffer is full: the stream cannot go on with a lost frame.
      if (!s.destroyed) {
        s._noReset = true;
        s.destroy(err as Error);
      }
    }
  }

  private sendReset(peer: string, id: number, acceptor: boolean, code: number, reason: string): void {
    let text = Buffer.from(reason, 'utf8');
    if (text.length > MAX_RESET_REASON) text = text.subarray(0, MAX_RESET_REASON);
    try {
      this.host.send(peer, encodeStreamFrame(StreamType.RESET, acceptor ? StreamFlag.ACCEPTOR : 0, id, code, text));
    } catch {
      // A reset that cannot go out is answered later: the peer's next frame draws UNKNOWN_STREAM.
    }
  }

  private protocolReset(peer: string, f: StreamFrame, why: string): void {
    this.sendReset(peer, f.id, (f.flags & StreamFlag.ACCEPTOR) === 0, ResetCode.PROTOCOL, why);
  }

  /** Resets `s` for a fault of the peer's, and destroys it with POSTERN_ERR_STREAM_RESET. */
  private fail(s: Stream, code: number, why: string): void {
    s.resetCode = code;
    s._resetReason = why;
    s.destroy(new PosternError(ErrorCode.STREAM_RESET, `stream ${s.streamId} with ${s.peer}: ${why}`, { to: s.peer }));
  }

  private maybeClean(s: Stream): void {
    if (!(s._finSent && s._finReceived)) return;
    // Both directions ended: the stream is done on the wire; Node ends it once it is read.
    s._clean = true;
    const k = key(s.peer, s.streamId, s.opener);
    if (this.streams.get(k) === s) this.streams.delete(k);
    if (this.streams.size === 0) this.disarmKeepalive();
  }

  private remember(k: string): void {
    this.recent.delete(k);
    this.recent.add(k);
    if (this.recent.size > RECENT_RESETS) this.recent.delete(this.recent.values().next().value!);
  }

  // --- keepalive -------------------------------------------------------------------------

  private armKeepalive(): void {
    const ka = this.opts.keepalive;
    if (ka === 0 || this.keepaliveTimer !== null) return;
    const tick = (): void => {
      this.keepaliveTimer = null;
      this.checkLiveness();
      if (this.streams.size > 0) this.keepaliveTimer = this.clock.setTimeout(tick, Math.max(1, Math.floor(ka / 2)));
    };
    this.keepaliveTimer = this.clock.setTimeout(tick, Math.max(1, Math.floor(ka / 2)));
  }

  private disarmKeepalive(): void {
    this.keepaliveTimer?.cancel();
    this.keepaliveTimer = null;
  }

  /** [P-14.8] Probe streams the peer has been silent on; reset those whose probe went unanswered. */
  private checkLiveness(): void {
    if (!this.host.connected) return;
    const now = this.clock.now();
    const ka = this.opts.keepalive;
    for (const s of [...this.streams.values()]) {
      if (!s._accepted) continue; // the open timeout covers it
      if (s._kaSent !== 0) {
        if (now - s._kaSent >= ka) {
          s.resetCode = ResetCode.CANCEL;
          s._resetReason = 'keepalive timeout';
          s.destroy(new PosternError(ErrorCode.TIMEOUT, `stream ${s.streamId} with ${s.peer}: no answer to a keepalive within ${ka} ms`, { to: s.peer }));
        }
      } else if (now - s._lastHeard >= ka) {
        s._kaSent = now;
        this.control(s, StreamType.PING, 0);
      }
    }
  }
}

function key(peer: string, id: number, localOpener: boolean): string {
  return `${peer}${localOpener ? '>' : '<'}${id}`;
}

function flagsOf(s: Stream): number {
  return s.opener ? 0 : StreamFlag.ACCEPTOR;
}

function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return data;
  throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'data must be a Uint8Array or a string');
}

function noop(): void {}
