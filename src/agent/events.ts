import type { Stream } from '../stream/stream.js';
import type { PosternError } from '../protocol/errors.js';
import type { Message, RejectedMessage } from './message.js';

/**
 * The agent's public event and status types: what `status()` yields and what an
 * {@link Agent} emits.
 *
 * @module
 */

/** What the router announced in REGISTERED, for the current (or last) connection. */
export interface RouterInfo {
  /** The router's ID (also the first 8 hex digits of `agent.id`). */
  readonly routerId: number;
  /** Largest frame, length field included, in bytes. */
  readonly maxFrame: number;
  /** Largest `send()` payload: `maxFrame - 26`, in bytes. */
  readonly maxPayload: number;
  /** Keepalive interval, in ms. */
  readonly keepalive: number;
  /** Silence after which the connection is dropped, in ms. */
  readonly timeout: number;
}

/**
 * Connection status. The sequence for a lost connection is `disconnected`, then
 * `reconnecting` / `connecting` per attempt, then `registered` (or `closed` when the agent
 * gives up).
 */
export type Status =
  /** A connection attempt starts (attempt 1 is the first connect, or the first retry). */
  | { readonly type: 'connecting'; readonly attempt: number }
  /** Registered; `id` is the agent ID: the old one when `resumed`, else a new one. */
  | { readonly type: 'registered'; readonly id: string; readonly router: RouterInfo; readonly resumed: boolean }
  /** The connection was lost; `error` says why (its code is the CLOSE code when the router sent one). */
  | { readonly type: 'disconnected'; readonly error: PosternError }
  /** Waiting `delayMs` before reconnect attempt `attempt`; `error` is why the previous connection or attempt failed. */
  | { readonly type: 'reconnecting'; readonly attempt: number; readonly delayMs: number; readonly error: PosternError }
  /** The agent is closed for good: `error` is undefined after `close()`, else why it gave up. */
  | { readonly type: 'closed'; readonly error: PosternError | undefined };

/** A `status()` iterator. */
export interface StatusIterator extends AsyncIterableIterator<Status, undefined> {
  /** Events dropped because this consumer lagged more than `maxStatusQueue` events behind. */
  readonly dropped: number;
}

/**
 * Events of an `Agent`. The agent never emits `'error'`, so an unhandled event never
 * throws: errors about one message go to `'undeliverable'`, other non-fatal ones to
 * `'warning'`, and connection-ending ones to the `'status'` stream and `closed()`.
 */
export interface AgentEvents {
  /** A message; attaching a listener switches delivery from the iterator to events (see `Agent.messages()`). */
  message: [Message];
  /** The router answered a SEND with ERROR: `code`, `seq` (what `send()` returned) and `to`. */
  undeliverable: [PosternError];
  /** An ERROR frame that refers to no SEND (seq 0), e.g. POSTERN_ERR_ALREADY_REGISTERED. */
  warning: [PosternError];
  /**
   * A sealed message whose envelope did not open with this agent's key pair; it is not
   * delivered. Emitted in message order (after every message received before it was
   * delivered), and counted in `agent.rejected`.
   */
  rejected: [RejectedMessage];
  /** Every status change, as also yielded by `status()`. */
  status: [Status];
  /** The send buffer drained after `writable` went false. */
  drain: [];
  /** A peer opened a stream (PROTOCOL.md §14); without a listener, OPENs are refused. */
  stream: [Stream];
}
