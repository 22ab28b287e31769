import { Flag, FrameType, ID_SIZE, RELAY_HEADER_SIZE, RELAY_ID_OFFSET, RELAY_SEQ_OFFSET, SEND_FLAGS, SOURCE_SIZE, WireCode } from '../../protocol/frame.js';
import { writeSource } from '../../protocol/encoder.js';
import { NO_ID } from '../../protocol/id.js';
import type { RouterContext } from '../context.js';
import type { Registered } from '../registry.js';
import { Parked } from '../parked.js';
import { ConnState } from '../state.js';
import { writeSenderSource } from '../mesh/source.js';
import type { RelayPeer } from './peer.js';

/**
 * The relay forwarding of one sender: every SEND its connection reads is routed to a local
 * agent as a DELIVER rewritten in place, held for a parked ID, forwarded untouched over
 * the link to the router that issued the destination ID, or refused. [P-6.6-1]
 *
 * Runs: consecutive SENDs to the same destination that lie back to back in one buffer are
 * gathered into a run and handed to the destination's outbox as one range of that buffer
 * ({@link Forwarder.flushRun}); every run is handed over before the read it came from
 * returns, so nothing outlives the read except in a destination's outbox, which the
 * router writes in the same turn.
 *
 * Invariants:
 * - The fast path ({@link Forwarder.relayWhole}, {@link Forwarder.extendAgentRun}) takes
 *   exactly the frames the decoder would accept: it stops at the first frame whose type,
 *   flags or size the decoder must judge, at a frame boundary, and leaves it (and every
 *   refusal) to the decoder path, which ends in {@link Forwarder.send}. Both write the
 *   same bytes in the same order (spec/router/relay-model.test.ts compares them with a
 *   plain reference router, fast path on and off).
 * - The SEND -> DELIVER rewrite is {@link toDeliver}, and nothing else rewrites a SEND.
 * - The payload is never read.
 * - A destination is only ever a connection, always of one class, read for `state`, `kind`,
 *   `idWords`, `link` and `out`: the hot lines see one object shape. Roles (link SOURCE
 *   state, outbox, backpressure) are objects in its fields, never subclasses.
 * - Refusing a SEND ({@link Forwarder.refuseSend}) ends the open run first and only
 *   queues bytes for the sender: it never writes.
 */

/** Runs shorter than this are copied into their destination's slab; longer ones are written as they are. */
export const SMALL_RUN = 4096;
/** Slots of a sender's destination cache (a power of two), indexed by the last byte of the ID. */
const DEST_CACHE_SLOTS = 64;

const EMPTY = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(new ArrayBuffer(0));

// Plain byte arithmetic: Buffer's read methods validate their offset on every call, which
// on the relay path costs more than the read.
function u32be(b: Buffer, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function i32le(b: Buffer, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

/**
 * [P-6.3] SEND -> DELIVER in place: the type, the sender's ID (given as four little-endian
 * int32 words) where the destination's was, the seq zeroed; the payload untouched. Flags
 * are the caller's.
 */
function toDeliver(buf: Buffer, dv: DataView, start: number, from0: number, from1: number, from2: number, from3: number): void {
  const at = start + RELAY_ID_OFFSET;
  buf[start + 4] = FrameType.DELIVER;
  dv.setInt32(at, from0, true);
  dv.setInt32(at + 4, from1, true);
  dv.setInt32(at + 8, from2, true);
  dv.setInt32(at + 12, from3, true);
  dv.setInt32(start + RELAY_SEQ_OFFSET, 0, true);
}

/** One sender's relay forwarding: its open run, its destination cache, its view of the buffer read. */
export class Forwarder {
  // The open run: frames [runStart, runEnd) of runBuf, all for runDest.
  private runDest: RelayPeer | null = null;
  private runBuf: Buffer = EMPTY;
  private runStart = 0;
  private runEnd = 0;
  private runCount = 0;
  private runSeq = 0;
  private runFirst = 0;
  /** The run's destination is an agent reached by its own ID (not a reply handle, not a link). */
  private runById = false;
  /**
   * Agents this sender sent to lately, by the low bits of the ID's last byte, to skip the
   * registry lookup; allocated at the first SEND. A hit is checked against all 16 bytes of
   * the ID and the agent's state.
   */
  private destCache: Array<RelayPeer | null> | null = null;
  // A DataView of the buffer being relayed from (the chunk read, or a frame the decoder
  // assembled): DataView reads and writes compile to single loads and stores, where
  // Buffer's methods validate every call and byte arithmetic takes four.
  private viewBuf: Buffer = EMPTY;
  private viewOf: DataView = EMPTY_VIEW;

  constructor(
    private readonly ctx: RouterContext<RelayPeer>,
    /** The connection whose SENDs this forwards. */
    private readonly self: RelayPeer,
  ) {}

  /**
   * The fast path: plain SENDs lying whole in `chunk` from `from` on go straight to
   * route(), without the decoder's per-frame dispatch; on a link, SOURCE frames between
   * them are taken too. It stops at the first frame that is not one (another type, flags,
   * a size the decoder must judge, or the chunk's end) and returns its offset: the decoder
   * takes it from there, at a frame boundary. `max`: the decoder's maxFrame. [P-3.3]
   */
  relayWhole(chunk: Buffer, from: number, max: number): number {
    const len = chunk.length;
    const dv = this.view(chunk);
    const source = this.self.link;
    let off = from;
    let n = 0;
    while (len - off >= RELAY_HEADER_SIZE) {
      const total = dv.getUint32(off) + 4;
      const type = chunk[off + 4];
      const flags = chunk[off + 5];
      if (total > len - off) break;
      if (source !== null && type === FrameType.SOURCE && total === SOURCE_SIZE) {
        // On a link, SOURCE frames name the sender of the SENDs after them. [P-10.4]
        this.flushRun();
        source.read(chunk, off);
        off += total;
        n++;
        continue;
      }
      // SEALED alone needs nothing but routing (the router never looks inside). [P-11.2]
      if (total < RELAY_HEADER_SIZE || total > max || type !== FrameType.SEND || (flags !== 0 && flags !== Flag.SEALED)) break;
      const d = this.runDest;
      // The next SEND of an open run: what route() does for it, inline.
      if (d !== null && this.runEnd === off && this.runBuf === chunk && d.state === ConnState.OPEN) {
        if (this.runById) {
          // A run to an agent reached by its own ID (an anonymous agent, reached through a
          // reply handle, has no ID to compare with: its words are zeros). The ID's last word
          // (random; the first is the router's) tells most SENDs for another agent without
          // the run loop's set-up: those go to route() below.
          if (dv.getInt32(off + RELAY_ID_OFFSET + 12, true) === d.idWords[3]) {
            const before = this.runCount;
            const o = this.extendAgentRun(chunk, dv, off, max, d);
            if (o !== off) {
              n += this.runCount - before;
              off = o;
              continue;
            }
          }
        } else if (source === null && d.link !== null && dv.getUint32(off + RELAY_ID_OFFSET) === d.link.peerRouter && total <= d.link.peerMaxFrame) {
          // A run over the link to the destination's own router: forwarded untouched. [P-10.4]
          this.runSeq = dv.getUint32(off + RELAY_SEQ_OFFSET);
          this.runEnd = off + total;
          this.runCount++;
          off += total;
          n++;
          continue;
        }
      }
      this.route(chunk, off, off + total, dv.getUint32(off + RELAY_SEQ_OFFSET), source !== null ? source.sender : this.self.id);
      off += total;
      n++;
    }
    this.self.framesIn += n;
    this.ctx.stats.framesIn += n;
    return off;
  }

  /**
   * A run of SENDs to one agent, in a loop of its own: every whole SEND from `from` on with
   * the run's destination ID is rewritten into its DELIVER in place and added to the run.
   * The sender is this agent, or on a link the one its SOURCE named (whose flags the
   * DELIVER carries, and whose SENDs may be no larger than this router's maxFrame
   * [P-10.4]). Returns the offset of the first frame it did not take.
   */
  private extendAgentRun(chunk: Buffer, dv: DataView, from: number, max: number, d: RelayPeer): number {
    const len = chunk.length;
    const source = this.self.link;
    const limit = source !== null ? Math.min(max, this.ctx.options.maxFrame) : max;
    const orFlags = source !== null ? source.flags : 0;
    // The loop's locals, read once: the destination's ID (`to*`) and the sender's (`from*`),
    // each as four little-endian int32 words, so a frame costs four compares and four stores.
    const to = d.idWords;
    const to0 = to[0]!;
    const to1 = to[1]!;
    const to2 = to[2]!;
    const to3 = to[3]!;
    const fromWords = source !== null ? source.senderWords : this.self.idWords;
    const from0 = fromWords[0]!;
    const from1 = fromWords[1]!;
    const from2 = fromWords[2]!;
    const from3 = fromWords[3]!;
    let off = from;
    let seq = this.runSeq;
    let n = 0;
    while (len - off >= RELAY_HEADER_SIZE) {
      const total = dv.getUint32(off) + 4;
      const flags = chunk[off + 5];
      if (total < RELAY_HEADER_SIZE || total > limit || total > len - off || chunk[off + 4] !== FrameType.SEND || (flags !== 0 && flags !== Flag.SEALED)) break;
      const at = off + RELAY_ID_OFFSET;
      if (dv.getInt32(at, true) !== to0 || dv.getInt32(at + 4, true) !== to1 || dv.getInt32(at + 8, true) !== to2 || dv.getInt32(at + 12, true) !== to3) break;
      seq = dv.getUint32(off + RELAY_SEQ_OFFSET);
      if (orFlags !== 0) chunk[off + 5] = flags | orFlags;
      toDeliver(chunk, dv, off, from0, from1, from2, from3);
      off += total;
      n++;
    }
    this.runEnd = off;
    this.runCount += n;
    this.runSeq = seq;
    return off;
  }

  /** One SEND the decoder assembled or found whole, on an open connection. */
  send(buf: Buffer, start: number, end: number): void {
    const seq = u32be(buf, start + RELAY_SEQ_OFFSET);
    const flags = buf[start + 5]!;
    if (flags !== 0 || this.self.anonymous) {
      this.flaggedSend(buf, start, end, seq, flags);
      return;
    }
    const source = this.self.link;
    this.route(buf, start, end, seq, source !== null ? source.sender : this.self.id);
  }

  /**
   * Routes one SEND: to a local agent as a DELIVER from `from` rewritten in place, or
   * untouched towards the link of the router that issued the destination ID. The payload
   * is never read. [P-6.6-1]
   */
  private route(buf: Buffer, start: number, end: number, seq: number, from: Buffer): void {
    let dest: RelayPeer | null;
    let entry: Registered<RelayPeer> | undefined;
    let byId = false;
    const self = this.self;
    const dv = this.view(buf);
    const at = start + RELAY_ID_OFFSET;
    const cache = this.destCache;
    const slot = buf[at + 15]! & (DEST_CACHE_SLOTS - 1);
    const c = cache === null ? null : cache[slot]!;
    const cw = c === null ? null : c.idWords;
    if (
      cw !== null &&
      c!.state === ConnState.OPEN &&
      dv.getInt32(at, true) === cw[0] &&
      dv.getInt32(at + 4, true) === cw[1] &&
      dv.getInt32(at + 8, true) === cw[2] &&
      dv.getInt32(at + 12, true) === cw[3]
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
        this.refuseSend(WireCode.UNKNOWN_DESTINATION, seq, buf, start);
        return;
      }
      // null: a parked ID, which holds the message.
      dest = entry.conn;
      byId = entry === dest;
      // Cache agents only: a reply handle can be retired while its connection stays open.
      if (byId && dest!.state === ConnState.OPEN) (this.destCache ??= new Array<RelayPeer | null>(DEST_CACHE_SLOTS).fill(null))[slot] = dest;
    } else {
      // [P-10.4] another router's agent: forward the SEND untouched over the link to it;
      // a SOURCE frame written ahead of the run names the sender.
      const code = this.forwardCheck(buf, start, end);
      if (code !== 0) {
        this.refuseSend(code, seq, buf, start);
        return;
      }
      dest = this.ctx.mesh.linkFor(u32be(buf, start + RELAY_ID_OFFSET))!;
    }
    if (dest === null || dest.kind !== 'link') {
      const source = self.link;
      if (source !== null) {
        if (end - start > this.ctx.options.maxFrame) {
          this.refuseSend(WireCode.MESSAGE_TOO_LARGE, seq, buf, start); // [P-10.4]
          return;
        }
        buf[start + 5] |= source.flags;
      }
      if (from === self.id) {
        const w = self.idWords;
        toDeliver(buf, dv, start, w[0]!, w[1]!, w[2]!, w[3]!);
      } else {
        toDeliver(buf, dv, start, i32le(from, 0), i32le(from, 4), i32le(from, 8), i32le(from, 12));
      }
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
  private hold(entry: Registered<RelayPeer> | undefined, buf: Buffer, start: number, end: number, seq: number, from: Buffer): void {
    this.flushRun();
    if (!(entry instanceof Parked)) {
      // Not parked yet not open (never expected: a closed connection leaves the registry).
      this.self.refuse(WireCode.UNKNOWN_DESTINATION, seq, entry?.conn?.id ?? NO_ID, null);
      return;
    }
    const code = entry.hold(buf, start, end, seq, from);
    if (code !== 0) this.self.refuse(code, seq, entry.id, null);
  }

  /** SENDs with flags, or from an anonymous connection. [P-6.4] [P-11.2] */
  private flaggedSend(buf: Buffer, start: number, end: number, seq: number, flags: number): void {
    const self = this.self;
    const allowed = self.link !== null ? Flag.SEALED : SEND_FLAGS;
    if ((flags & ~allowed) !== 0) {
      // [P-6.4] flags this router does not implement are refused, never ignored
      this.refuseSend(WireCode.UNSUPPORTED_FLAGS, seq, buf, start);
      return;
    }
    if (!self.anonymous && (flags & Flag.ANONYMOUS) === 0) {
      buf[start + 5] = flags & Flag.SEALED;
      this.route(buf, start, end, seq, self.link !== null ? self.link.sender : self.id);
      return;
    }
    // Anonymous: the receiver sees a reply handle, never this connection's ID. [P-11.2]
    const handle = (flags & Flag.STICKY) !== 0 ? self.handles().stickyId() : self.handles().next();
    const outFlags = Flag.ANONYMOUS | (flags & Flag.SEALED);
    if (buf.readUInt32BE(start + RELAY_ID_OFFSET) === this.ctx.options.routerId) {
      buf[start + 5] = outFlags;
      this.route(buf, start, end, seq, handle);
      return;
    }
    const code = this.forwardCheck(buf, start, end);
    if (code !== 0) {
      this.refuseSend(code, seq, buf, start);
      return;
    }
    // Across the mesh the handle travels as an anonymous SOURCE ahead of this one SEND.
    const onward = this.ctx.mesh.linkFor(buf.readUInt32BE(start + RELAY_ID_OFFSET))!;
    this.flushRun();
    buf[start + 5] = flags & Flag.SEALED;
    const out = Buffer.allocUnsafe(SOURCE_SIZE + end - start);
    writeSource(out, 0, handle, 1, Flag.ANONYMOUS);
    buf.copy(out, SOURCE_SIZE, start, end);
    // Queued, not written: this runs inside another connection's read. [P-6.5]
    onward.out.enqueue(out, 0, out.length, self, seq, seq);
    onward.link!.heldBy = null; // the peer now holds the handle as its SOURCE
    this.ctx.stats.relayed++;
    self.usedLink(onward);
  }

  /** 0 when a SEND for another router may be forwarded, else the wire code refusing it. */
  private forwardCheck(buf: Buffer, start: number, end: number): number {
    const onward = this.ctx.mesh.linkFor(u32be(buf, start + RELAY_ID_OFFSET));
    if (onward === undefined) return WireCode.UNREACHABLE_ROUTER;
    const source = this.self.link;
    if (source !== null && source.hops >= this.ctx.options.meshHopLimit) return WireCode.HOP_LIMIT; // [P-10.4]
    if (end - start > onward.link!.peerMaxFrame) return WireCode.MESSAGE_TOO_LARGE;
    return 0;
  }

  /** Ends the open run: hands it to its destination's outbox. */
  flushRun(): void {
    const dest = this.runDest;
    if (dest === null) return;
    const self = this.self;
    this.runDest = null;
    this.ctx.stats.relayed += this.runCount;
    const onward = dest.link;
    if (onward !== null) {
      if (self.kind === 'agent') self.usedLink(dest);
      // [P-10.4] SENDs on a link belong to the last SOURCE: name this sender if it is not that.
      const version = self.link !== null ? self.link.version : 0;
      if (onward.heldBy !== self || onward.heldVersion !== version) {
        const p = dest.out.room(SOURCE_SIZE);
        writeSenderSource(dest.out.slab!, p, self.id, self.link);
        dest.out.take(p, SOURCE_SIZE, self, -1, -1);
        onward.heldBy = self;
        onward.heldVersion = version;
      }
    }
    if (this.runEnd - this.runStart >= SMALL_RUN) dest.out.enqueue(this.runBuf, this.runStart, this.runEnd, self, this.runSeq, this.runFirst);
    else dest.out.copyIn(this.runBuf, this.view(this.runBuf), this.runStart, this.runEnd, self, this.runSeq, this.runFirst);
    this.runBuf = EMPTY;
  }

  /** Forgets the open run without handing it over (the connection failed while closing). */
  abandon(): void {
    this.runDest = null;
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
  dropView(): void {
    this.viewBuf = EMPTY;
    this.viewOf = EMPTY_VIEW;
  }

  /** Refuses the SEND at `start`: ends the open run, then tells the sender. */
  private refuseSend(code: number, seq: number, buf: Buffer, start: number): void {
    this.flushRun();
    this.self.refuse(code, seq, buf.subarray(start + RELAY_ID_OFFSET, start + RELAY_ID_OFFSET + ID_SIZE), null);
  }
}
