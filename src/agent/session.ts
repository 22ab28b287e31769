// Over 500 lines because one connection's state machine stays in one file: the receive fast
// path and the write slab are its read and write halves, and split off they would reach into
// its state on every frame.
import { decodeChallenge } from '../protocol/stable-id.js';
import type { Duplex } from 'node:stream';
import type { Clock, Timer } from '../net/clock.js';
import { ControlCodec, readClose, readError, type DrainBody, type LookupResultBody, type RegisteredBody } from '../protocol/control.js';
import { Decoder } from '../protocol/decoder.js';
import { encodeClose, encodePing, encodePong, encodePreamble } from '../protocol/encoder.js';
import { ErrorCode, PosternError, errorFromWire } from '../protocol/errors.js';
import {
  FrameType,
  HEADER_SIZE,
  ID_SIZE,
  MIN_PROTOCOL_VERSION,
  PRE_REGISTER_MAX_FRAME,
  PROTOCOL_VERSION,
  RELAY_HEADER_SIZE,
  RELAY_ID_OFFSET,
  WireCode,
} from '../protocol/frame.js';
import { formatId } from '../protocol/id.js';
import { directReaderOf } from '../net/reader.js';
import { Heartbeat } from './heartbeat.js';

/**
 * One connection of an agent to a router, from the preamble to the end of the socket:
 * handshake, frame dispatch, keepalive, writes, close handshake. The {@link Agent} owns the
 * sessions and the policy (reconnect, queues); a session only reports to its handler.
 *
 * States: `handshake` (preamble and REGISTER sent, waiting for REGISTERED) → `open` →
 * `closing` (a CLOSE was sent or received; nothing more is sent or read) → `closed`
 * (socket gone). [P-9.2]
 *
 * @module
 */

/** What a session reports. Every callback runs synchronously inside the socket's event. */
export interface SessionHandler {
  /** REGISTERED arrived and was valid; the session is open. */
  registered(body: RegisteredBody): void;
  /**
   * A DELIVER. `data` is a view of the socket's chunk (or of a buffer holding one frame that
   * straddled chunks); nothing in postern writes to that memory again. `flags` as received
   * (ANONYMOUS: `from` is a reply handle; SEALED: the payload is a sealed envelope). [P-11.2]
   */
  message(from: string, data: Buffer, flags: number): void;
  /** The router asks us to move elsewhere. [P-12.1] */
  routerDrain(body: DrainBody): void;
  /** The answer to a LOOKUP. [P-11.4] */
  lookupResult(body: LookupResultBody): void;
  /** An ERROR frame, as a coded error carrying `seq` and `to` (when the frame named one). */
  errorFrame(err: PosternError): void;
  /** A PONG; `payload` is a view. */
  pong(payload: Buffer): void;
  /** The socket's write buffer drained after a write returned false. */
  writeDrained(): void;
  /** The session is over (called once): CLOSE either way, socket loss, timeout, violation. */
  ended(err: PosternError): void;
}

/** Settings of a {@link Session}. */
export interface SessionOptions {
  readonly clock: Clock;
  /** ms from `start()` to REGISTERED. */
  readonly connectTimeout: number;
  /** ms to wait for the socket to close after a CLOSE before destroying it. */
  readonly closeTimeout: number;
  /** MessagePack codec for control bodies (one per agent). */
  readonly codec: ControlCodec;
  /** REGISTER body. */
  readonly register?: Record<string, unknown>;
  /**
   * Bytes waiting to be sent above which `writeSend()` returns false (wait for 'drain').
   * Default: the socket's own mark (16 KiB for TCP).
   */
  readonly writeWait?: number;
  /**
   * Take whole DELIVERs straight from each chunk (see `deliverWhole`). Default true; false
   * sends every byte through the decoder (its slow twin, which tests compare it with).
   */
  readonly fastPath?: boolean;
  /** [P-15.2] With `register.stable`: the proof for a CHALLENGE's nonce (see src/protocol/stable-id.ts). */
  readonly prove?: (nonce: Buffer) => Buffer | undefined;
}

/** Session state; see the module comment. */
export type SessionState = 'handshake' | 'open' | 'closing' | 'closed';

const KEEPALIVE_PING = Buffer.from('k');

/** SEND payloads up to this size are copied into the write slab; larger ones are written as given. */
const COPY_MAX = 4096;
/** Bytes of one write slab: where one turn's small SENDs are gathered into one write. */
const SLAB_SIZE = 64 * 1024;

/** One connection. Create, then `start()`. */
export class Session {
  /** Current state. */
  state: SessionState = 'handshake';
  /** The announced limits, once open. */
  registeredBody: RegisteredBody | null = null;
  /** Settles when the socket has closed (or was destroyed). Never rejects. */
  readonly done: Promise<void>;
  private readonly socket: Duplex;
  private readonly opts: SessionOptions;
  private readonly handler: SessionHandler;
  private readonly decoder: Decoder;
  private heartbeat: Heartbeat | null = null;
  private connectTimer: Timer | null = null;
  private closeTimer: Timer | null = null;
  private isEnded = false;
  private badVersion: PosternError | null = null;
  private corked = false;
  private paused = false;
  private markDone!: () => void;
  private readonly fastPath: boolean;
  /** See {@link SessionOptions.writeWait}. Whenever it says wait, the socket's write() said so too, so 'drain' follows. */
  private readonly writeWait: number;
  /**
   * Small SENDs of this turn, header and payload, gathered in `slab[slabStart, slabEnd)`:
   * one socket write per turn instead of two per message. Bytes before `slabStart` belong to
   * the socket (handed to write(), maybe not yet sent); nothing writes them again: a full
   * slab is replaced, never reused.
   */
  private slab: Buffer = Buffer.allocUnsafe(0);
  private slabStart = 0;
  private slabEnd = 0;
  /** The last DELIVER's sender (16 bytes) and its text form: a stream from one sender formats its ID once. */
  private readonly lastFrom = Buffer.alloc(ID_SIZE);
  private lastFromText = '';

  constructor(socket: Duplex, opts: SessionOptions, handler: SessionHandler) {
    this.socket = socket;
    this.opts = opts;
    this.handler = handler;
    this.fastPath = opts.fastPath !== false;
    this.writeWait = opts.writeWait ?? 0;
    this.done = new Promise((resolve) => {
      this.markDone = resolve;
    });
    // [P-4.1] until REGISTERED the limit for frames from the router is 4096 bytes.
    this.decoder = new Decoder(
      {
        preamble: (v) => this.onPreamble(v),
        frame: (buf, start, end) => this.onFrame(buf, start, end),
      },
      { maxFrame: PRE_REGISTER_MAX_FRAME, preamble: true },
    );
  }

  /** Bytes waiting to be sent: in the socket's write buffer, and gathered for this turn's write. */
  get writableLength(): number {
    return this.socket.writableLength + this.slabEnd - this.slabStart;
  }

  /** Sends the preamble and REGISTER (pipelined: no need to wait for the router's preamble) and arms the connect timeout. */
  start(): void {
    const s = this.socket;
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    // Plain TCP from dial.ts: reads come here without 'data' events (src/net/reader.ts).
    directReaderOf(s)?.bind({
      rest: () => (this.reading ? this.decoder.partialRest : null),
      atFrameStart: () => this.reading && this.decoder.atFrameStart,
      adopt: (buf, n) => this.onAdopt(buf, n),
      filled: (rest, n) => this.onFilled(rest, n),
      data: (chunk) => this.onData(chunk),
    });
    s.on('end', () => this.onEnd());
    s.on('error', (err: Error) => this.onSocketError(err));
    s.on('close', () => this.onClose());
    s.on('drain', () => {
      if (this.state === 'open') this.handler.writeDrained();
    });
    this.connectTimer = this.opts.clock.setTimeout(() => {
      this.connectTimer = null;
      if (this.state === 'handshake') {
        this.abort(new PosternError(ErrorCode.CONNECT_TIMEOUT, `not registered within ${this.opts.connectTimeout} ms`));
      }
    }, this.opts.connectTimeout);
    // [P-2.1] the agent speaks first, with the highest version it speaks.
    this.write([encodePreamble(PROTOCOL_VERSION), ...this.opts.codec.encodeRegister(this.opts.register ?? {})]);
  }

  /**
   * Writes one frame's chunks together: the socket stays corked until the next tick, so the
   * frames written in one tick leave in one writev. Returns false when the socket asks the
   * writer to wait for 'drain'.
   */
  write(chunks: readonly Buffer[]): boolean {
    this.cork();
    this.flushSlab();
    let ok = true;
    for (const c of chunks) ok = this.socket.write(c);
    return ok;
  }

  /**
   * SEND: the 26-byte header (copied: the caller may reuse it at once) and the payload, copied
   * into this turn's slab when small, else written as given (never copied; the caller must
   * not change it until written). Frames leave in call order, with `write()`'s between them.
   * With `written`, the payload is never copied, and `written` runs once the socket is done
   * with it (also when it failed), so the caller knows when it may reuse it.
   */
  writeSend(header: Buffer, payload: Buffer, written?: (err?: Error | null) => void): boolean {
    this.cork();
    const small = written === undefined && payload.length <= COPY_MAX;
    const need = header.length + (small ? payload.length : 0);
    if (this.slab.length - this.slabEnd < need) {
      this.flushSlab();
      this.slab = Buffer.allocUnsafe(SLAB_SIZE);
      this.slabStart = 0;
      this.slabEnd = 0;
    }
    // TypedArray.set: Buffer.copy's argument checks cost more than a small copy itself.
    const slab = this.slab;
    let end = this.slabEnd;
    slab.set(header, end);
    end += header.length;
    if (small) {
      slab.set(payload, end);
      end += payload.length;
    }
    this.slabEnd = end;
    if (!small) {
      this.flushSlab();
      const ok = this.socket.write(payload, written);
      return ok || this.writableLength < this.writeWait;
    }
    return this.writableLength < Math.max(this.writeWait, this.socket.writableHighWaterMark);
  }

  /** Corks the socket until the next tick, so one turn's frames leave in one writev. */
  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(this.uncork);
  }

  /** Hands the slab's gathered bytes to the socket (as one view). */
  private flushSlab(): void {
    if (this.slabEnd === this.slabStart) return;
    const ok = this.socket.write(this.slab.subarray(this.slabStart, this.slabEnd));
    this.slabStart = this.slabEnd;
    void ok; // the caller's return value already said whether to wait for 'drain'
  }

  /** Sends a PING with `payload` (at most 64 bytes). */
  ping(payload: Buffer): void {
    if (this.state === 'open' || this.state === 'handshake') this.write([encodePing(payload)]);
  }

  /**
   * Stops reading (the consumer lags); see {@link Heartbeat.pause}. During the handshake it
   * only takes note: REGISTERED must still be read, and no DELIVER can come before it.
   */
  pause(): void {
    this.paused = true;
    if (this.state !== 'handshake') this.socket.pause();
    this.heartbeat?.pause();
  }

  /** Reads again. */
  resume(): void {
    this.paused = false;
    this.heartbeat?.resume();
    this.socket.resume();
  }

  /**
   * Closes on our initiative: CLOSE(`code`, `reason`), then end the stream; nothing is sent
   * afterwards. [P-9.2] Reports `ended(err)`. With `linger`, DELIVERs the router wrote
   * before it read our CLOSE are still decoded and reported (until the router's CLOSE or
   * the end of the stream), so leaving a draining router loses nothing. [P-12.2-1]
   */
  close(code: number, reason: string, err: PosternError, linger = false): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    if (linger) this.lingering = true;
    else this.decoder.stop();
    // What send() accepted goes out before the CLOSE.
    this.flushSlab();
    this.socket.end(encodeClose(code, reason));
    // Input is ignored from now on, but must still be read (even if we had paused for a
    // lagging consumer) so that the router's end of the connection is noticed.
    this.socket.resume();
    this.armCloseTimer();
    this.end(err);
  }

  /** Drops the connection at once, without a CLOSE frame. Reports `ended(err)`. */
  abort(err: PosternError): void {
    if (this.state !== 'closed') this.state = 'closing';
    this.decoder.stop();
    this.socket.destroy();
    this.end(err);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.flushSlab();
    this.socket.uncork();
  };

  private end(err: PosternError): void {
    this.heartbeat?.stop();
    this.connectTimer?.cancel();
    this.connectTimer = null;
    if (this.isEnded) return;
    this.isEnded = true;
    this.handler.ended(err);
  }

  private armCloseTimer(): void {
    if (this.closeTimer !== null) return;
    this.closeTimer = this.opts.clock.setTimeout(() => {
      this.closeTimer = null;
      this.socket.destroy();
    }, this.opts.closeTimeout);
  }

  /** True while closed by us with `linger`, still reading the router's last DELIVERs. */
  get isLingering(): boolean {
    return this.lingering;
  }

  private lingering = false;

  private onData(chunk: Buffer): void {
    if (this.state === 'closed' || (this.state === 'closing' && !this.lingering)) return;
    this.heartbeat?.received();
    try {
      let off = 0;
      if (this.fastPath && this.state === 'open' && !this.lingering) {
        // Let the decoder finish a frame split across reads, then take whole DELIVERs here.
        off = this.decoder.finishPartial(chunk);
        if (this.decoder.atFrameStart && this.state === 'open' && !this.lingering) off = this.deliverWhole(chunk, off);
      }
      if (off < chunk.length) this.decoder.push(off === 0 ? chunk : chunk.subarray(off));
    } catch (err) {
      // Frames after a preamble of another version may not even parse as ours.
      this.violation(this.badVersion ?? err);
      return;
    }
    if (this.badVersion !== null) this.violation(this.badVersion);
  }

  /** False once input is ignored: closed, or closing without lingering. */
  private get reading(): boolean {
    return !(this.state === 'closed' || (this.state === 'closing' && !this.lingering));
  }

  /**
   * `buf[0, n)` was read at a frame start into a buffer of a guessed frame size; the decoder
   * takes it as that frame's buffer when its header says so (see `Decoder.adopt`).
   */
  private onAdopt(buf: Buffer, n: number): boolean {
    if (!this.reading) return false;
    try {
      if (!this.decoder.adopt(buf, n)) return false;
    } catch (err) {
      this.violation(this.badVersion ?? err);
      return true;
    }
    this.heartbeat?.received();
    if (this.badVersion !== null) this.violation(this.badVersion);
    return true;
  }

  /**
   * `n` bytes were read straight into the rest of the frame in progress (see
   * `Decoder.partialRest`): the decoder counts them and emits the frame once complete.
   */
  private onFilled(rest: Buffer, n: number): void {
    if (!this.reading) return;
    this.heartbeat?.received();
    try {
      // False only when the decoder was stopped since the read began: the bytes belong to no frame.
      this.decoder.filledRest(rest, n);
    } catch (err) {
      this.violation(this.badVersion ?? err);
      return;
    }
    if (this.badVersion !== null) this.violation(this.badVersion);
  }

  /**
   * The receive fast path: DELIVERs lying whole in `chunk` from `from` on go straight to the
   * handler, without the decoder's per-frame dispatch. Invariant: it takes exactly the
   * frames the decoder would hand to `onFrame` as a DELIVER in the open state (a length in
   * [RELAY_HEADER_SIZE, maxFrame], type DELIVER) and reports them identically; at anything
   * else (another type, a size the decoder must judge, a frame cut by the chunk's end, a
   * state change made by the handler) it stops and returns the offset, a frame boundary,
   * where the decoder takes over. [P-3.3]
   */
  private deliverWhole(chunk: Buffer, from: number): number {
    const len = chunk.length;
    const max = this.decoder.maxFrame;
    let off = from;
    while (len - off >= RELAY_HEADER_SIZE && this.state === 'open' && !this.lingering) {
      const total = (((chunk[off]! << 24) | (chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!) >>> 0) + 4;
      if (total > len - off || total < RELAY_HEADER_SIZE || total > max || chunk[off + 4] !== FrameType.DELIVER) break;
      const end = off + total;
      this.handler.message(this.fromText(chunk, off + RELAY_ID_OFFSET), chunk.subarray(off + RELAY_HEADER_SIZE, end), chunk[off + 5]!);
      off = end;
    }
    return off;
  }

  /** The text form of the ID at `buf[at, at + 16)`, formatted again only when it differs from the last. */
  private fromText(buf: Buffer, at: number): string {
    const last = this.lastFrom;
    let same = this.lastFromText !== '';
    for (let i = 0; same && i < ID_SIZE; i++) same = buf[at + i] === last[i];
    if (same) return this.lastFromText;
    buf.copy(last, 0, at, at + ID_SIZE);
    this.lastFromText = formatId(buf, at);
    return this.lastFromText;
  }

  private violation(err: unknown): void {
    const e =
      err instanceof PosternError
        ? err
        : new PosternError(ErrorCode.INTERNAL, 'failed to handle a frame from the router', { cause: err });
    if (e.code === ErrorCode.BAD_MAGIC) {
      // Not a postern peer: a CLOSE frame would mean nothing to it.
      this.abort(e);
      return;
    }
    this.close(e.wireCode ?? WireCode.INTERNAL, e.message.slice(0, 200), e);
  }

  private onPreamble(version: number): void {
    if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
      // [P-2.3] a version we do not speak: CLOSE(UNSUPPORTED_VERSION), unless the router's
      // CLOSE follows in the same read, whose code is then the one reported. See onData.
      this.badVersion = new PosternError(
        ErrorCode.UNSUPPORTED_VERSION,
        `router speaks version ${version}, this agent ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`,
      );
    }
  }

  private onFrame(buf: Buffer, start: number, end: number): void {
    const type = buf[start + 4]!;
    if (this.lingering) {
      // After our CLOSE only the router's last DELIVERs matter; its CLOSE ends them.
      if (type === FrameType.DELIVER) {
        this.handler.message(this.fromText(buf, start + RELAY_ID_OFFSET), buf.subarray(start + RELAY_HEADER_SIZE, end), buf[start + 5]!);
      } else if (type === FrameType.CLOSE) {
        this.lingering = false;
        this.decoder.stop();
      }
      return;
    }
    if (this.badVersion !== null && type !== FrameType.CLOSE) throw this.badVersion;
    switch (type) {
      case FrameType.DELIVER:
        if (this.state !== 'open') throw malformed('DELIVER before REGISTERED');
        this.handler.message(this.fromText(buf, start + RELAY_ID_OFFSET), buf.subarray(start + RELAY_HEADER_SIZE, end), buf[start + 5]!);
        return;
      case FrameType.DRAIN:
        if (this.state !== 'open') throw malformed('DRAIN before REGISTERED');
        this.handler.routerDrain(this.opts.codec.decodeDrain(buf, start, end));
        return;
      case FrameType.LOOKUP_RESULT:
        if (this.state !== 'open') throw malformed('LOOKUP_RESULT before REGISTERED');
        this.handler.lookupResult(this.opts.codec.decodeLookupResult(buf, start, end));
        return;
      case FrameType.PING:
        // [P-8.1] answer with the same payload.
        this.write([encodePong(buf.subarray(start + HEADER_SIZE, end))]);
        return;
      case FrameType.PONG:
        this.handler.pong(buf.subarray(start + HEADER_SIZE, end));
        return;
      case FrameType.ERROR: {
        const f = readError(buf, start, end);
        const to = isZero(f.id) ? undefined : formatId(f.id);
        const err = errorFromWire(f.code, f.text, { seq: f.seq, to });
        if (this.state === 'handshake' && f.code === WireCode.RATE_LIMITED) {
          // [P-12.6] our REGISTER was refused for now: end this attempt and let the
          // reconnect backoff decide when to try again.
          this.close(WireCode.NORMAL, 'registration rate limited', err);
          return;
        }
        this.handler.errorFrame(err);
        return;
      }
      case FrameType.CLOSE: {
        const f = readClose(buf, start, end);
        this.onPeerClose(errorFromWire(f.code, f.reason));
        return;
      }
      case FrameType.CHALLENGE: {
        // [P-15.2] only an agent that asked for a stable ID gets one; it answers with the proof.
        const prove = this.opts.prove;
        if (this.state !== 'handshake' || prove === undefined) throw malformed('CHALLENGE not asked for');
        let proof: Buffer | undefined;
        try {
          proof = prove(decodeChallenge(buf, start, end));
        } catch {
          throw malformed('CHALLENGE body must be { nonce: 32 bytes }');
        }
        if (proof === undefined) throw malformed('CHALLENGE nonce of small order');
        this.write(this.opts.codec.encodeRegister({ ...this.opts.register, proof }));
        return;
      }
      case FrameType.REGISTERED: {
        if (this.state !== 'handshake') throw malformed('a second REGISTERED');
        const body = this.opts.codec.decodeRegistered(buf, start, end);
        this.registeredBody = body;
        this.decoder.maxFrame = body.maxFrame;
        this.state = 'open';
        this.connectTimer?.cancel();
        this.connectTimer = null;
        this.heartbeat = new Heartbeat(
          this.opts.clock,
          { ping: () => this.ping(KEEPALIVE_PING), expire: () => this.onKeepaliveExpired() },
          body.keepalive,
          body.timeout,
        );
        if (this.paused) {
          this.socket.pause();
          this.heartbeat.pause();
        }
        this.handler.registered(body);
        return;
      }
      default:
        // REGISTER and SEND only travel from agent to router. [P-3.2]
        throw malformed(`frame type 0x${type.toString(16)} is not sent by routers`);
    }
  }

  private onKeepaliveExpired(): void {
    const t = this.registeredBody?.timeout ?? 0;
    this.close(
      WireCode.KEEPALIVE_TIMEOUT,
      `nothing received for ${t} ms`,
      new PosternError(ErrorCode.KEEPALIVE_TIMEOUT, `nothing received from the router for ${t} ms`),
    );
  }

  private onPeerClose(err: PosternError): void {
    // [P-9.2] answer nothing, ignore whatever follows, and close.
    this.state = 'closing';
    this.decoder.stop();
    this.socket.end();
    this.socket.resume(); // see close()
    this.armCloseTimer();
    this.end(err);
  }

  private onEnd(): void {
    this.lingering = false;
    if (!this.isEnded) this.end(new PosternError(ErrorCode.CONNECTION_LOST, 'the router ended the connection without CLOSE'));
    if (this.state !== 'closed') this.state = 'closing';
    this.socket.end();
    this.armCloseTimer();
  }

  private onSocketError(err: Error): void {
    this.end(new PosternError(ErrorCode.CONNECTION_LOST, `connection error: ${err.message}`, { cause: err }));
    this.socket.destroy();
  }

  private onClose(): void {
    this.state = 'closed';
    this.closeTimer?.cancel();
    this.closeTimer = null;
    this.end(new PosternError(ErrorCode.CONNECTION_LOST, 'the connection closed'));
    this.markDone();
  }
}

function malformed(message: string): PosternError {
  return new PosternError(ErrorCode.MALFORMED, message);
}

function isZero(id: Buffer): boolean {
  for (let i = 0; i < ID_SIZE; i++) if (id[i] !== 0) return false;
  return true;
}
