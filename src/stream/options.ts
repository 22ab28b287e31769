import { ErrorCode, PosternError } from '../protocol/errors.js';
import { INITIAL_WINDOW } from './frame.js';

/**
 * Options of the stream layer (the agent's `streams` option): limits, windows and timers.
 *
 * @module
 */

/** The agent's `streams` option. Every field is optional; defaults in {@link STREAM_DEFAULTS}. */
export interface StreamOptions {
  /** Streams open at once (both directions); an OPEN beyond it is reset with LIMIT. Default `256`. */
  maxStreams?: number;
  /**
   * Largest receive window one stream may grow to, in bytes (auto-tuning doubles a stream's
   * window, from 256 KiB, while the window limits its throughput). Default `16777216` (16 MiB).
   */
  maxWindow?: number;
  /**
   * Receive window bytes all streams together may hold beyond their initial 256 KiB each; a
   * window grows only within it. Default `67108864` (64 MiB).
   */
  windowBudget?: number;
  /** Time an opened stream waits for the acceptor's first answer before it fails with POSTERN_ERR_TIMEOUT, in ms. Default `10000`. */
  openTimeout?: number;
  /**
   * An open stream with no frame received for this long is probed with a PING; a probe
   * unanswered for as long again resets it (the peer is gone). In ms; 0 disables. Default `30000`.
   */
  keepalive?: number;
  /** Requests (`agent.request()`) waiting for their reply at once. Default `1024`. */
  maxPendingRequests?: number;
  /** Default timeout of `agent.request()`, in ms. Default `10000`. */
  requestTimeout?: number;
}

/** Stream options after defaults and validation. */
export type ResolvedStreamOptions = Readonly<Required<StreamOptions>>;

/** The defaults of {@link StreamOptions}. */
export const STREAM_DEFAULTS: ResolvedStreamOptions = Object.freeze({
  maxStreams: 256,
  maxWindow: 16 * 1024 * 1024,
  windowBudget: 64 * 1024 * 1024,
  openTimeout: 10_000,
  keepalive: 30_000,
  maxPendingRequests: 1024,
  requestTimeout: 10_000,
});

const MIN: Record<keyof StreamOptions, number> = {
  maxStreams: 1,
  maxWindow: INITIAL_WINDOW,
  windowBudget: 0,
  openTimeout: 1,
  keepalive: 0,
  maxPendingRequests: 1,
  requestTimeout: 1,
};

/** Merges `o` over {@link STREAM_DEFAULTS}; throws POSTERN_ERR_INVALID_OPTION naming the bad field. */
export function resolveStreamOptions(o: StreamOptions | undefined): ResolvedStreamOptions {
  if (o === undefined) return STREAM_DEFAULTS;
  if (o === null || typeof o !== 'object') throw new PosternError(ErrorCode.INVALID_OPTION, 'option streams must be an object');
  const out: Record<string, number> = {};
  for (const k of Object.keys(o)) {
    if (!(k in STREAM_DEFAULTS)) throw new PosternError(ErrorCode.INVALID_OPTION, `option streams.${k} is not a stream option`);
  }
  for (const [k, def] of Object.entries(STREAM_DEFAULTS)) {
    const v = (o as Record<string, unknown>)[k] ?? def;
    const min = MIN[k as keyof StreamOptions];
    // 2^31-1 bounds the timers Node honours and any count we would keep.
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 0x7fffffff) {
      throw new PosternError(ErrorCode.INVALID_OPTION, `option streams.${k} must be an integer in ${min}..2147483647`);
    }
    out[k] = v;
  }
  return Object.freeze(out) as unknown as ResolvedStreamOptions;
}
