/**
 * One connection to a router, agent or router link: its stream, its state machine
 * (PREAMBLE -> HANDSHAKE -> OPEN -> CLOSING -> CLOSED), close and timers. Every role it
 * plays is an object in a field or a module of its own:
 *
 * - relay/forward.ts: its SENDs routed (the fast path, runs, the SEND -> DELIVER rewrite);
 * - relay/outbox.ts, relay/unsent.ts, relay/backpressure.ts: it as a destination (what is
 *   gathered for it, what it has not sent yet, who waits on it, the slow-consumer timer);
 * - write.ts: the one writer to its stream (writes, replies, refusals, the turn's flush);
 * - mesh/source.ts, mesh/link.ts, mesh/barrier.ts: a link's SOURCE state, handshake, barriers;
 * - handlers/: every other frame, by type, with the roles it is allowed in;
 * - input-limits.ts, handles.ts, keys.ts, parked.ts, stranger.ts, conn-log.ts: rate limits,
 *   reply handles, the key directory, parked IDs, strangers, and who it is in logs.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Decoder, type FrameSink } from '../protocol/decoder.js';
import { FrameType, MAGIC, MIN_PROTOCOL_VERSION, PRE_REGISTER_MAX_FRAME, PROTOCOL_VERSION, WIRE_CODE_NAMES, WireCode } from '../protocol/frame.js';
import { encodeClose, encodePing, encodePreamble } from '../protocol/encoder.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { corkForTurn } from '../net/cork.js';
import { NO_ID } from '../protocol/id.js';
import type { StableChallenge } from '../protocol/stable-id.js';
import type { Timer } from '../net/clock.js';
import type { RouterContext } from './context.js';
import { ReplyHandles } from './handles.js';
import { LinkHandshake } from './mesh/link.js';
import type { BarrierTokens, PongQueue } from './mesh/barrier.js';
import type { LinkSource } from './mesh/source.js';
import { Parked } from './parked.js';
import { countCode } from './stats.js';
import { dispatch } from './handlers/index.js';
import { rejectStranger } from './stranger.js';
import { Outbox } from './relay/outbox.js';
import { Forwarder } from './relay/forward.js';
import { Writer } from './write.js';
import { Backpressure } from './relay/backpressure.js';
import { UnsentLog } from './relay/unsent.js';
import type { RelayPeer } from './relay/peer.js';
import { ConnState } from './state.js';
import { isLink, logId, logLost } from './conn-log.js';
import { InputLimits } from './input-limits.js';

export { ConnState } from './state.js';

/** One connection to a router: an agent's, or a router link (see the top of this file). */
export class RouterConnection implements FrameSink {
  /** The agent's ID; all zeros until registered, and for anonymous connections. */
  id: Buffer = NO_ID as Buffer;
  /** The registry entry's target: a connection routes to itself. */
  readonly conn: RouterConnection = this;
  /** `id` as four little-endian int32 words, for comparing and writing it without a loop. */
  readonly idWords = new Int32Array(4);
  /** Text form of `id` ('' until registered), for logs. */
  idText = '';
  state: ConnState = ConnState.PREAMBLE;
  /** Clock time of the last byte received. */
  lastRx: number;
  /** Clock time the connection was accepted. */
  readonly openedAt: number;
  /** Remote address for logs, or undefined when addresses are not logged. */
  remote: string | undefined;
  /** What the peer is: '' until registered or linked, then an agent or a router link. */
  kind: '' | 'agent' | 'link' = '';
  /** For links: the SOURCE state and the peer router (null for agents). */
  link: LinkSource<RelayPeer> | null = null;
  /** For links: the peer router's ID (0 until the link is up). */
  get peerRouterId(): number {
    return this.link !== null ? this.link.peerRouter : 0;
  }
  /** For links: the peer router's instance tag, when it sent one. [P-10.3] */
  peerInstance: Buffer | null = null;
  /** For links: true when this router dialled it. */
  readonly dialled: boolean;
  /** The peer's IP address, for per-address limits (never relayed; logged only as `remote`). */
  address = '';
  /** The wire code this connection was closed with (by either side), once known. */
  closeCode: number | undefined;
  /** Frames and bytes read and bytes written, for per-link reporting. */
  framesIn = 0;
  bytesIn = 0;
  bytesOut = 0;

  readonly ctx: RouterContext<RouterConnection>;
  private readonly stream: Duplex;
  private readonly decoder: Decoder;
  private pinged = false;
  private preambleSent = false;
  private firstByte = -1;
  private closeTimer: Timer | null = null;

  /**
   * As a destination: DELIVER runs (and, for links, SOURCE frames) and replies gathered
   * from the reads of one event-loop turn, written together by {@link writePending}. [P-9.3]
   */
  readonly out: Outbox<RelayPeer>;
  /** As a sender: the relay forwarding of this connection's SENDs. */
  readonly relay: Forwarder;
  /** Who waits on whom when queues are full. */
  readonly flow: Backpressure<RelayPeer>;
  /** What was written and not yet handed to the OS, for telling senders what a lost connection drops. */
  readonly unsent: UnsentLog;
  /** The one writer to the stream: everything written or queued for this connection goes through it. */
  readonly writer: Writer;
  /** The link handshake while it runs (null for agents, and once the link is up). */
  hs: LinkHandshake<RouterConnection> | null = null;
  /** True for a connection registered without an identity. */
  anonymous = false;
  /** [P-15.2] The stable-ID challenge of this connection, once asked for. */
  stable: StableChallenge | null = null;
  /** The X25519 public key the agent registered, for LOOKUP. */
  publicKey: Buffer | null = null;
  private replyHandles: ReplyHandles<RouterConnection> | null = null;
  // Agents: links their SENDs took since the last PING, and PINGs waiting on them.
  linksUsed: Set<RouterConnection> | null = null;
  pongs: PongQueue | null = null;
  // Links: barrier tokens sent as PING payloads, awaiting PONG.
  tokens: BarrierTokens | null = null;

  /** Rate limits and the incomplete-frame budget. [P-12.6] [P-12.8] */
  private readonly limits: InputLimits<RouterConnection>;

  /** [P-12.8] This connection's share of the router's partialBytes: the size of its incomplete frame. */
  get partialCharge(): number {
    return this.limits.partialCharge;
  }

  /** `dial`: this router opened the connection to a peer router and starts the link handshake. */
  constructor(ctx: RouterContext<RouterConnection>, stream: Duplex, remote: string | undefined, dial = false) {
    this.ctx = ctx;
    this.stream = stream;
    this.remote = remote;
    this.dialled = dial;
    this.openedAt = this.lastRx = ctx.clock.now();
    this.decoder = new Decoder(this, { maxFrame: PRE_REGISTER_MAX_FRAME, preamble: true }); // [P-4.1]
    this.out = new Outbox<RelayPeer>(stream instanceof Socket, () => ctx.schedule(this));
    this.relay = new Forwarder(ctx, this);
    this.unsent = new UnsentLog(this, ctx, stream);
    this.flow = new Backpressure<RelayPeer>(this, stream, () => !this.limits.ratePaused && this.state === ConnState.OPEN, this);
    this.writer = new Writer(this, stream, ctx.stats, ctx.options, this.unsent);
    this.limits = new InputLimits(ctx, this, stream);
    if (dial) {
      // [P-10.2] the dialler speaks first: preamble and LINK_HELLO together
      this.preambleSent = true;
      this.writer.write(encodePreamble(PROTOCOL_VERSION));
      this.hs = LinkHandshake.dial(ctx, this);
    }
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.on('close', this.onStreamClose);
    stream.on('drain', this.onDrain);
  }

  // [P-3.5] frames of one connection are handled in order, and what they cause is written in order
  private readonly onData = (chunk: Buffer): void => {
    this.lastRx = this.ctx.clock.now();
    this.pinged = false;
    this.ctx.stats.bytesIn += chunk.length;
    this.bytesIn += chunk.length;
    if (this.firstByte < 0 && chunk.length > 0) {
      this.firstByte = chunk[0]!;
      // [P-2.2] Most strangers differ at the first byte: turn them away here, without the
      // decoder's exception (and its stack trace) for each one during a flood.
      if (this.firstByte !== MAGIC[0] && this.state === ConnState.PREAMBLE) {
        this.rejectStranger();
        return;
      }
    }
    const before = this.framesIn;
    try {
      let off = 0;
      if (((this.kind === 'agent' && !this.anonymous) || this.kind === 'link') && this.state === ConnState.OPEN) {
        // Let the decoder finish a frame split across reads, then take whole frames here.
        off = this.decoder.finishPartial(chunk);
        if (this.decoder.atFrameStart && this.state === ConnState.OPEN && this.ctx.options.relayFastPath) off = this.relay.relayWhole(chunk, off, this.decoder.maxFrame);
      }
      if (off < chunk.length) this.decoder.push(off === 0 ? chunk : chunk.subarray(off));
    } catch (err) {
      this.relay.dropView();
      this.failSafely(err);
      return;
    }
    this.relay.flushRun();
    this.relay.dropView();
    this.limits.afterRead(this.decoder.reserved, chunk.length, this.framesIn - before, this.kind === 'link');
  };

  /** [P-2.2] [P-2.3] */
  preamble(version: number): void {
    if (this.dialled) {
      // The acceptor answered our preamble with the version it chose.
      if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
        this.close(WireCode.UNSUPPORTED_VERSION, `peer router chose version ${version}`);
        return;
      }
      this.state = ConnState.HANDSHAKE;
      return;
    }
    if (version < MIN_PROTOCOL_VERSION) {
      this.close(WireCode.UNSUPPORTED_VERSION, `version ${version} is not supported; this router speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`);
      return;
    }
    this.preambleSent = true;
    corkForTurn(this.stream); // the preamble and the REGISTERED read with it: one write
    this.writer.write(encodePreamble(Math.min(version, PROTOCOL_VERSION)));
    this.state = ConnState.HANDSHAKE;
  }

  /** A frame the decoder assembled: an open connection's SENDs to the relay, every other frame to its handler. */
  frame(buf: Buffer, start: number, end: number): void {
    this.ctx.stats.framesIn++;
    this.framesIn++;
    if (buf[start + 4] !== FrameType.SEND || this.state !== ConnState.OPEN) {
      this.relay.flushRun();
      dispatch(this, buf, start, end);
      return;
    }
    this.relay.send(buf, start, end);
  }

  /** Reply handles for this connection (made at the first anonymous SEND or LOOKUP). [P-11.3] */
  handles(): ReplyHandles<RouterConnection> {
    return (this.replyHandles ??= new ReplyHandles(this.ctx, this));
  }

  /** Tells the sender of a SEND that it was not delivered (see Writer.refuse). [P-7.1] [P-10.5] */
  refuse(code: number, seq: number, dest: Uint8Array, src: Buffer | null): void {
    this.writer.refuse(code, seq, dest, src);
  }

  /** Notes that this agent's requests went over `link`: its next PING waits for that link. [P-10.6-1] */
  usedLink(link: RouterConnection): void {
    (this.linksUsed ??= new Set()).add(link);
  }

  /** HANDSHAKE -> OPEN: relaying, for an agent or as a router link, reading frames up to `maxFrame`. */
  open(kind: 'agent' | 'link', maxFrame: number): void {
    this.kind = kind;
    this.state = ConnState.OPEN;
    this.decoder.maxFrame = maxFrame;
  }

  /** The peer sent CLOSE(code) (logged by its handler). */
  closedByPeer(code: number): void {
    this.closeCode = code;
    // [P-9.2] a peer that receives CLOSE sends nothing more and ends. A normal close
    // means the agent is done; any other code (it judged the path dead) may come back.
    // What was already gathered for it still goes out: a lingering agent reads it. [P-12.2-1]
    this.writePending();
    this.shutdown(code !== WireCode.NORMAL);
    this.stream.end();
  }

  /**
   * An exception while handling this connection ends this connection, never the process:
   * when even closing it properly throws, or it was closing already, the stream is
   * destroyed. Every entry point (a read, a stream event, a timer, the router's flush and
   * sweep) lands here on an exception.
   */
  failSafely(err: unknown): void {
    try {
      this.relay.flushRun();
      if (this.state >= ConnState.CLOSING) throw err;
      this.fail(err);
    } catch (again) {
      this.ctx.log.error('internal error while closing', { ...logId(this), error: String(again) });
      this.relay.abandon();
      this.out.clear();
      try {
        this.unsent.drop();
      } catch {
        this.unsent.forget();
      }
      this.stream.destroy();
    }
  }

  /** Closes this connection for `err`: with its wire code when it has one, else as an internal error. */
  fail(err: unknown): void {
    if (err instanceof PosternError && err.wireCode !== undefined && err.wireCode !== 0) {
      if (err.code === ErrorCode.BAD_MAGIC) {
        this.rejectStranger();
        return;
      }
      this.ctx.log.warn('protocol violation', { ...logId(this), remote: this.remote, code: WIRE_CODE_NAMES[err.wireCode] ?? err.wireCode });
      this.close(err.wireCode, err.message);
      return;
    }
    this.ctx.log.error('internal error', { ...logId(this), error: String(err) });
    this.close(WireCode.INTERNAL, 'internal error');
  }

  /** [P-2.2] Not a postern peer: say so in a way the other side can read, then close. */
  private rejectStranger(): void {
    this.writer.write(rejectStranger(this.ctx, this.remote, this.firstByte, this.preambleSent));
    this.preambleSent = true;
    this.finish();
  }

  private readonly onEnd = (): void => {
    try {
      // The peer stopped writing without CLOSE: nothing more will come, so finish too.
      if (this.state < ConnState.CLOSING) {
        logLost(this);
        this.shutdown(true);
      }
      // Not again when we ended first: Node builds an error (stack and all) for each extra end().
      if (!this.stream.writableEnded) this.stream.end();
    } catch (err) {
      this.failSafely(err);
    }
  };

  private readonly onError = (err: Error): void => {
    this.ctx.log.debug('stream error', { ...logId(this), error: (err as NodeJS.ErrnoException).code ?? err.message });
    try {
      this.destroyNow();
    } catch (again) {
      this.failSafely(again);
    }
  };

  private readonly onStreamClose = (): void => {
    try {
      if (this.state < ConnState.CLOSING) logLost(this);
      this.shutdown(true);
      // What the stream still held when it ended is lost: tell the senders. [P-9.4]
      this.writePending();
      this.unsent.drop();
      this.flow.releaseWaiters();
    } catch (err) {
      this.ctx.log.error('internal error while closing', { ...logId(this), error: String(err) });
    }
    this.state = ConnState.CLOSED;
    this.closeTimer?.cancel();
    this.closeTimer = null;
    // The router forgets it whatever happened above, so nothing leaks.
    this.ctx.onClosed(this);
  };

  /** Runs a timer's work for this connection: an exception ends this connection only. */
  guarded(fn: () => void): () => void {
    return () => {
      try {
        fn();
      } catch (err) {
        this.failSafely(err);
      }
    };
  }

  /** Bytes queued for this connection: gathered for this turn's flush, and held by its stream. */
  get queuedBytes(): number {
    return this.writer.queued;
  }

  /** Writes a frame given as chunks, together, now (see Writer.write). */
  writeChunks(chunks: Buffer[]): void {
    this.writer.writeChunks(chunks);
  }

  /** Queues a reply for this turn's flush; never writes (see Writer.reply). */
  reply(buf: Buffer): void {
    this.writer.reply(buf);
  }

  /** Writes everything gathered for this connection (the router's flush after this turn's reads). [P-9.3] */
  writePending(): void {
    this.writer.flush();
  }

  /** Destroys the stream, first telling the senders of what it drops. */
  private destroyNow(): void {
    try {
      this.unsent.drop();
      this.flow.releaseWaiters();
    } finally {
      this.stream.destroy();
    }
  }

  private readonly onDrain = (): void => {
    try {
      this.flow.drained();
    } catch (err) {
      this.failSafely(err);
    }
  };

  /** Destroys the stream after `ms` instead of the close timeout, first telling the senders of what it drops. */
  destroyAfter(ms: number): void {
    this.closeTimer?.cancel();
    this.closeTimer = this.ctx.clock.setTimeout(this.guarded(() => this.destroyNow()), ms);
  }

  /**
   * Keepalive and handshake deadlines, called by the router's sweep. A deadline is never
   * acted on early; the sweep makes it up to one sweep period late, which §8.2 allows. [P-8.2]
   */
  tick(now: number): void {
    const o = this.ctx.options;
    if (this.limits.partialCharge > 0 && this.limits.frameTooSlow(now)) return;
    if (this.state === ConnState.PREAMBLE || this.state === ConnState.HANDSHAKE) {
      if (now - this.openedAt >= o.handshakeTimeout) { // [P-2.5-1] [P-2.5-2]
        this.ctx.stats.handshakeTimeouts++;
        this.close(WireCode.HANDSHAKE_TIMEOUT, `no registration within ${o.handshakeTimeout} ms`);
      }
      return;
    }
    if (this.state !== ConnState.OPEN) return;
    const idle = now - this.lastRx;
    if (idle >= Math.floor(o.keepaliveInterval * 1.5)) {
      this.ctx.stats.keepaliveExpiries++;
      this.close(WireCode.KEEPALIVE_TIMEOUT, `nothing received for ${idle} ms`, true);
      // The path is presumed dead: do not wait for a flush that cannot happen.
      this.destroyNow();
    } else if (idle >= o.keepaliveInterval && !this.pinged) {
      this.pinged = true;
      this.writer.write(encodePing());
    }
  }

  /** Sends CLOSE(code) and lets the descriptor go at once, without waiting for a flush. */
  evict(code: number, reason: string): void {
    this.close(code, reason);
    this.stream.destroy();
  }

  /** Sends CLOSE(code) and ends the connection; frames queued before it are still written. [P-9.1-1] */
  close(code: number, reason = '', park = false): void {
    if (this.state >= ConnState.CLOSING) return;
    this.closeCode = code;
    this.relay.flushRun();
    countCode(this.ctx.stats.closes, code);
    if (code !== WireCode.GOING_AWAY) {
      this.ctx.log.info(isLink(this) ? 'closing link' : 'closing connection', { remote: this.remote, ...logId(this), code: WIRE_CODE_NAMES[code] ?? code, reason: reason || undefined });
    }
    // [P-9.2] frames queued before the CLOSE (replies included) are written before it; a
    // slow consumer's are not, it did not read them.
    if (code !== WireCode.SLOW_CONSUMER && this.state === ConnState.OPEN) this.writePending();
    this.shutdown(park);
    this.writeCloseFrame(code, reason);
    this.finish();
  }

  /** Leaves the relay (if still in it) and ends the stream; destroyed if the peer does not finish within closeTimeout. */
  private finish(): void {
    this.shutdown();
    this.stream.end();
    this.armCloseTimer();
  }

  /** CLOSE, preceded by our preamble when the peer has not had it yet, so it can parse the CLOSE. [P-2.3] */
  private writeCloseFrame(code: number, reason: string): void {
    if (!this.preambleSent) {
      this.preambleSent = true;
      this.writer.write(encodePreamble(PROTOCOL_VERSION));
    }
    this.writer.write(encodeClose(code, reason));
  }

  private armCloseTimer(): void {
    if (this.closeTimer === null && this.state !== ConnState.CLOSED) this.destroyAfter(this.ctx.options.closeTimeout);
  }

  /** Leaves the relay: unregistered, no more input, waiters released. Idempotent. */
  private shutdown(park = false): void {
    if (this.state >= ConnState.CLOSING) return;
    this.state = ConnState.CLOSING;
    this.decoder.stop();
    this.limits.release();
    // Input is ignored from now on; keep reading it so the peer's FIN is noticed even if
    // this connection was paused for backpressure or a rate limit.
    this.stream.resume();
    this.ctx.registry.delete(this);
    // [P-12.4] A lost agent's ID is kept for a while, and its messages held.
    if (park && this.kind === 'agent' && !this.anonymous && this.ctx.options.resumeGrace > 0 && !this.ctx.closing) new Parked(this.ctx, this.id, this.publicKey, false);
    // A slow consumer's senders stay held until what it drops is reported, so they hear of
    // their queued SENDs before anything about later ones (released in destroyNow/close).
    this.flow.stop(this.unsent.dropCode !== WireCode.DESTINATION_SLOW);
    // A lost link answers no barrier: release them, so flushes do not hang.
    this.tokens?.releaseAll();
    if (this.kind === 'link') this.ctx.mesh.onLinkDown(this);
    // [P-11.3] reply handles die with their connection
    this.replyHandles?.release();
    this.replyHandles = null;
  }
}
