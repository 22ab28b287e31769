import type { Clock, Timer } from '../net/clock.js';
import { backoffDelay, type BackoffPolicy } from '../net/backoff.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';

/**
 * Reconnect timing: one single-flight retry loop over the pure backoff of `net/backoff`, and
 * which errors end it ({@link isPermanentError}).
 *
 * @module
 */

export { backoffDelay, type BackoffPolicy, type JitterMode } from '../net/backoff.js';

/** Codes after which reconnecting is pointless: the peer is not a postern router we can speak to. */
const PERMANENT = new Set<string>([ErrorCode.BAD_MAGIC, ErrorCode.UNSUPPORTED_VERSION, ErrorCode.ADMISSION_DENIED]);

/** True when an error ends the agent instead of triggering a reconnect. */
export function isPermanentError(err: unknown): boolean {
  return err instanceof PosternError && PERMANENT.has(err.code);
}

/** What a {@link ReconnectLoop} drives. */
export interface ReconnectHooks {
  /** One attempt; resolves when connected again, rejects with the reason it failed. */
  attempt(n: number): Promise<void>;
  /** True when `err` must not be retried (e.g. the peer is not a postern router). */
  isPermanent(err: unknown): boolean;
  /** Called before waiting `delayMs` ahead of attempt `n`. */
  onWait?(n: number, delayMs: number): void;
  /** The loop stopped for good after `err` (permanent, or attempts exhausted). */
  onGiveUp(err: unknown): void;
}

/** Settings of a {@link ReconnectLoop}. */
export interface ReconnectLoopOptions {
  readonly clock: Clock;
  readonly policy: BackoffPolicy;
  /** Attempts before giving up; `Infinity` never gives up. */
  readonly maxAttempts: number;
  readonly random: () => number;
}

/**
 * The one reconnect loop of an agent. `start()` is single-flight: while a loop runs, further
 * calls do nothing, so a burst of failures never starts two dialers. `stop()` cancels the
 * pending wait and makes the loop ignore the outcome of an attempt in flight.
 */
export class ReconnectLoop {
  private readonly opts: ReconnectLoopOptions;
  private readonly hooks: ReconnectHooks;
  private run: Promise<void> | null = null;
  private timer: Timer | null = null;
  private wake: (() => void) | null = null;
  private generation = 0;

  constructor(opts: ReconnectLoopOptions, hooks: ReconnectHooks) {
    this.opts = opts;
    this.hooks = hooks;
  }

  /** True while a loop is waiting or attempting. */
  get running(): boolean {
    return this.run !== null;
  }

  /**
   * Starts the loop unless one is running; the promise settles when that loop ends.
   * `firstDelay` replaces the backoff before the first attempt (e.g. a router's DRAIN
   * spreading its agents' return).
   */
  start(firstDelay?: number): Promise<void> {
    if (this.run !== null) return this.run;
    const gen = ++this.generation;
    const run: Promise<void> = this.loop(gen, firstDelay).finally(() => {
      if (this.run === run) this.run = null;
    });
    // A hook may have called stop() before loop() returned its promise.
    if (this.generation === gen) this.run = run;
    return run;
  }

  /** Stops the loop; an attempt in flight is left to the caller to abort. */
  stop(): void {
    this.generation++;
    this.run = null;
    this.timer?.cancel();
    this.timer = null;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async loop(gen: number, firstDelay: number | undefined): Promise<void> {
    let previous = this.opts.policy.initialDelay;
    for (let n = 1; ; n++) {
      const delay = n === 1 && firstDelay !== undefined ? firstDelay : backoffDelay(this.opts.policy, n, previous, this.opts.random);
      previous = delay;
      this.hooks.onWait?.(n, delay);
      if (gen !== this.generation) return;
      await this.sleep(delay);
      if (gen !== this.generation) return;
      try {
        await this.hooks.attempt(n);
        return;
      } catch (err) {
        if (gen !== this.generation) return;
        if (this.hooks.isPermanent(err) || n >= this.opts.maxAttempts) {
          this.hooks.onGiveUp(err);
          return;
        }
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.opts.clock.setTimeout(() => {
        this.timer = null;
        this.wake = null;
        resolve();
      }, ms);
    });
  }
}
