import { ID_SIZE } from '../protocol/frame.js';
import { randomBytes } from 'node:crypto';
import { idEquals } from '../protocol/id.js';

/** What the registry stores: a 16-byte ID and the connection it routes to. */
export interface Registered<C = unknown> {
  readonly id: Buffer;
  /**
   * The connection messages for `id` go to (the agent itself, or the owner of a reply
   * handle); null for a parked ID (see parked.ts), which holds them instead.
   */
  readonly conn: C | null;
}

/** A reply handle: an ID that routes to an anonymous sender's connection while it lives. [P-11.2] */
export class Handle<C> implements Registered<C> {
  constructor(
    readonly id: Buffer,
    readonly conn: C,
  ) {}
}

/**
 * Live agents by ID. The key is 30 bits of the ID's random part, so lookups straight from
 * a frame's bytes allocate nothing (the key is a small integer); the full 16 bytes are then
 * compared. [P-6.2-1]
 */
export class Registry<C> {
  private readonly map = new Map<number, Registered<C> | Array<Registered<C>>>();
  private count = 0;

  /** Number of registered entries. */
  get size(): number {
    return this.count;
  }

  /** Finds the entry whose ID is the 16 bytes at `buf[off..off+16]`. */
  lookup(buf: Uint8Array, off: number): Registered<C> | undefined {
    const e = this.map.get(keyOf(buf, off));
    if (e === undefined) return undefined;
    if (!Array.isArray(e)) return idEquals(e.id, 0, buf, off) ? e : undefined;
    for (const x of e) if (idEquals(x.id, 0, buf, off)) return x;
    return undefined;
  }

  /** A fresh ID for `routerId`, distinct from every live one. [P-5.3] */
  newId(routerId: number): Buffer {
    // The same pool as reply handles: a registration flood otherwise pays one CSPRNG call
    // (a few µs of native crossing) per connection.
    return this.newHandleId(routerId);
  }

  // Reply handles are made per message, and IDs per registration (floods included), so their
  // randomness comes from a pool refilled 4 KiB at a time rather than one CSPRNG call each.
  private pool = Buffer.alloc(0);
  private poolOff = 0;

  /** A fresh reply-handle ID for `routerId` (same layout as an agent ID), distinct from every live one. */
  newHandleId(routerId: number): Buffer {
    for (;;) {
      if (this.poolOff + 12 > this.pool.length) {
        this.pool = randomBytes(4096);
        this.poolOff = 0;
      }
      const id = Buffer.allocUnsafe(ID_SIZE);
      id.writeUInt32BE(routerId, 0);
      this.pool.copy(id, 4, this.poolOff, this.poolOff + 12);
      this.poolOff += 12;
      if (this.lookup(id, 0) === undefined) return id;
    }
  }

  /** Adds `entry` under its ID. */
  add(entry: Registered<C>): void {
    const k = keyOf(entry.id, 0);
    const e = this.map.get(k);
    if (e === undefined) this.map.set(k, entry);
    else if (Array.isArray(e)) e.push(entry);
    else this.map.set(k, [e, entry]);
    this.count++;
  }

  /** Removes `entry`; a no-op when it is not there. */
  delete(entry: Registered<C>): void {
    const k = keyOf(entry.id, 0);
    const e = this.map.get(k);
    if (e === entry) {
      this.map.delete(k);
      this.count--;
    } else if (Array.isArray(e)) {
      const i = e.indexOf(entry);
      if (i < 0) return;
      e.splice(i, 1);
      if (e.length === 1) this.map.set(k, e[0]!);
      this.count--;
    }
  }

  /** Every entry. */
  *values(): IterableIterator<Registered<C>> {
    for (const e of this.map.values()) {
      if (Array.isArray(e)) yield* e;
      else yield e;
    }
  }
}

function keyOf(b: Uint8Array, off: number): number {
  return ((b[off + 12]! & 0x3f) << 24) | (b[off + 13]! << 16) | (b[off + 14]! << 8) | b[off + 15]!;
}
