import { WireCode } from '../protocol/frame.js';
import type { Timer } from '../net/clock.js';
import type { RouterContext } from './context.js';
import type { Registered } from './registry.js';

/** A DELIVER held for a parked ID, with who to tell if it is never delivered. */
export interface Held {
  readonly frame: Buffer;
  readonly seq: number;
  readonly replyTo: Buffer;
}

/**
 * [P-12.4] A parked ID: the registry entry an agent's ID becomes when its connection is
 * lost but may resume within resumeGrace, or, after a restart, an ID this router may have
 * issued before it (a placeholder). It routes to no connection (`conn` is null, the one
 * check route() makes), holds copies of the DELIVERs sent to it, bounded, and when the
 * grace ends leaves the registry and tells every sender whose message it held.
 */
export class Parked<C> implements Registered<C> {
  /** Parked IDs route to no connection. */
  readonly conn = null;
  /** DELIVERs held, in the order they came. */
  readonly held: Held[] = [];
  private bytes = 0;
  private readonly timer: Timer;

  /**
   * Parks `id` in `ctx`'s registry. `publicKey`: the key the agent registered, still
   * answered to LOOKUP while parked. `placeholder`: a stand-in after a restart (counted by
   * the router, see RouterContext.placeholderGone).
   */
  constructor(
    private readonly ctx: RouterContext<C>,
    readonly id: Buffer,
    readonly publicKey: Buffer | null,
    readonly placeholder: boolean,
  ) {
    this.timer = ctx.clock.setTimeout(this.expire, ctx.options.resumeGrace);
    ctx.registry.add(this);
    ctx.stats.parked++;
  }

  /**
   * Keeps a copy of the DELIVER `buf[start..end)`: 0, or the wire code to tell its sender
   * when the hold is full.
   */
  hold(buf: Buffer, start: number, end: number, seq: number, replyTo: Buffer): number {
    const o = this.ctx.options;
    if (this.held.length >= o.holdMessages || this.bytes + (end - start) > o.holdBytes) {
      this.ctx.stats.dropped.holdFull++;
      return WireCode.DESTINATION_SLOW;
    }
    const frame = Buffer.from(buf.subarray(start, end));
    this.held.push({ frame, seq, replyTo: Buffer.from(replyTo) });
    this.bytes += frame.length;
    this.ctx.stats.held++;
    return 0;
  }

  /** The agent resumed: leaves the registry and hands over what was held. [P-12.3] */
  resume(): Held[] {
    this.timer.cancel();
    this.leave();
    return this.held;
  }

  private leave(): void {
    this.ctx.registry.delete(this);
    if (this.placeholder) this.ctx.placeholderGone();
  }

  /** Resume grace is over: drop the ID and tell every sender whose message was held. */
  private readonly expire = (): void => {
    try {
      this.leave();
      for (const h of this.held) {
        this.ctx.stats.dropped.resumeExpired++;
        this.ctx.refuseTo(h.replyTo, WireCode.NOT_DELIVERED, h.seq, this.id);
      }
    } catch (err) {
      // A timer's exception must not reach the process.
      this.ctx.log.error('internal error while expiring a parked ID', { error: String(err) });
    }
  };
}
