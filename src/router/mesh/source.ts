import { Flag, HEADER_SIZE, ID_SIZE } from '../../protocol/frame.js';
import { writeSource } from '../../protocol/encoder.js';

/**
 * A router link's SOURCE state. [P-10.4] SENDs on a link carry no sender: the last SOURCE
 * frame names the sender of every SEND after it. A link keeps both directions:
 *
 * - reading: the sender the peer named last (`sender`, its hops and flags), and `version`,
 *   bumped by every SOURCE, so runs routed onward over another link name it again;
 * - writing: whose SOURCE the peer holds now (`heldBy` at its `heldVersion`), so a run from
 *   the sender the peer already holds goes without another SOURCE;
 *
 * and the peer router's ID and maxFrame from the handshake. `S` is the sender type (the
 * connection). An agent's connection has none of this (its `link` field is null).
 */
export class LinkSource<S> {
  /** The sender named by the peer's last SOURCE frame. */
  readonly sender = Buffer.alloc(ID_SIZE);
  /** `sender` as four little-endian int32 words, for the relay's SEND -> DELIVER rewrite. */
  readonly senderWords = new Int32Array(4);
  /** Links the sender's messages crossed before this one. */
  hops = 0;
  /** The SOURCE's flags: ANONYMOUS when the sender is a reply handle. */
  flags = 0;
  /** Bumped by every SOURCE frame read. */
  version = 0;
  /** The sender the peer holds as its SOURCE now, and that sender's `version` then. */
  heldBy: S | null = null;
  heldVersion = 0;

  constructor(
    /** The peer router's ID. */
    readonly peerRouter: number,
    /** The largest frame the peer router accepts. */
    readonly peerMaxFrame: number,
  ) {}

  /** Takes the SOURCE frame at `start` (its size already checked) as the sender of what follows. */
  read(buf: Buffer, start: number): void {
    const at = start + HEADER_SIZE;
    this.version++;
    buf.copy(this.sender, 0, at, at + ID_SIZE);
    const w = this.senderWords;
    w[0] = this.sender.readInt32LE(0);
    w[1] = this.sender.readInt32LE(4);
    w[2] = this.sender.readInt32LE(8);
    w[3] = this.sender.readInt32LE(12);
    this.hops = buf[at + ID_SIZE]!;
    this.flags = buf[start + 5]! & Flag.ANONYMOUS;
  }
}

/**
 * Writes, at `offset` of `out`, the SOURCE frame naming a sender for the next router: an
 * agent by its own ID (`id`, one hop), or the sender a link's peer named, one hop further.
 */
export function writeSenderSource(out: Buffer, offset: number, id: Buffer, link: LinkSource<unknown> | null): void {
  if (link !== null) writeSource(out, offset, link.sender, link.hops + 1, link.flags);
  else writeSource(out, offset, id, 1);
}
