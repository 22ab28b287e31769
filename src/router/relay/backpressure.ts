import type { Duplex } from 'node:stream';
import type { Clock, Timer } from '../../net/clock.js';
import { WireCode } from '../../protocol/frame.js';
import type { ResolvedRouterOptions } from '../options.js';
import type { RouterStats } from '../stats.js';

/** What the slow-consumer timer needs of the router and does to the connection. */
export interface SlowConsumerHost {
  readonly ctx: { readonly clock: Clock; readonly options: ResolvedRouterOptions; readonly stats: RouterStats };
  /** What the connection wrote and the OS has not taken (see unsent.ts): the code its senders are told, and its size. */
  readonly unsent: { dropCode: number; bytes(): number };
  /** Wraps a timer's work so an exception ends this connection only. */
  guarded(fn: () => void): () => void;
  /** Closes the connection; the CLOSE is queued behind what it did not read. */
  close(code: number, reason: string): void;
  /** Destroys the connection after `ms` (instead of its close timeout). */
  destroyAfter(ms: number): void;
}

/**
 * One connection's part in backpressure. [P-9.3] When a destination's queue goes over
 * maxOutbound, the senders that filled it stop being read (TCP slows them, nothing is
 * dropped) until it drains; unless it drains within slowConsumerTimeout it is closed as a
 * slow consumer ({@link Backpressure.slowConsumer}).
 *
 * Invariants: a connection is paused exactly while it is blocked on some destination (or
 * by a rate limit); every sender in a destination's `waiters` has that destination in its
 * `blockedOn`, and the two are dropped together. `P` is the connection type.
 */
export class Backpressure<P extends { readonly flow: Backpressure<P> }> {
  /** Senders paused because this connection's queue is over the limit. */
  private readonly waiters = new Set<P>();
  /** Destinations this connection is paused for (itself, for an agent that does not read its replies). */
  private readonly blockedOn = new Set<P>();
  private slowTimer: Timer | null = null;

  constructor(
    private readonly self: P,
    private readonly stream: Duplex,
    /** True when nothing else holds reading paused (a rate limit, a closing connection). */
    private readonly mayResume: () => boolean,
    private readonly host: SlowConsumerHost,
  ) {}

  /** True while reading is paused for a full destination. */
  get blocked(): boolean {
    return this.blockedOn.size > 0;
  }

  /**
   * This connection's queue is over maxOutbound, whatever filled it: DELIVERs or the
   * router's own replies (PONG, ERROR, LOOKUP_RESULT, ...), which count the same. Unless
   * it drains within slowConsumerTimeout it is closed as a slow consumer. Meanwhile an
   * agent's input is not read, so a peer that never reads its replies cannot make more of
   * them; a link (`link`) keeps being read: two routers pausing each other's links would
   * deadlock.
   */
  overLimit(link: boolean): void {
    const h = this.host;
    if (this.slowTimer === null) this.slowTimer = h.ctx.clock.setTimeout(h.guarded(this.slowConsumer), h.ctx.options.slowConsumerTimeout);
    if (!link && !this.blockedOn.has(this.self)) this.blockOn(this.self);
  }

  /** The queue went over the limit and did not drain in time (the timer still armed means no drain). */
  private readonly slowConsumer = (): void => {
    const h = this.host;
    const o = h.ctx.options;
    this.slowTimer = null;
    h.ctx.stats.slowConsumers++;
    // [P-9.3] [P-9.4] every message dropped with its queue is reported as DESTINATION_SLOW
    h.unsent.dropCode = WireCode.DESTINATION_SLOW;
    h.close(WireCode.SLOW_CONSUMER, `queue went over ${o.maxOutbound} bytes and did not drain for ${o.slowConsumerTimeout} ms`);
    // The CLOSE is queued behind what it did not read: it arrives if the peer reads within
    // a short while (a tenth of slowConsumerTimeout, at most closeTimeout); then the rest is
    // dropped, its senders told, and its memory freed.
    if (h.unsent.bytes() !== 0) h.destroyAfter(Math.min(o.closeTimeout, Math.ceil(o.slowConsumerTimeout / 10)));
  };

  /** `from` queued here while this queue was over the limit: it waits for the drain. */
  congested(from: P): void {
    if (from === this.self) return;
    this.waiters.add(from);
    from.flow.blockOn(this.self);
  }

  private blockOn(dest: P): void {
    if (this.blockedOn.size === 0) this.stream.pause();
    this.blockedOn.add(dest);
  }

  private unblock(dest: P): void {
    if (!this.blockedOn.delete(dest)) return;
    if (this.blockedOn.size === 0 && this.mayResume()) this.stream.resume();
  }

  /** The stream drained: no slow consumer after all, and everyone waiting goes on. */
  drained(): void {
    if (this.slowTimer !== null) {
      this.slowTimer.cancel();
      this.slowTimer = null;
    }
    this.unblock(this.self);
    this.releaseWaiters();
  }

  /**
   * Senders held back are let go. What they queued here and is lost with this connection
   * is reported message by message when it is dropped (see unsent.ts). [P-9.3]
   */
  releaseWaiters(): void {
    if (this.waiters.size === 0) return;
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w.flow.unblock(this.self);
  }

  /**
   * The connection is closing: no slow-consumer timer, not waiting on anyone. `release`:
   * let the senders waiting here go now (a slow consumer keeps them until what it drops
   * is reported, so they hear of their queued SENDs before anything about later ones).
   */
  stop(release: boolean): void {
    if (this.slowTimer !== null) {
      this.slowTimer.cancel();
      this.slowTimer = null;
    }
    if (release) this.releaseWaiters();
    for (const d of this.blockedOn) d.flow.waiters.delete(this.self);
    this.blockedOn.clear();
  }
}
