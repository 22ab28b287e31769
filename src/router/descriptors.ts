import type { Clock } from '../net/clock.js';
import { connectionsWithin, readFdLimit } from '../net/fd-limit.js';
import type { Logger } from '../net/log.js';
import { WireCode } from '../protocol/frame.js';
import { ConnState, type RouterConnection } from './connection.js';
import type { RouterStats } from './stats.js';

/** Ms between two log lines about running out of file descriptors (the count in between is in the line). */
const FD_LOG_INTERVAL = 10_000;

/**
 * File descriptors as a router-wide budget. libuv answers EMFILE by accepting and closing
 * what waits, silently (its spare descriptor trick), so the router counts its own
 * descriptors and makes room before the process runs out: the oldest connections that have
 * not registered are closed first (agents that did register are worth more than strangers
 * still in their handshake), and running out is logged once per interval with the count.
 */
export class Descriptors {
  /** The descriptor limit read at start (null when unknown). */
  readonly limit: number | null = readFdLimit();
  /** Connections the router may hold before descriptors run out. */
  readonly room: number = this.limit === null ? Infinity : connectionsWithin(this.limit);
  /** Connections closed for room that have not left the router's set yet. */
  readonly evicted = new Set<RouterConnection>();
  /** Sockets turned away at the door that still hold a descriptor. */
  refusing = 0;
  // Accepts failed for lack of descriptors since the last log line about it, why, and when that line was.
  private missed = 0;
  private cause = '';
  private loggedAt = -Infinity;

  constructor(private readonly host: { readonly stats: RouterStats; readonly log: Logger; readonly clock: Clock }) {}

  /** True when `conns` open connections leave no descriptor for one more. */
  full(conns: number): boolean {
    return conns - this.evicted.size + this.refusing >= this.room;
  }

  /**
   * accept() failed (or would) for lack of descriptors: counted, logged, and the oldest
   * unregistered connections of `conns` are closed to make room. False when none could be.
   */
  exhausted(cause: string, conns: Set<RouterConnection>): boolean {
    this.host.stats.fdExhausted++;
    this.missed++;
    this.cause = cause;
    this.log(conns.size);
    // About 1.5 % of the connections, at least 8, per batch: enough for a burst of
    // newcomers, not a purge, and the scan runs once per batch rather than per accept.
    let n = Math.max(8, conns.size >> 6);
    let freed = 0;
    // A Set iterates in insertion order: accept order, oldest first.
    for (const c of conns) {
      if (c.kind === '' && !c.dialled && c.state < ConnState.CLOSING) {
        // It leaves `conns` on its stream's 'close', a turn later; its descriptor goes now.
        this.evicted.add(c);
        c.evict(WireCode.TOO_MANY_CONNECTIONS, 'out of file descriptors');
        freed++;
        if (--n === 0) break;
      }
    }
    return freed > 0;
  }

  /** Writes the log line for failed accepts since the last one, at most once per interval. */
  log(connections: number): void {
    const now = this.host.clock.now();
    if (this.missed === 0 || now - this.loggedAt < FD_LOG_INTERVAL) return;
    this.host.log.error('out of file descriptors: closing the oldest unregistered connections', {
      cause: this.cause,
      count: this.missed,
      connections,
      fdLimit: this.limit ?? undefined,
    });
    this.missed = 0;
    this.loggedAt = now;
  }
}
