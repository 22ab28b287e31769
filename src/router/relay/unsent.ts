import type { Duplex } from 'node:stream';
import { FrameType, ID_SIZE, RELAY_HEADER_SIZE, RELAY_ID_OFFSET, RELAY_SEQ_OFFSET, WireCode } from '../../protocol/frame.js';
import type { RouterStats } from '../stats.js';
import type { Outbox } from './outbox.js';
import type { RelayPeer } from './peer.js';

/**
 * What a connection wrote that its stream had not handed to the OS, kept so the senders
 * can be told if the connection ends before it does. [P-9.4]
 *
 * Invariants: `sent` counts every byte handed to the stream; an entry's bytes stay put
 * while it is listed (the stream holds them, and a slab is written over only once the
 * stream is empty); an entry is forgotten only once the OS took all of it, so a sender
 * may hear of a message that did arrive, never miss one that did not.
 */

interface Unsent {
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
  readonly from: RelayPeer;
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

/** What telling senders needs of the router. */
export interface UnsentHost {
  readonly stats: RouterStats;
  /** Tells `replyTo` (an ID or handle, here or across the mesh) that SEND `seq` to `dest` failed. */
  refuseTo(replyTo: Buffer, code: number, seq: number, dest: Buffer): void;
}

// Plain byte arithmetic: Buffer's read methods validate their offset on every call.
function u32be(b: Buffer, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** One connection's unsent messages. */
export class UnsentLog {
  /** Bytes handed to the stream so far. */
  sent = 0;
  /** The code senders of dropped messages are told: DESTINATION_SLOW for a slow consumer, else by the kind of connection. */
  dropCode = 0;
  // The messages among `sent` the stream had not handed to the OS when last looked at (null when none).
  private list: Unsent[] | null = null;
  private check = UNSENT_CHECK;

  constructor(
    private readonly owner: RelayPeer,
    private readonly host: UnsentHost,
    private readonly stream: Duplex,
  ) {}

  /**
   * After `out`'s first `n` entries were written from stream position `base`: when the
   * stream still holds bytes (`queued`), remember the messages just written and forget
   * those the OS has taken since; when it holds none, nothing written can be lost by this
   * router any more.
   */
  written(out: Outbox<RelayPeer>, base: number, n: number, queued: number): void {
    if (queued === 0) {
      if (this.list !== null) {
        this.list = null;
        this.check = UNSENT_CHECK;
      }
      return;
    }
    const list = (this.list ??= []);
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
    if (list.length < this.check) return;
    const taken = this.sent - this.bytes();
    let k = 0;
    while (k < list.length && list[k]!.pos + (list[k]!.end - list[k]!.start) <= taken) k++;
    if (k > 0) list.splice(0, k);
    this.check = Math.max(UNSENT_CHECK, list.length * 2);
  }

  /**
   * Bytes written to the stream that the OS has not taken: the stream's queue, less the
   * part of the write in flight that libuv already wrote. Node exposes that part only
   * through internals; without them the whole queue counts (a sender may then hear of a
   * message that did arrive, never the reverse).
   */
  bytes(): number {
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
  drop(): void {
    const list = this.list;
    if (list === null) return;
    this.list = null;
    const taken = this.sent - this.bytes();
    for (const u of list) this.refuseLost(u, taken);
  }

  /** Forgets the list without telling anyone (when telling failed). */
  forget(): void {
    this.list = null;
  }

  /**
   * The connection is closing with `n` entries of `out` never written: take them out
   * before telling their senders, so nothing can reach them again, and tell each sender.
   */
  refuseQueued(out: Outbox<RelayPeer>, n: number): void {
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
      this.refuseLost({ buf: bufs[i]!, start: starts[i]!, end: ends[i]!, from: froms[i]!, first: firsts[i]!, last: seqs[i]!, pos: 0 }, -1);
    }
  }

  /**
   * Tells the sender of each message of `u` that ends past stream position `taken` that it
   * was dropped. On an agent the messages are DELIVERs from one sender whose seq the
   * rewrite zeroed: the k-th has seq first + k when the sender numbers its SENDs one by
   * one (§6.2); otherwise the first and last keep theirs and those between get 0. On a link
   * they are SENDs (seq intact) after the SOURCE naming their sender.
   */
  private refuseLost(u: Unsent, taken: number): void {
    const { buf, start, end } = u;
    const link = this.owner.kind === 'link';
    const code = this.dropCode !== 0 ? this.dropCode : link ? WireCode.UNREACHABLE_ROUTER : WireCode.NOT_DELIVERED;
    const stats = this.host.stats;
    let total = 0;
    if (!link) for (let o = start; o + RELAY_HEADER_SIZE <= end; o += u32be(buf, o) + 4) total++;
    const oneByOne = ((u.last - u.first) >>> 0) === total - 1;
    let sender: Buffer = u.from.link !== null ? Buffer.from(u.from.link.sender) : u.from.id;
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
        stats.dropped.connectionEnded++;
        this.host.refuseTo(sender, code, u32be(buf, o + RELAY_SEQ_OFFSET), id);
      } else if (type === FrameType.DELIVER) {
        if (lost) {
          const seq = oneByOne ? (u.first + k) >>> 0 : k === 0 ? u.first : k === total - 1 ? u.last : 0;
          stats.dropped.connectionEnded++;
          this.host.refuseTo(id, code, seq, this.owner.id);
        }
        k++;
      }
      o += len;
    }
  }
}
