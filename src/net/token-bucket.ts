/**
 * A token bucket: refills at `rate` tokens a second up to `burst` seconds' worth, on an
 * injected clock's readings. The rate is given at each call, so a reloaded limit applies
 * at once. One class for every rate limit: the router's registrations per address and
 * each connection's bytes and messages per second. [P-12.6] [P-12.7]
 */
export class TokenBucket {
  private tokens: number;
  private stamp: number;

  /** A full bucket at clock time `now` (ms). */
  constructor(
    private readonly burst: number,
    rate: number,
    now: number,
  ) {
    this.tokens = rate * burst;
    this.stamp = now;
  }

  /** Tokens held at `now`, with what `rate` refilled since the last take; no change. */
  level(rate: number, now: number): number {
    return Math.min(rate * this.burst, this.tokens + ((now - this.stamp) * rate) / 1000);
  }

  /** True when the bucket is full at `now` (an owner may then forget it). */
  full(rate: number, now: number): boolean {
    return this.level(rate, now) >= rate * this.burst;
  }

  /** Takes `n` tokens when the bucket holds them; false, taking none, when it does not. */
  tryTake(n: number, rate: number, now: number): boolean {
    const t = this.level(rate, now);
    this.stamp = now;
    this.tokens = t < n ? t : t - n;
    return t >= n;
  }

  /** Takes `n` tokens, into debt when it holds fewer; returns what is left (negative in debt). */
  take(n: number, rate: number, now: number): number {
    this.tokens = this.level(rate, now) - n;
    this.stamp = now;
    return this.tokens;
  }
}
