/**
 * Why this file is still over 500 lines: it holds the connection proper (stream, state
 * machine, close, timers, rate limits) and, for now, the relay forwarding code (relayWhole,
 * extendAgentRun, route, flushRun, the unsent bookkeeping and backpressure), the SOURCE state
 * of a link, the links an agent's SENDs used, and the control() switch. The outbox
 * (relay/outbox.ts), parked IDs (parked.ts), reply handles (handles.ts), the key directory
 * (keys.ts), the link handshake (mesh/link.ts) and flush barriers (mesh/barrier.ts)
 * are out already; what is left moves next, with the fast path kept on one object shape
 * (role objects in fields, never subclasses).
 */
import { StableChallenge } from '../protocol/stable-id.js';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Decoder, type FrameSink } from '../protocol/decoder.js';
import {
  Flag,
  FrameType,
  MAGIC,
  MIN_PROTOCOL_VERSION,
  SEND_FLAGS,
  PRE_REGISTER_MAX_FRAME,
  PROTOCOL_VERSION,
  ID_SIZE,
  MAX_MAX_FRAME,
  RELAY_HEADER_SIZE,
  RELAY_ID_OFFSET,
  SOURCE_SIZE,
  RELAY_SEQ_OFFSET,
  WIRE_CODE_NAMES,
  WireCode,
} from '../protocol/frame.js';
import { encodeClose, encodeError, encodePing, encodePong, encodePreamble, encodeRouteError, writeSource } from '../protocol/encoder.js';
import { readRouteError, type LookupBody, type LookupResultBody, type RegisterRequest } from '../protocol/control.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { corkForTurn } from '../net/cork.js';
import { formatId, NO_ID, routerHex, routerIdOf } from '../protocol/id.js';
import type { Timer } from '../net/clock.js';
import { TokenBucket } from '../net/token-bucket.js';
import type { RouterContext } from './context.js';
import type { Registered } from './registry.js';
import { ReplyHandles } from './handles.js';
import { LinkHandshake } from './mesh/link.js';
import { answerLookup, passLookupResult } from './keys.js';
import { barrierDone, BarrierTokens, PongQueue, type Barrier } from './mesh/barrier.js';
import { Parked, type Held } from './parked.js';
import { countCode } from './stats.js';
import { Outbox } from './relay/outbox.js';
import { timingSafeEqual } from 'node:crypto';

/** Connection states. [P-9] */
export const ConnState = {
  /** Waiting for the agent's preamble. */
  PREAMBLE: 0,
  /** Preamble exchanged, waiting for REGISTER. */
  HANDSHAKE: 1,
  /** Registered: relaying. */
  OPEN: 2,
  /** CLOSE sent or received; flushing. */
  CLOSING: 3,
  /** The stream is gone. */
  CLOSED: 4,
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

const EMPTY = Buffer.alloc(0);
/** How logs name a connection that ended without CLOSE: POSTERN_ERR_CONNECTION_LOST without its prefix, like the wire-code names. */
const LOST = 'CONNECTION_LOST';

// [P-2.2] What strangers are told, built once: a flood of them allocates nothing per reply.
// Shared by every connection that writes them; never written to.
const STRANGER_BODY = `This port speaks the postern protocol, not HTTP (${ErrorCode.BAD_MAGIC}). See PROTOCOL.md.\n`;
const HTTP_REFUSAL = Buffer.from(
  `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(STRANGER_BODY)}\r\nConnection: close\r\n\r\n${STRANGER_BODY}`,
);
const STRANGER_CLOSE = Buffer.concat([encodePreamble(PROTOCOL_VERSION), encodeClose(WireCode.BAD_MAGIC, 'not a postern peer')]);
const EMPTY_VIEW = new DataView(new ArrayBuffer(0));

// Plain byte arithmetic: Buffer's read methods validate their offset on every call, which
// on the relay path costs more than the read.
function u32be(b: Buffer, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function i32le(b: Buffer, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

/** Runs shorter than this are copied into their destination's slab; longer ones are written as they are. */
const SMALL_RUN = 4096;
/** Slots of a sender's destination cache (a power of two), indexed by the last byte of the ID. */
const DEST_CACHE_SLOTS = 64;

/**
 * Messages written to the stream that it had not yet handed to the OS at the time, kept
 * so their senders can be told if the connection ends before it does. [P-9.4]
 */
interface Unsent {
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
  readonly from: RouterConnection;
  readonly first: number;
  readonly last: number;
  /** Stream position (bytes written to this connection before it) of `start`. */
  readonly pos: number;
}

/** Messages remembered as unsent before the first look at what the OS took. */
const UNSENT_CHECK = 64;

/** The parts of a Node stream that say how much of what was written the OS has not taken. */
interface StreamInternals {
  readonly _writableState?: { readonly writelen?: unknown };
  readonly _handle?: { readonly writeQueueSize?: unknown } | null;
}

/**
 * One agent connection on a router: reads frames with a {@link Decoder}, relays SENDs by
 * rewriting them in place into DELIVERs, and is the one place that writes to its stream.
 *
 * Relay path: consecutive SENDs to the same destination that sit back to back in one
 * chunk are gathered into a run and written as one slice of that chunk; every run is
 * written before the chunk's `push()` returns, so nothing outlives the read it came from
 * except in the destination's write queue.
 */
export class RouterConnection implements FrameSink {
  /** The agent's ID; all zeros until registered, and for anonymous connections. */
  id: Buffer = NO_ID as Buffer;
  /** The registry entry's target: a connection routes to itself. */
  readonly conn: RouterConnection = this;
  /** `id` as four little-endian int32 words, for comparing and writing it without a loop. */
  w0 = 0;
  w1 = 0;
  w2 = 0;
  w3 = 0;
  /**
   * Agents this connection sent to lately, by the low bits of the ID's last byte, to skip
   * the registry lookup; allocated at the first SEND. A hit is checked against all 16
   * bytes of the ID and the agent's state.
   */
  private destCache: Array<RouterConnection | null> | null = null;
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
  /** For links: the peer router's ID and its announced maxFrame. */
  peerRouterId = 0;
  peerMaxFrame = 0;
  /** For links: the peer router's instance tag, when it sent one. [P-10.3] */
  peerInstance: Buffer | null = null;
  /** For links: true when this router dialled it. */
  readonly dialled: boolean;
  /** The peer's IP address, for per-address limits (never relayed; logged only as `remote`). */
  address = '';
  /** The wire code this connection was closed with (by either side), once known. */
  closeCode: number | undefined;
  /** Frames read and bytes written, for per-link reporting. */
  framesIn = 0;
  bytesIn = 0;
  bytesOut = 0;

  private readonly ctx: RouterContext<RouterConnection>;
  private readonly stream: Duplex;
  private readonly decoder: Decoder;
  private pinged = false;
  private preambleSent = false;
  private firstByte = -1;
  private closeTimer: Timer | null = null;

  // The open relay run: frames [runStart, runEnd) of runBuf, all for runDest.
  private runDest: RouterConnection | null = null;
  private runBuf: Buffer = EMPTY;
  private runStart = 0;
  private runEnd = 0;
  private runCount = 0;
  private runSeq = 0;
  private runFirst = 0;
  /** The run's destination is an agent reached by its own ID (not a reply handle, not a link). */
  private runById = false;

  /**
   * As a destination: DELIVER runs (and, for links, SOURCE frames) and replies gathered
   * from the reads of one event-loop turn, written together by {@link writePending}. [P-9.3]
   */
  readonly out: Outbox<RouterConnection>;
  // Bytes handed to the stream so far, and the messages among them the stream had not yet
  // handed to the OS when last looked at (null when none).
  private sent = 0;
  private unsentMsgs: Unsent[] | null = null;
  private unsentCheck = UNSENT_CHECK;
  /** The code senders of dropped messages are told: DESTINATION_SLOW for a slow consumer. */
  private dropCode = 0;
  // A DataView of the buffer being relayed from (the chunk read, or a frame the decoder
  // assembled): DataView reads and writes compile to single loads and stores, where
  // Buffer's methods validate every call and byte arithmetic takes four.
  private viewBuf: Buffer = EMPTY;
  private viewOf: DataView = EMPTY_VIEW;
  // As a link destination: whose SOURCE the peer router holds now (sender and its version).
  private srcOwner: RouterConnection | null = null;
  private srcVersion = 0;

  // Links: the sender named by the last SOURCE frame and the links it has crossed.
  private readonly source = Buffer.alloc(ID_SIZE);
  private sourceHops = 0;
  private sourceFlags = 0;
  // `source` as four little-endian int32 words, for the relay fast path.
  private srcW0 = 0;
  private srcW1 = 0;
  private srcW2 = 0;
  private srcW3 = 0;
  // Bumped by every SOURCE frame, so link destinations know when to name the sender again.
  private sourceVersion = 0;
  /** The link handshake while it runs (null for agents, and once the link is up). */
  private hs: LinkHandshake<RouterConnection> | null = null;
  // Anonymity: no ID (anonymous connection), reply handles issued, the sticky one.
  /** True for a connection registered without an identity. */
  anonymous = false;
  /** [P-15.2] The stable-ID challenge of this connection, once asked for. */
  private stable: StableChallenge | null = null;
  /** The X25519 public key the agent registered, for LOOKUP. */
  publicKey: Buffer | null = null;
  private replyHandles: ReplyHandles<RouterConnection> | null = null;
  // Agents: links their SENDs took since the last PING, and PINGs waiting on them.
  private linksUsed: Set<RouterConnection> | null = null;
  private pongs: PongQueue | null = null;
  // Links: barrier tokens sent as PING payloads, awaiting PONG.
  private tokens: BarrierTokens | null = null;

  // Backpressure. Senders paused because this connection's queue is over the limit.
  private readonly waiters = new Set<RouterConnection>();
  // Destinations this connection is paused for.
  private readonly blockedOn = new Set<RouterConnection>();
  private slowTimer: Timer | null = null;
  // Rate limits: token buckets (made at the first read), and whether reading is paused to let them refill.
  private buckets: { bytes: TokenBucket; msgs: TokenBucket } | null = null;
  private ratePaused = false;
  /** [P-12.8] This connection's share of the router's partialBytes: the size of its incomplete frame. */
  partialCharge = 0;
  // The start of the current window of minFrameRate (clock time, bytesIn then; -1 when no frame is incomplete).
  private stallSince = -1;
  private stallMark = 0;

  /** `dial`: this router opened the connection to a peer router and starts the link handshake. */
  constructor(ctx: RouterContext<RouterConnection>, stream: Duplex, remote: string | undefined, dial = false) {
    this.ctx = ctx;
    this.stream = stream;
    this.remote = remote;
    this.dialled = dial;
    this.openedAt = this.lastRx = ctx.clock.now();
    this.decoder = new Decoder(this, { maxFrame: PRE_REGISTER_MAX_FRAME, preamble: true }); // [P-4.1]
    this.out = new Outbox<RouterConnection>(stream instanceof Socket, () => ctx.schedule(this));
    if (dial) {
      // [P-10.2] the dialler speaks first: preamble and LINK_HELLO together
      this.preambleSent = true;
      this.write(encodePreamble(PROTOCOL_VERSION));
      this.hs = LinkHandshake.dial(ctx, this);
    }
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.on('close', this.onStreamClose);
    stream.on('drain', this.onDrain);
  }

  // ---- input ---------------------------------------------------------------------------

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
        if (this.decoder.atFrameStart && this.state === ConnState.OPEN && this.ctx.options.relayFastPath) off = this.relayWhole(chunk, off);
      }
      if (off < chunk.length) this.decoder.push(off === 0 ? chunk : chunk.subarray(off));
    } catch (err) {
      this.dropView();
      this.failSafely(err);
      return;
    }
    this.flushRun();
    this.dropView();
    if (this.decoder.reserved !== this.partialCharge) this.chargePartial();
    const o = this.ctx.options;
    if ((o.maxByteRate > 0 || o.maxMessageRate > 0) && this.kind !== 'link') this.meter(chunk.length, this.framesIn - before);
  };

  /** [P-12.8] Moves this connection's share of the router's budget for incomplete frames to what its decoder holds now. */
  private chargePartial(): void {
    const held = this.decoder.reserved;
    if (!this.ctx.reservePartial(this, held - this.partialCharge, held)) {
      this.close(WireCode.OVERLOADED, 'no room for another incomplete frame');
      return;
    }
    this.partialCharge = held;
    if (held === 0) this.stallSince = -1;
  }

  /** [P-12.8] Closes the connection when its incomplete frame comes slower than minFrameRate; true when it did. */
  private frameTooSlow(now: number): boolean {
    const o = this.ctx.options;
    if (this.partialCharge === 0 || o.minFrameRate === 0) {
      this.stallSince = -1;
      return false;
    }
    // Time with reading paused by this router (backpressure, rate limit) is not the peer's fault.
    if (this.stallSince < 0 || this.blockedOn.size > 0 || this.ratePaused) {
      this.stallSince = now;
      this.stallMark = this.bytesIn;
      return false;
    }
    const span = now - this.stallSince;
    if (span < o.frameRateWindow) return false; // [P-8.2-3] a deadline is never early
    if ((this.bytesIn - this.stallMark) * 1000 < o.minFrameRate * span) {
      this.close(WireCode.FRAME_TOO_SLOW, `incomplete frame came at less than ${o.minFrameRate} bytes/s`);
      // Nothing it still sends is wanted; let the memory go now.
      this.stream.destroy();
      return true;
    }
    this.stallSince = now;
    this.stallMark = this.bytesIn;
    return false;
  }

  /**
   * [P-12.6] Per-connection rate limits as token buckets holding one second's worth. Over
   * the limit the router stops reading from this connection until the buckets refill: the
   * sender is slowed by TCP itself, nothing is dropped and nothing queues in the router.
   */
  private meter(bytes: number, msgs: number): void {
    const o = this.ctx.options;
    const now = this.ctx.clock.now();
    const b = (this.buckets ??= { bytes: new TokenBucket(1, o.maxByteRate, now), msgs: new TokenBucket(1, o.maxMessageRate, now) });
    const leftBytes = b.bytes.take(bytes, o.maxByteRate, now);
    const leftMsgs = b.msgs.take(msgs, o.maxMessageRate, now);
    const wait = Math.max(o.maxByteRate > 0 ? -leftBytes / o.maxByteRate : 0, o.maxMessageRate > 0 ? -leftMsgs / o.maxMessageRate : 0) * 1000;
    if (wait <= 0 || this.ratePaused) return;
    this.ctx.stats.rateLimited++;
    this.ratePaused = true;
    this.stream.pause();
    this.ctx.clock.setTimeout(
      this.guarded(() => {
        this.ratePaused = false;
        if (this.blockedOn.size === 0 && this.state === ConnState.OPEN) this.stream.resume();
      }),
      Math.ceil(wait),
    );
  }

  /**
   * The relay fast path: plain SENDs lying whole in the chunk go straight to route(),
   * without the decoder's per-frame dispatch. It stops at the first frame that is not one
   * (another type, flags, a size the decoder must judge, or the chunk's end) and returns
   * its offset: the decoder takes it from there, at a frame boundary. [P-3.3]
   * Invariant: it takes exactly the frames the decoder would accept, writes the bytes the
   * decoder path writes, and leaves every refusal to that path (spec/router/relay-model.test.ts).
   */
  private relayWhole(chunk: Buffer, from: number): number {
    const len = chunk.length;
    const max = this.decoder.maxFrame;
    const dv = this.view(chunk);
    const link = this.kind === 'link';
    let off = from;
    let n = 0;
    while (len - off >= RELAY_HEADER_SIZE) {
      const total = dv.getUint32(off) + 4;
      const type = chunk[off + 4];
      const flags = chunk[off + 5];
      if (total > len - off) break;
      if (link && type === FrameType.SOURCE && total === SOURCE_SIZE) {
        // On a link, SOURCE frames name the sender of the SENDs after them. [P-10.4]
        this.flushRun();
        this.control(chunk, off, off + total);
        off += total;
        n++;
        continue;
      }
      // SEALED alone needs nothing but routing (the router never looks inside). [P-11.2]
      if (total < RELAY_HEADER_SIZE || total > max || type !== FrameType.SEND || (flags !== 0 && flags !== Flag.SEALED)) break;
      const d = this.runDest;
      const at = off + RELAY_ID_OFFSET;
      // The next SEND of an open run: what route() does for it, inline.
      if (d !== null && this.runEnd === off && this.runBuf === chunk && d.state === ConnState.OPEN) {
        if (this.runById) {
          // A run to an agent reached by its own ID (an anonymous agent, reached through a
          // reply handle, has no ID to compare with: its words are zeros).
          const before = this.runCount;
          const o = this.extendAgentRun(chunk, dv, off, max, d);
          if (o !== off) {
            n += this.runCount - before;
            off = o;
            continue;
          }
        } else if (!link && d.kind === 'link' && dv.getUint32(at) === d.peerRouterId && total <= d.peerMaxFrame) {
          // A run over the link to the destination's own router: forwarded untouched. [P-10.4]
          this.runSeq = dv.getUint32(off + RELAY_SEQ_OFFSET);
          this.runEnd = off + total;
          this.runCount++;
          off += total;
          n++;
          continue;
        }
      }
      this.route(chunk, off, off + total, dv.getUint32(off + RELAY_SEQ_OFFSET), link ? this.source : this.id);
      off += total;
      n++;
    }
    this.framesIn += n;
    this.ctx.stats.framesIn += n;
    return off;
  }

  /**
   * A run of SENDs to one agent, in a loop of its own: every whole SEND from `from` on with
   * the run's destination ID is rewritten into its DELIVER in place [P-6.3] and added to
   * the run. The sender is this agent, or on a link the one its SOURCE named (whose flags
   * the DELIVER carries, and whose SENDs may be no larger than this router's maxFrame
   * [P-10.4]). Returns the offset of the first frame it did not take.
   */
  private extendAgentRun(chunk: Buffer, dv: DataView, from: number, max: number, d: RouterConnection): number {
    const len = chunk.length;
    const link = this.kind === 'link';
    const limit = link ? Math.min(max, this.ctx.options.maxFrame) : max;
    const orFlags = link ? this.sourceFlags : 0;
    const w0 = d.w0;
    const w1 = d.w1;
    const w2 = d.w2;
    const w3 = d.w3;
    const f0 = link ? this.srcW0 : this.w0;
    const f1 = link ? this.srcW1 : this.w1;
    const f2 = link ? this.srcW2 : this.w2;
    const f3 = link ? this.srcW3 : this.w3;
    let off = from;
    let seq = this.runSeq;
    let n = 0;
    while (len - off >= RELAY_HEADER_SIZE) {
      const total = dv.getUint32(off) + 4;
      const flags = chunk[off + 5];
      if (total < RELAY_HEADER_SIZE || total > limit || total > len - off || chunk[off + 4] !== FrameType.SEND || (flags !== 0 && flags !== Flag.SEALED)) break;
      const at = off + RELAY_ID_OFFSET;
      if (dv.getInt32(at, true) !== w0 || dv.getInt32(at + 4, true) !== w1 || dv.getInt32(at + 8, true) !== w2 || dv.getInt32(at + 12, true) !== w3) break;
      seq = dv.getUint32(off + RELAY_SEQ_OFFSET);
      chunk[off + 4] = FrameType.DELIVER;
      if (orFlags !== 0) chunk[off + 5] = flags | orFlags;
      dv.setInt32(at, f0, true);
      dv.setInt32(at + 4, f1, true);
      dv.setInt32(at + 8, f2, true);
      dv.setInt32(at + 12, f3, true);
      dv.setInt32(off + RELAY_SEQ_OFFSET, 0, true);
      off += total;
      n++;
    }
    this.runEnd = off;
    this.runCount += n;
    this.runSeq = seq;
    return off;
  }

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
    this.write(encodePreamble(Math.min(version, PROTOCOL_VERSION)));
    this.state = ConnState.HANDSHAKE;
  }

  /** The relay hot path; everything else goes to {@link control}. */
  frame(buf: Buffer, start: number, end: number): void {
    this.ctx.stats.framesIn++;
    this.framesIn++;
    if (buf[start + 4] !== FrameType.SEND || this.state !== ConnState.OPEN) {
      this.flushRun();
      this.control(buf, start, end);
      return;
    }
    const seq = u32be(buf, start + RELAY_SEQ_OFFSET);
    const flags = buf[start + 5]!;
    if (flags !== 0 || this.anonymous) {
      this.flaggedSend(buf, start, end, seq, flags);
      return;
    }
    this.route(buf, start, end, seq, this.kind === 'link' ? this.source : this.id);
  }

  /**
   * Routes one SEND: to a local agent as a DELIVER from `from` rewritten in place, or
   * untouched towards the link of the router that issued the destination ID. The payload
   * is never read. [P-6.6-1]
   */
  private route(buf: Buffer, start: number, end: number, seq: number, from: Buffer): void {
    let dest: RouterConnection | null;
    let entry: Registered<RouterConnection> | undefined;
    let byId = false;
    const dv = this.view(buf);
    const at = start + RELAY_ID_OFFSET;
    const cache = this.destCache;
    const slot = buf[at + 15]! & (DEST_CACHE_SLOTS - 1);
    const c = cache === null ? null : cache[slot]!;
    if (
      c !== null &&
      c.state === ConnState.OPEN &&
      dv.getInt32(at, true) === c.w0 &&
      dv.getInt32(at + 4, true) === c.w1 &&
      dv.getInt32(at + 8, true) === c.w2 &&
      dv.getInt32(at + 12, true) === c.w3
    ) {
      // An agent sent to lately (an open agent is always registered under its ID).
      dest = c;
      byId = true;
    } else if (dv.getUint32(at) === this.ctx.options.routerId) {
      entry = this.ctx.registry.lookup(buf, at);
      if (entry === undefined && this.ctx.inRestartWindow()) {
        // [P-12.4] a restarted router holds messages for IDs that may yet resume
        entry = this.ctx.placeholder(buf.subarray(at, at + ID_SIZE));
      }
      if (entry === undefined) {
        this.relayError(WireCode.UNKNOWN_DESTINATION, seq, buf, start);
        return;
      }
      // null: a parked ID, which holds the message.
      dest = entry.conn;
      byId = entry === dest;
      // Cache agents only: a reply handle can be retired while its connection stays open.
      if (byId && dest!.state === ConnState.OPEN) (this.destCache ??= new Array<RouterConnection | null>(DEST_CACHE_SLOTS).fill(null))[slot] = dest;
    } else {
      // [P-10.4] another router's agent: forward the SEND untouched over the link to it;
      // a SOURCE frame written ahead of the run names the sender.
      const code = this.forwardCheck(buf, start, end);
      if (code !== 0) {
        this.relayError(code, seq, buf, start);
        return;
      }
      dest = this.ctx.mesh.linkFor(u32be(buf, start + RELAY_ID_OFFSET))!;
    }
    if (dest === null || dest.kind !== 'link') {
      if (this.kind === 'link') {
        if (end - start > this.ctx.options.maxFrame) {
          this.relayError(WireCode.MESSAGE_TOO_LARGE, seq, buf, start); // [P-10.4]
          return;
        }
        buf[start + 5] |= this.sourceFlags;
      }
      // [P-6.3] SEND -> DELIVER in place: type, sender ID, seq zeroed; payload untouched.
      buf[start + 4] = FrameType.DELIVER;
      if (from === this.id) {
        dv.setInt32(at, this.w0, true);
        dv.setInt32(at + 4, this.w1, true);
        dv.setInt32(at + 8, this.w2, true);
        dv.setInt32(at + 12, this.w3, true);
      } else {
        dv.setInt32(at, i32le(from, 0), true);
        dv.setInt32(at + 4, i32le(from, 4), true);
        dv.setInt32(at + 8, i32le(from, 8), true);
        dv.setInt32(at + 12, i32le(from, 12), true);
      }
      dv.setInt32(start + RELAY_SEQ_OFFSET, 0, true);
      if (dest === null || dest.state !== ConnState.OPEN) {
        this.hold(entry, buf, start, end, seq, from);
        return;
      }
    }
    if (dest === this.runDest && buf === this.runBuf && start === this.runEnd) {
      this.runEnd = end;
      this.runCount++;
      this.runSeq = seq;
      return;
    }
    this.flushRun();
    this.runDest = dest;
    this.runById = byId;
    this.runBuf = buf;
    this.runStart = start;
    this.runEnd = end;
    this.runCount = 1;
    this.runSeq = seq;
    this.runFirst = seq;
  }

  /**
   * A SEND, already rewritten into its DELIVER, for an agent whose connection was lost but
   * may resume: keep a copy, bounded. [P-12.4]
   */
  private hold(entry: Registered<RouterConnection> | undefined, buf: Buffer, start: number, end: number, seq: number, from: Buffer): void {
    this.flushRun();
    if (!(entry instanceof Parked)) {
      // Not parked yet not open (never expected: a closed connection leaves the registry).
      this.refuse(WireCode.UNKNOWN_DESTINATION, seq, entry?.conn?.id ?? NO_ID, null);
      return;
    }
    const code = entry.hold(buf, start, end, seq, from);
    if (code !== 0) this.refuse(code, seq, entry.id, null);
  }

  /** SENDs with flags, or from an anonymous connection. [P-6.4] [P-11.2] */
  private flaggedSend(buf: Buffer, start: number, end: number, seq: number, flags: number): void {
    const allowed = this.kind === 'link' ? Flag.SEALED : SEND_FLAGS;
    if ((flags & ~allowed) !== 0) {
      // [P-6.4] flags this router does not implement are refused, never ignored
      this.relayError(WireCode.UNSUPPORTED_FLAGS, seq, buf, start);
      return;
    }
    if (!this.anonymous && (flags & Flag.ANONYMOUS) === 0) {
      buf[start + 5] = flags & Flag.SEALED;
      this.route(buf, start, end, seq, this.kind === 'link' ? this.source : this.id);
      return;
    }
    // Anonymous: the receiver sees a reply handle, never this connection's ID. [P-11.2]
    const handle = (flags & Flag.STICKY) !== 0 ? this.handles().stickyId() : this.handles().next();
    const outFlags = Flag.ANONYMOUS | (flags & Flag.SEALED);
    if (buf.readUInt32BE(start + RELAY_ID_OFFSET) === this.ctx.options.routerId) {
      buf[start + 5] = outFlags;
      this.route(buf, start, end, seq, handle);
      return;
    }
    const code = this.forwardCheck(buf, start, end);
    if (code !== 0) {
      this.relayError(code, seq, buf, start);
      return;
    }
    // Across the mesh the handle travels as an anonymous SOURCE ahead of this one SEND.
    const link = this.ctx.mesh.linkFor(buf.readUInt32BE(start + RELAY_ID_OFFSET))!;
    this.flushRun();
    buf[start + 5] = flags & Flag.SEALED;
    const out = Buffer.allocUnsafe(SOURCE_SIZE + end - start);
    writeSource(out, 0, handle, 1, Flag.ANONYMOUS);
    buf.copy(out, SOURCE_SIZE, start, end);
    // Queued, not written: this runs inside another connection's read. [P-6.5]
    link.out.enqueue(out, 0, out.length, this, seq, seq);
    link.srcOwner = null; // the peer now holds the handle as its SOURCE
    this.ctx.stats.relayed++;
    this.usedLink(link);
  }

  /** Reply handles for this connection (made at the first anonymous SEND or LOOKUP). [P-11.3] */
  private handles(): ReplyHandles<RouterConnection> {
    return (this.replyHandles ??= new ReplyHandles(this.ctx, this));
  }

  /** 0 when a SEND for another router may be forwarded, else the wire code refusing it. */
  private forwardCheck(buf: Buffer, start: number, end: number): number {
    const link = this.ctx.mesh.linkFor(u32be(buf, start + RELAY_ID_OFFSET));
    if (link === undefined) return WireCode.UNREACHABLE_ROUTER;
    if (this.kind === 'link' && this.sourceHops >= this.ctx.options.meshHopLimit) return WireCode.HOP_LIMIT; // [P-10.4]
    if (end - start > link.peerMaxFrame) return WireCode.MESSAGE_TOO_LARGE;
    return 0;
  }

  /** Ends the open run: hands it to its destination's outbox. */
  private flushRun(): void {
    const dest = this.runDest;
    if (dest === null) return;
    this.runDest = null;
    this.ctx.stats.relayed += this.runCount;
    if (dest.kind === 'link') {
      if (this.kind === 'agent') (this.linksUsed ??= new Set()).add(dest);
      // [P-10.4] SENDs on a link belong to the last SOURCE: name this sender if it is not that.
      if (dest.srcOwner !== this || dest.srcVersion !== this.sourceVersion) {
        const p = dest.out.room(SOURCE_SIZE);
        this.writeSourceFor(dest.out.slab!, p);
        dest.out.take(p, SOURCE_SIZE, this, -1, -1);
        dest.srcOwner = this;
        dest.srcVersion = this.sourceVersion;
      }
    }
    if (this.runEnd - this.runStart >= SMALL_RUN) dest.out.enqueue(this.runBuf, this.runStart, this.runEnd, this, this.runSeq, this.runFirst);
    else dest.out.copyIn(this.runBuf, this.view(this.runBuf), this.runStart, this.runEnd, this, this.runSeq, this.runFirst);
    this.runBuf = EMPTY;
  }

  /** The DataView of `buf`, made once per buffer relayed from. */
  private view(buf: Buffer): DataView {
    if (buf !== this.viewBuf) {
      this.viewBuf = buf;
      this.viewOf = new DataView(buf.buffer, buf.byteOffset, buf.length);
    }
    return this.viewOf;
  }

  /** Forgets the view at the end of a read, so it keeps no chunk alive. */
  private dropView(): void {
    this.viewBuf = EMPTY;
    this.viewOf = EMPTY_VIEW;
  }

  private relayError(code: number, seq: number, buf: Buffer, start: number): void {
    this.flushRun();
    this.refuse(code, seq, buf.subarray(start + RELAY_ID_OFFSET, start + RELAY_ID_OFFSET + ID_SIZE), null);
  }

  /**
   * Tells the sender of a SEND that it was not delivered: an ERROR to an agent, or a
   * ROUTE_ERROR back over a link to the router of the sender named by `src` (default: the
   * current SOURCE). [P-7.1] [P-10.5]
   */
  refuse(code: number, seq: number, dest: Uint8Array, src: Buffer | null): void {
    if (this.kind === 'link') {
      countCode(this.ctx.stats.errors, code);
      this.reply(encodeRouteError(code, seq, dest, src ?? this.source));
    } else {
      this.sendError(code, seq, dest);
    }
  }

  private control(buf: Buffer, start: number, end: number): void {
    const type = buf[start + 4];
    switch (type) {
      case FrameType.PING:
        if (this.linksUsed !== null && this.linksUsed.size > 0) this.barrier(buf.subarray(start + 6, end));
        else if (this.pongs !== null && this.pongs.waiting) this.pongs.add(Buffer.from(buf.subarray(start + 6, end)), 0);
        else this.reply(encodePong(buf.subarray(start + 6, end))); // [P-8.1]
        return;
      case FrameType.PONG:
        if (this.tokens !== null && end - start === 10) this.tokens.answered(buf.readUInt32BE(start + 6));
        return;
      case FrameType.LOOKUP:
        if (this.state !== ConnState.OPEN) break;
        this.onLookup(buf, start, end);
        return;
      case FrameType.LOOKUP_RESULT:
        if (this.kind !== 'link') break;
        this.onLinkLookupResult(buf, start, end);
        return;
      case FrameType.SOURCE:
        if (this.kind !== 'link') break;
        // Runs gathered so far were rewritten (or given their SOURCE) already.
        this.sourceVersion++;
        buf.copy(this.source, 0, start + 6, start + 6 + ID_SIZE);
        this.srcW0 = this.source.readInt32LE(0);
        this.srcW1 = this.source.readInt32LE(4);
        this.srcW2 = this.source.readInt32LE(8);
        this.srcW3 = this.source.readInt32LE(12);
        this.sourceHops = buf[start + 6 + ID_SIZE]!;
        this.sourceFlags = buf[start + 5]! & Flag.ANONYMOUS;
        return;
      case FrameType.ROUTE_ERROR:
        if (this.kind !== 'link') break;
        this.ctx.mesh.routeError(readRouteError(buf, start, end), buf.subarray(start, end));
        return;
      case FrameType.LINK_HELLO:
        if (this.kind !== '' || this.dialled || this.hs !== null || this.state !== ConnState.HANDSHAKE) break;
        this.hs = LinkHandshake.accept(this.ctx, this, buf, start, end);
        return;
      case FrameType.LINK_CHALLENGE:
        if (!this.dialled || this.kind !== '' || this.hs === null || this.hs.peer !== null) break;
        this.hs.challenge(buf, start, end);
        return;
      case FrameType.LINK_AUTH:
        if (this.dialled || this.kind !== '' || this.hs === null || this.hs.peer === null) break;
        if (this.hs.auth(buf, start, end)) this.linkUp();
        return;
      case FrameType.LINK_READY:
        if (!this.dialled || this.kind !== '' || this.hs === null || this.hs.peer === null) break;
        if (this.hs.ready()) this.linkUp();
        return;
      case FrameType.CLOSE:
        this.onPeerClose(buf, start, end);
        return;
      case FrameType.REGISTER:
        if (this.kind === 'link' || this.hs !== null) break;
        this.register(buf, start, end);
        return;
      case FrameType.SEND:
        if (this.kind === 'link' || this.hs !== null) break;
        // Only reached before registration. [P-4.3]
        this.sendError(WireCode.NOT_REGISTERED, buf.readUInt32BE(start + RELAY_SEQ_OFFSET), buf.subarray(start + RELAY_ID_OFFSET, start + RELAY_ID_OFFSET + 16));
        return;
    }
    // REGISTERED, DELIVER, ERROR are router-to-agent only; link frames belong on links. [P-3.4] [P-10.1]
    this.close(WireCode.MALFORMED, `frame type 0x${type!.toString(16).padStart(2, '0')} is not allowed here`);
  }

  // ---- key directory [P-11.4] -----------------------------------------------------------

  private onLookup(buf: Buffer, start: number, end: number): void {
    let q: LookupBody;
    try {
      q = this.ctx.codec.decodeLookup(buf, start, end);
    } catch (err) {
      this.fail(err);
      return;
    }
    answerLookup(this.ctx, this, q);
  }

  private onLinkLookupResult(buf: Buffer, start: number, end: number): void {
    let r: LookupResultBody;
    try {
      r = this.ctx.codec.decodeLookupResult(buf, start, end);
    } catch (err) {
      this.fail(err);
      return;
    }
    passLookupResult(this.ctx, r);
  }

  /** A fresh reply handle routed to this connection. [P-11.3] */
  replyHandle(): Buffer {
    return this.handles().next();
  }

  /** Notes that this agent's requests went over `link`: its next PING waits for that link. [P-10.6-1] */
  usedLink(link: RouterConnection): void {
    (this.linksUsed ??= new Set()).add(link);
  }

  // ---- router links --------------------------------------------------------------------

  private linkUp(): void {
    const peer = this.hs!.peer!;
    this.hs = null;
    this.kind = 'link';
    this.out.mergeSenders = false;
    this.peerRouterId = peer.router;
    this.peerInstance = peer.instance ?? null;
    this.peerMaxFrame = peer.maxFrame;
    this.state = ConnState.OPEN;
    // A peer forwards SENDs up to its own maxFrame; refuse to deliver more than ours later.
    this.decoder.maxFrame = Math.min(MAX_MAX_FRAME, Math.max(peer.maxFrame, this.ctx.options.maxFrame));
    this.tokens = new BarrierTokens();
    this.ctx.mesh.onLinkUp(this);
  }

  // ---- flush barriers across links [P-10.6-1] -------------------------------------------

  /** A PING from an agent whose SENDs went over links: PONG only after each link answers. */
  private barrier(payload: Buffer): void {
    const links = this.linksUsed!;
    this.linksUsed = null;
    const pongs = (this.pongs ??= new PongQueue((p) => this.reply(encodePong(p))));
    const b = pongs.add(Buffer.from(payload), links.size);
    for (const l of links) l.sendBarrier(b);
  }

  /** On a link: a PING whose PONG means every earlier frame on this link was handled. */
  private sendBarrier(b: Barrier): void {
    if (this.state !== ConnState.OPEN || this.tokens === null) {
      barrierDone(b);
      return;
    }
    this.reply(encodePing(this.tokens.issue(b)));
  }

  private register(buf: Buffer, start: number, end: number): void {
    if (this.state === ConnState.OPEN) {
      this.sendError(WireCode.ALREADY_REGISTERED, 0, null); // [P-4.4]
      return;
    }
    let body: RegisterRequest;
    try {
      body = this.ctx.codec.decodeRegister(buf, start, end); // [P-4.1] [P-11.1] typed and checked
    } catch (err) {
      this.fail(err);
      return;
    }
    // [P-12.7] admission, then the per-address registration rate
    if (!this.ctx.admits(body.token)) {
      this.ctx.stats.admissionDenied++;
      this.close(WireCode.ADMISSION_DENIED, 'registration needs a valid admission token');
      return;
    }
    if (!this.ctx.registrationAllowed(this.address)) {
      this.sendError(WireCode.RATE_LIMITED, 0, null, 'too many registrations from this address; retry later');
      return;
    }
    const { anonymous, key } = body;
    const o = this.ctx.options;
    // [P-15.2] a stable ID: CHALLENGE first, then the proof; the ID is then taken over like a resume
    let stableId: Buffer | undefined;
    if (body.stable && !anonymous) {
      const r = (this.stable ??= new StableChallenge()).step(body, o.routerId);
      if ('frame' in r) return void this.writeChunks(r.frame);
      if ('fail' in r) return void this.close(WireCode.ADMISSION_DENIED, r.fail);
      stableId = r.id;
      if (o.resumeGrace > 0) Object.assign(body, { id: stableId, resume: this.ctx.resumeToken(stableId) });
      else if (this.ctx.registry.lookup(stableId, 0) !== undefined) return void this.sendError(WireCode.ALREADY_REGISTERED, 0, null, 'the stable ID is in use');
    }
    this.kind = 'agent';
    this.state = ConnState.OPEN;
    this.decoder.maxFrame = o.maxFrame;
    this.ctx.stats.registrations++;
    if (anonymous) {
      // [P-11.1] no ID, nothing in the registry; never log where it comes from.
      this.anonymous = true;
      this.remote = undefined;
    }
    let held: Held[] = [];
    let resumed = false;
    if (!anonymous) {
      const r = this.tryResume(body);
      if (r !== null) {
        this.id = r.id;
        held = r.held;
        resumed = true;
      } else {
        this.id = stableId ?? this.ctx.registry.newId(o.routerId);
      }
      this.idText = formatId(this.id);
      this.w0 = this.id.readInt32LE(0);
      this.w1 = this.id.readInt32LE(4);
      this.w2 = this.id.readInt32LE(8);
      this.w3 = this.id.readInt32LE(12);
      this.ctx.registry.add(this);
      if (key !== undefined) this.publicKey = key;
    }
    const ka = o.keepaliveInterval;
    const resume = !anonymous && o.resumeGrace > 0 ? { resume: this.ctx.resumeToken(this.id), resumeGrace: o.resumeGrace } : {};
    // [P-4.2]
    this.writeChunks(
      this.ctx.codec.encodeRegistered({ id: this.id, router: o.routerId, maxFrame: o.maxFrame, keepalive: ka, timeout: Math.floor(ka * 1.5), anonymous, ...resume, resumed, alternates: o.alternates }),
    );
    // [P-12.4] held messages first, in the order they came
    for (const h of held) this.write(h.frame);
    if (resumed) this.ctx.stats.resumes++;
    this.ctx.log.info(anonymous ? 'anonymous agent connected' : resumed ? 'agent resumed' : 'agent registered', {
      agent: this.idText || undefined,
      remote: this.remote,
      held: resumed ? held.length : undefined,
    });
    this.ctx.onRegistered(this);
  }

  /**
   * REGISTER with `resume` and `id`: takes the ID back when the token is the router's for
   * that ID and the ID is parked, held by a stale connection, or unknown while a restarted
   * router is within its restart window. Anything else registers afresh. [P-12.3]
   */
  private tryResume(body: RegisterRequest): { id: Buffer; held: Held[] } | null {
    const { resume: token, id } = body;
    if (this.ctx.options.resumeGrace === 0 || token === undefined || id === undefined) return null;
    if (routerIdOf(id) !== this.ctx.options.routerId) return null;
    const want = this.ctx.resumeToken(id);
    if (token.length !== want.length || !timingSafeEqual(token, want)) {
      this.ctx.log.info('resume refused', { reason: 'bad token' });
      return null;
    }
    const entry = this.ctx.registry.lookup(id, 0);
    if (entry === undefined) return this.ctx.inRestartWindow() ? { id: Buffer.from(id), held: [] } : null;
    if (entry instanceof Parked) return { id: entry.id, held: entry.resume() };
    const old = entry.conn;
    if (old === null || old === this || !old.id.equals(Buffer.from(id))) return null; // a reply handle, not an agent
    // A stale connection (a NAT rebinding, a path that died silently): this one replaces it.
    old.close(WireCode.GOING_AWAY, 'replaced by a resumed connection');
    return { id: old.id, held: [] };
  }

  private onPeerClose(buf: Buffer, start: number, end: number): void {
    const code = buf.readUInt16BE(start + 6);
    const reason = buf.toString('utf8', start + 8, Math.min(end, start + 8 + 256));
    this.closeCode = code;
    if (this.isLink()) {
      // A refused link is a configuration error an operator must see. [P-10.3]
      const refused = code === WireCode.DUPLICATE_ROUTER_ID || code === WireCode.LINK_AUTH_FAILED;
      this.ctx.log[refused ? 'error' : 'info']('link closed by peer', { ...this.logId(), code: WIRE_CODE_NAMES[code] ?? code, reason: reason || undefined });
    } else {
      this.ctx.log.info('agent closed', { agent: this.idText || undefined, code: WIRE_CODE_NAMES[code] ?? code, reason: reason || undefined });
    }
    // [P-9.2] a peer that receives CLOSE sends nothing more and ends. A normal close
    // means the agent is done; any other code (it judged the path dead) may come back.
    // What was already gathered for it still goes out: a lingering agent reads it. [P-12.2-1]
    this.writePending();
    this.shutdown(code !== WireCode.NORMAL);
    this.stream.end();
  }

  /** The TCP connection ended without a CLOSE. */
  private logLost(): void {
    // Close codes in logs are wire-code names; this one has none on the wire (§7.3).
    this.ctx.log.info(this.isLink() ? 'link lost' : 'agent disconnected', { ...this.logId(), code: LOST });
  }

  /** A router link, up or in its handshake. */
  private isLink(): boolean {
    return this.kind === 'link' || this.dialled || this.hs !== null;
  }

  /** Who this connection is, for logs: an agent by its ID, a link by its peer's router ID in hex. */
  private logId(): Record<string, string | undefined> {
    if (!this.isLink()) return { agent: this.idText || undefined };
    const router = this.kind === 'link' ? this.peerRouterId : (this.hs?.peer?.router ?? 0);
    return { router: router !== 0 ? routerHex(router) : undefined, remote: this.remote };
  }

  /**
   * An exception while handling this connection ends this connection, never the process:
   * when even closing it properly throws, or it was closing already, the stream is
   * destroyed. Every entry point (a read, a stream event, a timer, the router's flush and
   * sweep) lands here on an exception.
   */
  failSafely(err: unknown): void {
    try {
      this.flushRun();
      if (this.state >= ConnState.CLOSING) throw err;
      this.fail(err);
    } catch (again) {
      this.ctx.log.error('internal error while closing', { ...this.logId(), error: String(again) });
      this.runDest = null;
      this.out.clear();
      try {
        this.dropUnsent();
      } catch {
        this.unsentMsgs = null;
      }
      this.stream.destroy();
    }
  }

  private fail(err: unknown): void {
    if (err instanceof PosternError && err.wireCode !== undefined && err.wireCode !== 0) {
      if (err.code === ErrorCode.BAD_MAGIC) {
        this.rejectStranger();
        return;
      }
      this.ctx.log.warn('protocol violation', { ...this.logId(), remote: this.remote, code: WIRE_CODE_NAMES[err.wireCode] ?? err.wireCode });
      this.close(err.wireCode, err.message);
      return;
    }
    this.ctx.log.error('internal error', { ...this.logId(), error: String(err) });
    this.close(WireCode.INTERNAL, 'internal error');
  }

  /** [P-2.2] Not a postern peer: say so in a way the other side can read, then close. */
  private rejectStranger(): void {
    countCode(this.ctx.stats.closes, WireCode.BAD_MAGIC);
    this.ctx.log.warn('not a postern client', { remote: this.remote, code: WIRE_CODE_NAMES[WireCode.BAD_MAGIC] });
    if (this.firstByte >= 0x41 && this.firstByte <= 0x5a) {
      this.write(HTTP_REFUSAL);
    } else if (!this.preambleSent) {
      this.preambleSent = true;
      this.write(STRANGER_CLOSE);
    } else {
      this.writeCloseFrame(WireCode.BAD_MAGIC, 'not a postern peer');
    }
    this.shutdown();
    this.stream.end();
    this.armCloseTimer();
  }

  private readonly onEnd = (): void => {
    try {
      // The peer stopped writing without CLOSE: nothing more will come, so finish too.
      if (this.state < ConnState.CLOSING) {
        this.logLost();
        this.shutdown(true);
      }
      // Not again when we ended first: Node builds an error (stack and all) for each extra end().
      if (!this.stream.writableEnded) this.stream.end();
    } catch (err) {
      this.failSafely(err);
    }
  };

  private readonly onError = (err: Error): void => {
    this.ctx.log.debug('stream error', { ...this.logId(), error: (err as NodeJS.ErrnoException).code ?? err.message });
    try {
      this.destroyNow();
    } catch (again) {
      this.failSafely(again);
    }
  };

  private readonly onStreamClose = (): void => {
    try {
      if (this.state < ConnState.CLOSING) {
        this.logLost();
      }
      this.shutdown(true);
      // What the stream still held when it ended is lost: tell the senders. [P-9.4]
      this.writePending();
      this.dropUnsent();
      this.releaseWaiters();
    } catch (err) {
      this.ctx.log.error('internal error while closing', { ...this.logId(), error: String(err) });
    }
    this.state = ConnState.CLOSED;
    this.closeTimer?.cancel();
    this.closeTimer = null;
    // The router forgets it whatever happened above, so nothing leaks.
    this.ctx.onClosed(this);
  };

  /** Runs a timer's work for this connection: an exception ends this connection only. */
  private guarded(fn: () => void): () => void {
    return () => {
      try {
        fn();
      } catch (err) {
        this.failSafely(err);
      }
    };
  }

  // ---- output --------------------------------------------------------------------------

  /** Bytes queued for this connection: gathered for this turn's flush, and held by its stream. */
  get queuedBytes(): number {
    return this.out.bytes + this.stream.writableLength;
  }

  /** Writes one buffer to this connection (the only writer besides {@link writePending}). */
  write(buf: Buffer): void {
    if (this.state === ConnState.CLOSED || this.stream.writableEnded) return;
    // Runs gathered for this connection go first, so answers keep wire order. [P-6.5]
    if (this.out.bufs.length > 0) this.writePending();
    this.ctx.stats.bytesOut += buf.length;
    this.bytesOut += buf.length;
    this.sent += buf.length;
    this.stream.write(buf);
  }

  /** Writes a frame given as chunks, together. */
  writeChunks(chunks: Buffer[]): void {
    if (chunks.length === 1) return this.write(chunks[0]!);
    this.stream.cork();
    for (const c of chunks) this.write(c);
    this.stream.uncork();
  }

  /**
   * Queues a reply (PONG, ERROR, ROUTE_ERROR, LOOKUP_RESULT, a barrier PING) behind what is
   * gathered for this connection, and returns. It never writes: telling a peer that
   * something failed happens inside other connections' reads and writes, and must not
   * call back into a writer (a refusal that wrote would flush a queue whose refusals write
   * again). The router's flush after this turn's reads writes it, in order. Nothing is
   * sent once CLOSE was sent or received. [P-9.2]
   */
  reply(buf: Buffer): void {
    if (this.state >= ConnState.CLOSING || this.stream.writableEnded) return;
    const n = buf.length;
    if (n > SMALL_RUN) {
      this.out.enqueue(buf, 0, n, this, -1, -1);
      return;
    }
    // Small replies go into the slab, so a flood of them is one buffer, not one entry each.
    this.out.copyAll(buf, this);
  }

  /** {@link reply} for a frame given as chunks. */
  replyChunks(chunks: Buffer[]): void {
    for (const c of chunks) this.reply(c);
  }

  /** Sends an ERROR frame. [P-7.1] */
  sendError(code: number, seq: number, id: Uint8Array | null, text = ''): void {
    countCode(this.ctx.stats.errors, code);
    this.reply(encodeError(code, seq, id, text));
  }

  /**
   * Writes everything gathered for this connection in one write: one slice as it is, else
   * the large runs (slices of the chunks read) and the slab ranges (short runs, copied when
   * they were routed) corked into one writev. Pauses the senders when this queue is over
   * the limit. [P-9.3]
   */
  writePending(): void {
    const out = this.out;
    const n = out.bufs.length;
    if (n === 0) return;
    const bytes = out.bytes;
    if (this.state >= ConnState.CLOSING) {
      // Take the entries out before telling their senders, so nothing can reach them again.
      const bufs = out.bufs.splice(0);
      const starts = out.starts.splice(0);
      const ends = out.ends.splice(0);
      const froms = out.froms.splice(0);
      const seqs = out.seqs.splice(0);
      const firsts = out.firsts.splice(0);
      out.clear();
      out.dropSlab();
      for (let i = 0; i < n; i++) {
        if (seqs[i]! < 0) continue; // a reply or a SOURCE frame: nobody to tell
        this.tellDropped({ buf: bufs[i]!, start: starts[i]!, end: ends[i]!, from: froms[i]!, first: firsts[i]!, last: seqs[i]!, pos: 0 }, -1);
      }
      return;
    }
    this.ctx.stats.bytesOut += bytes;
    this.ctx.stats.relayedBytes += bytes;
    this.bytesOut += bytes;
    const base = this.sent;
    this.sent += bytes;
    const m = out.ranges();
    if (m === 1) {
      this.stream.write(out.range(0));
    } else {
      // Short runs are in slabs already; what is left is large runs and slab ranges: one writev.
      this.stream.cork();
      for (let i = 0; i < m; i++) this.stream.write(out.range(i));
      this.stream.uncork();
    }
    out.forgetRanges(m);
    const queued = this.stream.writableLength;
    if (queued === 0) {
      // The OS has every byte: nothing written can be lost by this router any more.
      if (this.unsentMsgs !== null) {
        this.unsentMsgs = null;
        this.unsentCheck = UNSENT_CHECK;
      }
    } else {
      this.keepUnsent(base, n);
    }
    if (queued > this.ctx.options.maxOutbound) {
      this.overLimit();
      for (let i = 0; i < n; i++) if (out.seqs[i]! >= 0) this.congested(out.froms[i]!);
    }
    out.clear();
    out.endTurn(queued);
  }

  /**
   * The stream did not hand all it was given to the OS: remember the messages just
   * written (their bytes stay put: the stream holds them, and a slab is written over only
   * once the stream is empty), and forget those the OS has taken since. [P-9.4]
   */
  private keepUnsent(base: number, n: number): void {
    const list = (this.unsentMsgs ??= []);
    const out = this.out;
    let pos = base;
    for (let i = 0; i < n; i++) {
      const start = out.starts[i]!;
      const end = out.ends[i]!;
      const seq = out.seqs[i]!;
      if (seq >= 0) list.push({ buf: out.bufs[i]!, start, end, from: out.froms[i]!, first: out.firsts[i]!, last: seq, pos });
      pos += end - start;
    }
    // Forgetting what the OS took costs a look at the stream's internals: do it once the
    // list has doubled, so a reader that keeps up under load pays it rarely.
    if (list.length < this.unsentCheck) return;
    const taken = this.sent - this.unsentBytes();
    let k = 0;
    while (k < list.length && list[k]!.pos + (list[k]!.end - list[k]!.start) <= taken) k++;
    if (k > 0) list.splice(0, k);
    this.unsentCheck = Math.max(UNSENT_CHECK, list.length * 2);
  }

  /**
   * Bytes written to the stream that the OS has not taken: the stream's queue, less the
   * part of the write in flight that libuv already wrote. Node exposes that part only
   * through internals; without them the whole queue counts (a sender may then hear of a
   * message that did arrive, never the reverse).
   */
  private unsentBytes(): number {
    const s = this.stream as unknown as StreamInternals;
    const queued = this.stream.writableLength;
    const inFlight = s._writableState?.writelen;
    const libuv = s._handle?.writeQueueSize;
    if (typeof inFlight === 'number' && typeof libuv === 'number' && inFlight <= queued && libuv <= inFlight) return queued - inFlight + libuv;
    return queued;
  }

  /**
   * The connection ends now: every message written to it that the OS has not taken is
   * lost, and its sender is told (ERROR with the seq, or ROUTE_ERROR across a link). [P-9.4]
   */
  private dropUnsent(): void {
    const list = this.unsentMsgs;
    if (list === null) return;
    this.unsentMsgs = null;
    const taken = this.sent - this.unsentBytes();
    for (const u of list) this.tellDropped(u, taken);
  }

  /** Destroys the stream, first telling the senders of what it drops. */
  private destroyNow(): void {
    try {
      this.dropUnsent();
      this.releaseWaiters();
    } finally {
      this.stream.destroy();
    }
  }

  /**
   * Tells the sender of each message of `u` that ends past stream position `taken` that it
   * was dropped. On an agent the messages are DELIVERs from one sender whose seq the
   * rewrite zeroed: the k-th has seq first + k when the sender numbers its SENDs one by
   * one (§6.2); otherwise the first and last keep theirs and those between get 0. On a link
   * they are SENDs (seq intact) after the SOURCE naming their sender.
   */
  private tellDropped(u: Unsent, taken: number): void {
    const { buf, start, end } = u;
    const code = this.dropCode !== 0 ? this.dropCode : this.kind === 'link' ? WireCode.UNREACHABLE_ROUTER : WireCode.NOT_DELIVERED;
    const link = this.kind === 'link';
    let total = 0;
    if (!link) for (let o = start; o + RELAY_HEADER_SIZE <= end; o += u32be(buf, o) + 4) total++;
    const oneByOne = ((u.last - u.first) >>> 0) === total - 1;
    let sender: Buffer = u.from.kind === 'link' ? Buffer.from(u.from.source) : u.from.id;
    let k = 0;
    for (let o = start; o + RELAY_HEADER_SIZE <= end; ) {
      const len = u32be(buf, o) + 4;
      const type = buf[o + 4];
      const at = o + RELAY_ID_OFFSET;
      const id = Buffer.from(buf.subarray(at, at + ID_SIZE));
      const lost = u.pos + (o + len - start) > taken;
      if (type === FrameType.SOURCE) {
        sender = id;
      } else if (type === FrameType.SEND && lost) {
        this.ctx.stats.dropped.connectionEnded++;
        this.ctx.refuseTo(sender, code, u32be(buf, o + RELAY_SEQ_OFFSET), id);
      } else if (type === FrameType.DELIVER) {
        if (lost) {
          const seq = oneByOne ? (u.first + k) >>> 0 : k === 0 ? u.first : k === total - 1 ? u.last : 0;
          this.ctx.stats.dropped.connectionEnded++;
          this.ctx.refuseTo(id, code, seq, this.id);
        }
        k++;
      }
      o += len;
    }
  }

  /** The SOURCE frame naming this connection's sender, for SENDs forwarded onward. */
  private writeSourceFor(out: Buffer, offset: number): void {
    if (this.kind === 'link') writeSource(out, offset, this.source, this.sourceHops + 1, this.sourceFlags);
    else writeSource(out, offset, this.id, 1);
  }

  /**
   * This connection's queue is over maxOutbound, whatever filled it: DELIVERs or the
   * router's own replies (PONG, ERROR, LOOKUP_RESULT, ...), which count the same. Unless it
   * drains within slowConsumerTimeout it is closed as a slow consumer; meanwhile an agent's
   * input is not read, so a peer that never reads its replies cannot make more of them. A
   * link keeps being read: two routers pausing each other's links would deadlock. [P-9.3]
   */
  private overLimit(): void {
    if (this.slowTimer === null) {
      this.slowTimer = this.ctx.clock.setTimeout(this.guarded(this.onSlowConsumer), this.ctx.options.slowConsumerTimeout);
    }
    if (this.kind !== 'link' && !this.blockedOn.has(this)) this.blockOn(this);
  }

  private congested(from: RouterConnection): void {
    if (from === this) return;
    this.waiters.add(from);
    from.blockOn(this);
  }

  private blockOn(dest: RouterConnection): void {
    if (this.blockedOn.size === 0) this.stream.pause();
    this.blockedOn.add(dest);
  }

  private unblock(dest: RouterConnection): void {
    if (!this.blockedOn.delete(dest)) return;
    if (this.blockedOn.size === 0 && !this.ratePaused && this.state === ConnState.OPEN) this.stream.resume();
  }

  private readonly onDrain = (): void => {
    try {
      if (this.slowTimer !== null) {
        this.slowTimer.cancel();
        this.slowTimer = null;
      }
      this.unblock(this);
      this.releaseWaiters();
    } catch (err) {
      this.failSafely(err);
    }
  };

  private releaseWaiters(): void {
    if (this.waiters.size === 0) return;
    const waiters = [...this.waiters];
    this.waiters.clear();
    // Senders held back are let go. What they queued here and is lost with this
    // connection is reported message by message when it is dropped (tellDropped). [P-9.3]
    for (const w of waiters) w.unblock(this);
  }

  private readonly onSlowConsumer = (): void => {
    // Still armed means no 'drain' since the queue went over the limit.
    this.slowTimer = null;
    this.ctx.stats.slowConsumers++;
    // [P-9.3] [P-9.4] every message dropped with its queue is reported as DESTINATION_SLOW
    this.dropCode = WireCode.DESTINATION_SLOW;
    const o = this.ctx.options;
    this.close(WireCode.SLOW_CONSUMER, `queue went over ${o.maxOutbound} bytes and did not drain for ${o.slowConsumerTimeout} ms`);
    // The CLOSE is queued behind what it did not read: it arrives if the peer reads within
    // a short while (a tenth of slowConsumerTimeout, at most closeTimeout); then the rest is
    // dropped, its senders told, and its memory freed.
    if (this.unsentBytes() === 0) return;
    this.closeTimer?.cancel();
    this.closeTimer = this.ctx.clock.setTimeout(this.guarded(() => this.destroyNow()), Math.min(o.closeTimeout, Math.ceil(o.slowConsumerTimeout / 10)));
  };

  // ---- lifecycle -----------------------------------------------------------------------

  /**
   * Keepalive and handshake deadlines, called by the router's sweep. A deadline is never
   * acted on early; the sweep makes it up to one sweep period late, which §8.2 allows. [P-8.2]
   */
  tick(now: number): void {
    const o = this.ctx.options;
    if (this.partialCharge > 0 && this.frameTooSlow(now)) return;
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
      this.write(encodePing());
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
    this.flushRun();
    countCode(this.ctx.stats.closes, code);
    if (code !== WireCode.GOING_AWAY) {
      this.ctx.log.info(this.isLink() ? 'closing link' : 'closing connection', { remote: this.remote, ...this.logId(), code: WIRE_CODE_NAMES[code] ?? code, reason: reason || undefined });
    }
    // [P-9.2] frames queued before the CLOSE (replies included) are written before it; a
    // slow consumer's are not, it did not read them.
    if (code !== WireCode.SLOW_CONSUMER && this.state === ConnState.OPEN) this.writePending();
    this.shutdown(park);
    this.writeCloseFrame(code, reason);
    this.stream.end();
    this.armCloseTimer();
  }

  /** CLOSE, preceded by our preamble when the peer has not had it yet, so it can parse the CLOSE. [P-2.3] */
  private writeCloseFrame(code: number, reason: string): void {
    if (!this.preambleSent) {
      this.preambleSent = true;
      this.write(encodePreamble(PROTOCOL_VERSION));
    }
    this.write(encodeClose(code, reason));
  }

  private armCloseTimer(): void {
    if (this.closeTimer === null && this.state !== ConnState.CLOSED) {
      this.closeTimer = this.ctx.clock.setTimeout(this.guarded(() => this.destroyNow()), this.ctx.options.closeTimeout);
    }
  }

  /** Leaves the relay: unregistered, no more input, waiters released. Idempotent. */
  private shutdown(park = false): void {
    if (this.state >= ConnState.CLOSING) return;
    this.state = ConnState.CLOSING;
    this.decoder.stop();
    this.ctx.reservePartial(this, -this.partialCharge, 0);
    this.partialCharge = 0;
    // Input is ignored from now on; keep reading it so the peer's FIN is noticed even if
    // this connection was paused for backpressure or a rate limit.
    this.stream.resume();
    this.ctx.registry.delete(this);
    // [P-12.4] A lost agent's ID is kept for a while, and its messages held.
    if (park && this.kind === 'agent' && !this.anonymous && this.ctx.options.resumeGrace > 0 && !this.ctx.closing) new Parked(this.ctx, this.id, this.publicKey, false);
    if (this.slowTimer !== null) {
      this.slowTimer.cancel();
      this.slowTimer = null;
    }
    // A slow consumer's senders stay held until what it drops is reported, so they hear of
    // their queued SENDs before anything about later ones (released in destroyNow/close).
    if (this.dropCode !== WireCode.DESTINATION_SLOW) this.releaseWaiters();
    for (const d of this.blockedOn) d.waiters.delete(this);
    this.blockedOn.clear();
    // A lost link answers no barrier: release them, so flushes do not hang.
    this.tokens?.releaseAll();
    if (this.kind === 'link') this.ctx.mesh.onLinkDown(this);
    // [P-11.3] reply handles die with their connection
    this.replyHandles?.release();
    this.replyHandles = null;
  }
}
