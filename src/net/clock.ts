/**
 * Time, injected. Everything in postern that waits (keepalive, backoff, timeouts) asks a
 * Clock, so tests advance time by hand instead of sleeping.
 */

/** A timer handle returned by {@link Clock.setTimeout}. */
export interface Timer {
  /** Cancels the timer. */
  cancel(): void;
  /** Restarts the timer's full delay from now (like Node's `timeout.refresh()`). */
  refresh(): void;
}

/** The clock interface: milliseconds and one-shot timers. */
export interface Clock {
  /** Milliseconds since an arbitrary epoch; never goes backwards. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds unless cancelled. */
  setTimeout(fn: () => void, ms: number): Timer;
}

/** The real clock: `performance.now()` and Node timers that do not keep the process alive. */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout(fn: () => void, ms: number): Timer {
    const t = setTimeout(fn, ms);
    t.unref();
    return {
      cancel: () => clearTimeout(t),
      refresh: () => {
        t.refresh();
      },
    };
  },
});

/**
 * A clock that moves only when told: `advance(ms)` runs every timer that falls due, in
 * order. For tests and simulations.
 */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { due: number; ms: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const id = ++this.seq;
    this.timers.set(id, { due: this.t + ms, ms, fn });
    return {
      cancel: () => {
        this.timers.delete(id);
      },
      refresh: () => {
        const e = this.timers.get(id);
        if (e !== undefined) e.due = this.t + e.ms;
        else this.timers.set(id, { due: this.t + ms, ms, fn });
      },
    };
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in due order. */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      let nextId = -1;
      let nextDue = Infinity;
      for (const [id, e] of this.timers) {
        if (e.due <= target && e.due < nextDue) {
          nextDue = e.due;
          nextId = id;
        }
      }
      if (nextId < 0) break;
      const e = this.timers.get(nextId)!;
      this.timers.delete(nextId);
      this.t = Math.max(this.t, e.due);
      e.fn();
    }
    this.t = target;
  }
}
