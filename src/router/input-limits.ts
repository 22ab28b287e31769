import type { Duplex } from 'node:stream';
import { WireCode } from '../protocol/frame.js';
import { TokenBucket } from '../net/token-bucket.js';
import type { RouterContext } from './context.js';
import { ConnState } from './state.js';

/** What the input limits read of, and do to, the connection they belong to. */
export interface LimitedConn {
  readonly state: ConnState;
  /** Bytes read so far. */
  readonly bytesIn: number;
  /** Backpressure: `blocked` while reading is paused for a full destination. */
  readonly flow: { readonly blocked: boolean };
  close(code: number, reason: string): void;
  /** Wraps a timer's work so an exception ends this connection only. */
  guarded(fn: () => void): () => void;
}

/**
 * How fast one connection may send, and how slowly [P-12.6] [P-12.8]: rate limits as token
 * buckets, its share of the router's budget for incomplete frames, and the minimum rate at
 * which an incomplete frame must keep coming. `C` is the connection type.
 *
 * Over a rate limit the connection is not read until the buckets refill: the sender is
 * slowed by TCP itself, nothing is dropped and nothing queues in the router. Time with
 * reading paused by this router (backpressure, a rate limit) never counts against a peer.
 */
export class InputLimits<C> {
  /** True while reading is paused to let the buckets refill. */
  ratePaused = false;
  /** [P-12.8] This connection's share of the router's partialBytes: the size of its incomplete frame. */
  partialCharge = 0;
  // Token buckets, made at the first read that is metered.
  private buckets: { bytes: TokenBucket; msgs: TokenBucket } | null = null;
  // The start of the current window of minFrameRate (clock time, bytesIn then; -1 when no frame is incomplete).
  private stallSince = -1;
  private stallMark = 0;

  constructor(
    private readonly ctx: RouterContext<C>,
    private readonly conn: C & LimitedConn,
    private readonly stream: Duplex,
  ) {}

  /**
   * After a read of `bytes` bytes and `frames` frames, with `held` bytes of an incomplete
   * frame in the decoder: the budget share follows `held`, and the rate limits (never on a
   * router `link`) take the read.
   */
  afterRead(held: number, bytes: number, frames: number, link: boolean): void {
    if (held !== this.partialCharge) this.charge(held);
    const o = this.ctx.options;
    if ((o.maxByteRate > 0 || o.maxMessageRate > 0) && !link) this.meter(bytes, frames);
  }

  /** [P-12.8] Moves this connection's share of the budget to `held`, what its decoder holds now. */
  private charge(held: number): void {
    if (!this.ctx.reservePartial(this.conn, held - this.partialCharge, held)) {
      this.conn.close(WireCode.OVERLOADED, 'no room for another incomplete frame');
      return;
    }
    this.partialCharge = held;
    if (held === 0) this.stallSince = -1;
  }

  /** Gives the whole share back (the connection is closing). */
  release(): void {
    this.ctx.reservePartial(this.conn, -this.partialCharge, 0);
    this.partialCharge = 0;
  }

  /** [P-12.8] Closes the connection when its incomplete frame comes slower than minFrameRate; true when it did. */
  frameTooSlow(now: number): boolean {
    const o = this.ctx.options;
    if (this.partialCharge === 0 || o.minFrameRate === 0) {
      this.stallSince = -1;
      return false;
    }
    const bytesIn = this.conn.bytesIn;
    if (this.stallSince < 0 || this.conn.flow.blocked || this.ratePaused) {
      this.stallSince = now;
      this.stallMark = bytesIn;
      return false;
    }
    const span = now - this.stallSince;
    if (span < o.frameRateWindow) return false; // [P-8.2-3] a deadline is never early
    if ((bytesIn - this.stallMark) * 1000 < o.minFrameRate * span) {
      this.conn.close(WireCode.FRAME_TOO_SLOW, `incomplete frame came at less than ${o.minFrameRate} bytes/s`);
      // Nothing it still sends is wanted; let the memory go now.
      this.stream.destroy();
      return true;
    }
    this.stallSince = now;
    this.stallMark = bytesIn;
    return false;
  }

  /** [P-12.6] Takes one read of `bytes` bytes and `msgs` frames from the buckets, pausing reading when they run dry. */
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
      this.conn.guarded(() => {
        this.ratePaused = false;
        if (!this.conn.flow.blocked && this.conn.state === ConnState.OPEN) this.stream.resume();
      }),
      Math.ceil(wait),
    );
  }
}
