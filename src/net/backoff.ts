/**
 * Backoff between attempts: a pure function of the attempt, shared by the agent's
 * reconnect loop and the router's redialling of mesh peers.
 *
 * @module
 */

/** How a backoff delay is randomised. */
export type JitterMode = 'full' | 'decorrelated';

/** Parameters of {@link backoffDelay}. */
export interface BackoffPolicy {
  /** Base delay in ms (the ceiling of the first attempt). */
  readonly initialDelay: number;
  /** No delay exceeds this, in ms. */
  readonly maxDelay: number;
  /** See {@link JitterMode}. */
  readonly jitter: JitterMode;
}

// 2^30 x base overflows nothing a timer accepts once capped; beyond it the cap applies anyway.
const MAX_EXPONENT = 30;

/**
 * The delay before reconnect attempt `attempt` (1-based), in whole ms, always within
 * `0..maxDelay`. Pure: the randomness comes in as `random()` (a value in [0, 1)).
 *
 * - `full` ("full jitter"): uniform in `0..min(maxDelay, initialDelay * 2^(attempt-1))`.
 *   Spreads a crowd of agents that lost the same router over the whole window.
 * - `decorrelated`: uniform in `initialDelay..3 * previous`, capped at `maxDelay`, where
 *   `previous` is the delay this function returned for the attempt before (use
 *   `initialDelay` for the first attempt). Grows like exponential backoff on average
 *   without the attempt number.
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, previous: number, random: () => number): number {
  const { initialDelay, maxDelay } = policy;
  const r = clamp01(random());
  if (policy.jitter === 'decorrelated') {
    const prev = Math.max(previous, initialDelay);
    const hi = Math.min(maxDelay, prev * 3);
    const lo = Math.min(initialDelay, hi);
    return Math.min(hi, lo + Math.floor(r * (hi - lo + 1)));
  }
  const exp = Math.min(Math.max(attempt, 1) - 1, MAX_EXPONENT);
  const ceiling = Math.min(maxDelay, initialDelay * 2 ** exp);
  return Math.min(ceiling, Math.floor(r * (ceiling + 1)));
}

function clamp01(r: number): number {
  // A broken random source must not break the bounds.
  return Number.isFinite(r) ? Math.min(Math.max(r, 0), 0.9999999999) : 0;
}
