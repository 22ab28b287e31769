import type { Clock } from '../net/clock.js';
import type { Logger } from '../net/log.js';
import type { ControlCodec, RouteErrorFrame } from '../protocol/control.js';
import type { ResolvedRouterOptions } from './options.js';
import type { Registry } from './registry.js';
import type { RouterStats } from './stats.js';

/**
 * Interfaces only: what a connection needs from its router and from the mesh. `C` is the
 * connection type, so this file names no implementation and nothing imports in a circle
 * (connection -> context, mesh -> context, router -> all three).
 */

/** What a connection needs of the mesh: the link towards a router, and link events. */
export interface MeshRoutes<C> {
  /** The link to carry SENDs for agents of `routerId`, if one is up. */
  linkFor(routerId: number): C | undefined;
  onLinkUp(conn: C): void;
  onLinkDown(conn: C): void;
  /** [P-10.5] An error for a forwarded SEND: to its sender if local, else on toward its router. */
  routeError(e: RouteErrorFrame, frame: Buffer): void;
  /** This router process's instance tag, sent in the link handshake. [P-10.3] */
  readonly instance: Buffer;
  /** An up link to another router announcing `routerId` under another instance tag. [P-10.3] */
  duplicateOf(routerId: number, instance: Buffer | undefined): C | undefined;
}

/** What a connection needs from its router: a narrow interface, so connections test alone. */
export interface RouterContext<C> {
  readonly options: ResolvedRouterOptions;
  readonly clock: Clock;
  readonly log: Logger;
  readonly codec: ControlCodec;
  readonly registry: Registry<C>;
  readonly stats: RouterStats;
  /** True once close() or drain() began: lost agents are no longer parked. */
  readonly closing: boolean;
  readonly mesh: MeshRoutes<C>;
  /** The mesh secret as bytes (empty when none). */
  readonly meshSecret: Buffer;
  /**
   * [P-12.8] Changes `conn`'s share of the bytes reserved for incomplete frames by `delta`
   * (its frame is now `held` bytes); false, changing nothing, when it does not fit.
   */
  reservePartial(conn: C, delta: number, held: number): boolean;
  onRegistered(conn: C): void;
  /** Asks for `conn.writePending()` once this event-loop turn's reads are done. */
  schedule(conn: C): void;
  /** True when `token` (REGISTER's `token`) passes admission (always, when no tokens are configured). */
  admits(token: unknown): boolean;
  /** Takes one registration from `address`'s bucket; false when it is empty. */
  registrationAllowed(address: string): boolean;
  /** The resume token for `id`. [P-12.3] */
  resumeToken(id: Uint8Array): Buffer;
  /** True while a restarted router still accepts resume tokens for IDs it has no record of. */
  inRestartWindow(): boolean;
  /** A parked stand-in for `id` (see RouterConnection.placeholder), or undefined past the cap. */
  placeholder(id: Uint8Array): C | undefined;
  /** A stand-in was resumed or expired. */
  placeholderGone(): void;
  /** Refuses a SEND after the fact: tells its sender `replyTo` (an ID or handle, here or across the mesh) that SEND `seq` to `dest` failed. */
  refuseTo(replyTo: Buffer, code: number, seq: number, dest: Buffer): void;
  onClosed(conn: C): void;
}
