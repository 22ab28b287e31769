import type { Clock, Timer } from '../net/clock.js';

/**
 * Keepalive of one connection, over a narrow interface so it runs (and is tested) without a
 * socket. [P-8.2]
 *
 * @module
 */

/** What a {@link Heartbeat} acts on. */
export interface HeartbeatTarget {
  /** Send a keepalive PING (any payload; the router's PONG needs no matching). */
  ping(): void;
  /** Nothing was received for `timeout` ms: close with KEEPALIVE_TIMEOUT. */
  expire(): void;
}

/**
 * If nothing was received for `keepalive` ms, send one PING; if nothing for `timeout` ms,
 * expire. Any received byte counts: `received()` is called once per socket chunk and only
 * stores the time, so the hot path never touches a timer. A single timer wakes at the next
 * deadline and re-arms itself for what is left.
 *
 * While `pause()`d (the agent stopped reading because its consumer lags), silence is our own
 * doing, so the heartbeat never expires; it PINGs every `keepalive` ms instead, so the
 * router keeps hearing from us. `resume()` counts as a receipt.
 */
export class Heartbeat {
  private readonly clock: Clock;
  private readonly target: HeartbeatTarget;
  private readonly keepalive: number;
  private readonly timeout: number;
  private last: number;
  private pinged = false;
  private paused = false;
  private timer: Timer | null = null;
  private stopped = false;

  /** Starts at once; the silence is counted from now. */
  constructor(clock: Clock, target: HeartbeatTarget, keepalive: number, timeout: number) {
    this.clock = clock;
    this.target = target;
    this.keepalive = Math.max(1, keepalive);
    this.timeout = Math.max(this.keepalive, timeout);
    this.last = clock.now();
    this.arm(this.keepalive);
  }

  /** Something arrived from the peer. */
  received(): void {
    this.last = this.clock.now();
    this.pinged = false;
  }

  /** The agent stopped reading; see the class comment. */
  pause(): void {
    this.paused = true;
  }

  /** The agent reads again. */
  resume(): void {
    this.paused = false;
    this.received();
  }

  /** Cancels the timer for good. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private arm(ms: number): void {
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(1, ms));
  }

  private fire(): void {
    this.timer = null;
    if (this.stopped) return;
    const now = this.clock.now();
    if (this.paused) {
      this.target.ping();
      this.arm(this.keepalive);
      return;
    }
    const idle = now - this.last;
    if (idle >= this.timeout) {
      this.stopped = true;
      this.target.expire();
      return;
    }
    if (idle >= this.keepalive) {
      if (!this.pinged) {
        this.pinged = true;
        this.target.ping();
      }
      this.arm(this.timeout - idle);
      return;
    }
    this.arm(this.keepalive - idle);
  }
}
