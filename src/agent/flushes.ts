/**
 * The agent's pending `flush()`es: each is a PING whose payload is a tag and a number, settled
 * by the PONG that echoes it. [P-6.5] The router answers one connection in order, so that PONG
 * comes after every earlier SEND was routed or refused.
 *
 * @module
 */

/** How a pending flush is settled. */
export interface Deferred {
  resolve(): void;
  reject(err: unknown): void;
}

const FLUSH_TAG = 0x66; // 'f'

/** The pending flushes of one agent, across its connections. */
export class Flushes {
  private readonly pending = new Map<number, Deferred>();
  private seq = 0;

  /** Registers a flush settled by `d`; returns the PING payload to send for it. */
  add(d: Deferred): Buffer {
    this.seq = (this.seq + 1) >>> 0;
    this.pending.set(this.seq, d);
    const payload = Buffer.allocUnsafe(5);
    payload[0] = FLUSH_TAG;
    payload.writeUInt32BE(this.seq, 1);
    return payload;
  }

  /** Resolves the flush a PONG answers; a PONG that answers none is ignored. */
  onPong(payload: Buffer): void {
    if (payload.length !== 5 || payload[0] !== FLUSH_TAG) return;
    const n = payload.readUInt32BE(1);
    const d = this.pending.get(n);
    if (d === undefined) return;
    this.pending.delete(n);
    d.resolve();
  }

  /** Rejects every pending flush. */
  failAll(err: unknown): void {
    const ds = [...this.pending.values()];
    this.pending.clear();
    for (const d of ds) d.reject(err);
  }
}
