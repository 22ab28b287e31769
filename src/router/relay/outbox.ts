/**
 * A destination's outbox: what the relay gathered for one connection during an event-loop
 * turn, written together by the connection's `writePending()` once the turn's reads are
 * done, so frames from many senders to one destination leave in one write. [P-9.3]
 *
 * Entries are ranges (buffer, start, end) with the sender and the seqs of its first and
 * last message in the range (-1 for a reply or a SOURCE frame: nobody to tell if it is
 * lost). A range is either a slice of a chunk read (a long run, written as it is) or a
 * range of this outbox's slab (short runs and replies, copied in).
 *
 * Invariants:
 * - The slab belongs to this outbox. Bytes before `slabPos` may still be held by the
 *   stream they were written to; they are written over only when {@link Outbox.endTurn}
 *   is told the stream has taken every byte (and only for a net.Socket, `reuseSlab`:
 *   another Duplex may keep the written buffer). Until then new ranges go after them, and
 *   a new slab starts only when this one is full, so a queue pins about what it holds.
 * - A slice of a chunk read is only valid until the read returns: the connection writes
 *   every entry in the same turn (the router's flush), never later.
 * - The size of the next slab follows how much a turn brings (`slabTurn`).
 */

/** Sizes of a destination's slab. */
const MIN_SLAB = 2048;
const MAX_SLAB = 256 * 1024;
/** Runs up to this size are copied four bytes at a time in JS; longer ones with Buffer.copy (a native call with a fixed cost). */
const COPY_LOOP_MAX = 256;

const EMPTY = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(new ArrayBuffer(0));

/**
 * Scratch for {@link Outbox.ranges}, shared by all outboxes: the connection writes the
 * ranges out before another outbox is merged (replies are queued, never written inside a
 * write).
 */
const R_BUFS: Buffer[] = [];
const R_STARTS: number[] = [];
const R_ENDS: number[] = [];

/** One destination's queue for this turn; `S` is the sender type (the connection). */
export class Outbox<S> {
  readonly bufs: Buffer[] = [];
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly froms: S[] = [];
  /** The seq of each entry's last message (-1: nobody to tell). */
  readonly seqs: number[] = [];
  /** The seq of each entry's first message, so every message of a dropped entry is reported with its own seq. [P-9.4] */
  readonly firsts: number[] = [];
  /** Bytes in the entries. */
  bytes = 0;
  /**
   * True (an agent): a run from the same sender right after its last one extends that
   * entry. A link keeps one entry per run (a refusal names the destination of the run's
   * first SEND).
   */
  mergeSenders = true;

  slab: Buffer | null = null;
  slabView: DataView = EMPTY_VIEW;
  private slabPos = 0;
  private slabSize = MIN_SLAB;
  private slabTurn = 0;

  /**
   * `reuseSlab`: the stream copies what it is given to the OS (a net.Socket), so a slab
   * can be written over once it is empty. `schedule`: asks for a flush this turn; called
   * when the first entry arrives.
   */
  constructor(
    private readonly reuseSlab: boolean,
    private readonly schedule: () => void,
  ) {}

  /** Where `n` more bytes go in the slab: after what it holds, or in a new one. */
  room(n: number): number {
    const slab = this.slab;
    if (slab === null || slab.length - this.slabPos < n) {
      const size = Math.max(n, this.slabSize);
      const fresh = (this.slab = size < 4096 ? Buffer.allocUnsafe(size) : Buffer.allocUnsafeSlow(size));
      this.slabView = new DataView(fresh.buffer, fresh.byteOffset, fresh.length);
      this.slabPos = 0;
    }
    return this.slabPos;
  }

  /** Queues the `n` bytes written into the slab at `p` (see {@link mergeSenders}). */
  take(p: number, n: number, from: S, seq: number, first: number): void {
    const slab = this.slab!;
    this.slabPos = p + n;
    this.slabTurn += n;
    const i = this.bufs.length - 1;
    if (this.mergeSenders && i >= 0 && this.bufs[i] === slab && this.ends[i] === p && this.froms[i] === from && seq >= 0 === this.seqs[i]! >= 0) {
      this.ends[i] = p + n;
      this.seqs[i] = seq;
      this.bytes += n;
      return;
    }
    this.enqueue(slab, p, p + n, from, seq, first);
  }

  /** Copies a short run (already rewritten, or forwarded as it is) into the slab, next to the runs before it. */
  copyIn(buf: Buffer, dv: DataView, start: number, end: number, from: S, seq: number, first: number): void {
    const n = end - start;
    const p = this.room(n);
    const slab = this.slab!;
    if (n <= COPY_LOOP_MAX) {
      const out = this.slabView;
      let s = start;
      let d = p;
      for (const e = end - 3; s < e; s += 4, d += 4) out.setInt32(d, dv.getInt32(s, true), true);
      for (; s < end; s++, d++) slab[d] = buf[s]!;
    } else {
      buf.copy(slab, p, start, end);
    }
    this.take(p, n, from, seq, first);
  }

  /** Copies a small buffer (a reply) into the slab. */
  copyAll(buf: Buffer, from: S): void {
    const n = buf.length;
    const p = this.room(n);
    buf.copy(this.slab!, p);
    this.take(p, n, from, -1, -1);
  }

  /** Queues a range as it is (a long run, a large reply): it must be written this turn. */
  enqueue(buf: Buffer, start: number, end: number, from: S, seq: number, first: number): void {
    if (this.bufs.length === 0) this.schedule();
    this.bufs.push(buf);
    this.starts.push(start);
    this.ends.push(end);
    this.froms.push(from);
    this.seqs.push(seq);
    this.firsts.push(first);
    this.bytes += end - start;
  }

  /**
   * Entries back to back in one buffer (a slab's runs from several senders) as one range:
   * returns how many ranges, found in {@link rangeBuf}/{@link rangeStart}/{@link rangeEnd}
   * until {@link forgetRanges}.
   */
  ranges(): number {
    const n = this.bufs.length;
    const bufs = this.bufs;
    const starts = this.starts;
    const ends = this.ends;
    let m = 0;
    for (let i = 0; i < n; i++) {
      if (m > 0 && bufs[i] === R_BUFS[m - 1] && starts[i] === R_ENDS[m - 1]) {
        R_ENDS[m - 1] = ends[i]!;
        continue;
      }
      R_BUFS[m] = bufs[i]!;
      R_STARTS[m] = starts[i]!;
      R_ENDS[m] = ends[i]!;
      m++;
    }
    return m;
  }

  /** The i-th range of the last {@link ranges}, as a view. */
  range(i: number): Buffer {
    return R_BUFS[i]!.subarray(R_STARTS[i], R_ENDS[i]);
  }

  /** Lets the shared scratch keep no buffer alive (and keeps the array's storage). */
  forgetRanges(m: number): void {
    for (let i = 0; i < m; i++) R_BUFS[i] = EMPTY;
  }

  /** Empties the entries (the slab stays). */
  clear(): void {
    this.bufs.length = 0;
    this.starts.length = 0;
    this.ends.length = 0;
    this.froms.length = 0;
    this.seqs.length = 0;
    this.firsts.length = 0;
    this.bytes = 0;
  }

  /** Forgets the slab: its bytes may be held by a stream that will never take them. */
  dropSlab(): void {
    this.slab = null;
  }

  /**
   * After a write: sizes the next slab by what this turn brought, and, when the stream
   * holds none of what was written (`queued` 0), writes over the slab next turn or, after
   * a quiet turn, lets it go (an idle connection keeps no slab).
   */
  endTurn(queued: number): void {
    const turn = this.slabTurn;
    this.slabTurn = 0;
    if (turn > this.slabSize) this.slabSize = Math.min(MAX_SLAB, this.slabSize * 2);
    else if (turn * 8 < this.slabSize) this.slabSize = Math.max(MIN_SLAB, this.slabSize >> 1);
    const slab = this.slab;
    if (slab !== null && this.reuseSlab && queued === 0) {
      if (turn * 8 < slab.length) this.slab = null;
      else this.slabPos = 0;
    }
    // Otherwise the stream may still hold what was written of it: the next runs go after it.
  }
}
