import type { Clock } from '../net/clock.js';
import type { Logger } from '../net/log.js';
import type { ControlCodec } from '../protocol/control.js';
import type { RouterConnection } from './connection.js';
import type { ResolvedRouterOptions } from './options.js';
import type { Registry } from './registry.js';
import type { RouterStats } from './stats.js';
import type { Mesh } from './mesh/mesh.js';

/** What a connection needs from its router: a narrow interface, so connections test alone. */
export interface RouterContext {
  readonly options: ResolvedRouterOptions;
  readonly clock: Clock;
  readonly log: Logger;
  readonly codec: ControlCodec;
  readonly registry: Registry<RouterConnection>;
  readonly stats: RouterStats;
  /** True once close() or drain() began: lost agents are no longer parked. */
  readonly closing: boolean;
  readonly mesh: Mesh;
  /** The mesh secret as bytes (empty when none). */
  readonly meshSecret: Buffer;
  /**
   * [P-12.8] Changes `conn`'s share of the bytes reserved for incomplete frames by `delta`
   * (its frame is now `held` bytes); false, changing nothing, when it does not fit.
   */
  reservePartial(conn: RouterConnection, delta: number, held: number): boolean;
  onRegistered(conn: RouterConnection): void;
  /** Asks for `conn.writePending()` once this event-loop turn's reads are done. */
  schedule(conn: RouterConnection): void;
  /** True when `token` (REGISTER's `token`) passes admission (always, when no tokens are configured). */
  admits(token: unknown): boolean;
  /** Takes one registration from `address`'s bucket; false when it is empty. */
  registrationAllowed(address: string): boolean;
  /** The resume token for `id`. [P-12.3] */
  resumeToken(id: Uint8Array): Buffer;
  /** True while a restarted router still accepts resume tokens for IDs it has no record of. */
  inRestartWindow(): boolean;
  /** A parked stand-in for `id` (see RouterConnection.placeholder), or undefined past the cap. */
  placeholder(id: Uint8Array): RouterConnection | undefined;
  /** A stand-in was resumed or expired. */
  placeholderGone(): void;
  /** Tells the sender `replyTo` (an ID or handle, here or across the mesh) that its SEND `seq` to `dest` failed. */
  report(replyTo: Buffer, code: number, seq: number, dest: Buffer): void;
  onClosed(conn: RouterConnection): void;
}
