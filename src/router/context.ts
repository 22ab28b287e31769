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
  readonly mesh: Mesh;
  /** The mesh secret as bytes (empty when none). */
  readonly meshSecret: Buffer;
  onRegistered(conn: RouterConnection): void;
  onClosed(conn: RouterConnection): void;
}
