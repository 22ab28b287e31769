import type { ConnState } from '../state.js';
import type { LinkSource } from '../mesh/source.js';
import type { Outbox } from './outbox.js';
import type { Backpressure } from './backpressure.js';
import type { Registered } from '../registry.js';

/**
 * What the relay needs of a connection, as a sender and as a destination. The router's
 * connection implements it; the relay names no implementation, so the relay and the
 * connection do not import each other.
 *
 * On the hot path a destination is read for `state`, `kind`, `idWords`, `link` and `out` only,
 * and every destination is the same class: one object shape.
 */
export interface RelayPeer extends Registered<RelayPeer> {
  readonly state: ConnState;
  readonly kind: '' | 'agent' | 'link';
  /** The agent's ID (all zeros for anonymous connections and links). */
  readonly id: Buffer;
  /** `id` as four little-endian int32 words, compared and written without a loop. */
  readonly idWords: Int32Array;
  readonly anonymous: boolean;
  /** A router link's SOURCE state and peer (null for agents). */
  readonly link: LinkSource<RelayPeer> | null;
  /** What the relay gathered for this connection this turn. */
  readonly out: Outbox<RelayPeer>;
  /** Who waits on whom when queues are full. */
  readonly flow: Backpressure<RelayPeer>;
  /** Frames read, for per-link reporting. */
  framesIn: number;
  /** Tells this connection's sender that its SEND `seq` to `dest` failed. [P-7.1] [P-10.5] */
  refuse(code: number, seq: number, dest: Uint8Array, src: Buffer | null): void;
  /** Notes that this agent's SENDs went over `link`. [P-10.6-1] */
  usedLink(link: RelayPeer): void;
  /** The reply handles of this connection, made at first use. [P-11.3] */
  handles(): { next(): Buffer; stickyId(): Buffer };
}
