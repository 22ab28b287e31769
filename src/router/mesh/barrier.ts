/**
 * [P-10.6-1] Flush barriers across links. An agent's PING after SENDs that went over links is
 * answered only once every one of those links has answered a PING of its own (so the PONG
 * means every earlier SEND was handled by the next router too). A {@link Barrier} is that
 * waiting PING; {@link BarrierTokens} is a link's side: the PINGs it sent, by token.
 */

/** What a barrier's owner (the agent's connection) does when one of its links answered. */
export interface BarrierOwner {
  /** Writes the PONGs whose barriers are done, in PING order. */
  pumpBarriers(): void;
}

/** A PING from an agent waiting for PONGs from the links its earlier SENDs took. */
export interface Barrier {
  readonly owner: BarrierOwner;
  readonly payload: Buffer;
  /** Links yet to answer. */
  left: number;
}

/** One link answered for `b` (or went away, which answers too). */
export function barrierDone(b: Barrier): void {
  b.left--;
  b.owner.pumpBarriers();
}

/** A link's barrier PINGs awaiting PONG, by the token sent as their payload. */
export class BarrierTokens {
  private readonly waiting = new Map<number, Barrier[]>();
  private next = 0;

  /** Registers `b` under a new token: returns the PING payload to send on the link. */
  issue(b: Barrier): Buffer {
    const token = (this.next = (this.next + 1) >>> 0);
    const list = this.waiting.get(token);
    if (list === undefined) this.waiting.set(token, [b]);
    else list.push(b);
    const p = Buffer.allocUnsafe(4);
    p.writeUInt32BE(token, 0);
    return p;
  }

  /** The PONG for `token` came: its barriers are answered (an unknown token is ignored). */
  answered(token: number): void {
    const list = this.waiting.get(token);
    if (list === undefined) return;
    this.waiting.delete(token);
    for (const b of list) barrierDone(b);
  }

  /** The link is lost and answers nothing more: every barrier waiting on it is let go, so flushes do not hang. */
  releaseAll(): void {
    const lists = [...this.waiting.values()];
    this.waiting.clear();
    for (const list of lists) for (const b of list) barrierDone(b);
  }
}

/** An agent's PINGs that wait on links: each answered by its PONG, in PING order, once its links have. */
export class PongQueue implements BarrierOwner {
  private readonly queue: Barrier[] = [];

  /** `pong`: queues the PONG carrying `payload` to the agent. */
  constructor(private readonly pong: (payload: Buffer) => void) {}

  /** True while a PING waits: a later PING must wait behind it. */
  get waiting(): boolean {
    return this.queue.length > 0;
  }

  /** Queues the PING with `payload`, waiting on `left` links (0: only on the PINGs before it). */
  add(payload: Buffer, left: number): Barrier {
    const b: Barrier = { owner: this, payload, left };
    this.queue.push(b);
    this.pumpBarriers();
    return b;
  }

  pumpBarriers(): void {
    const q = this.queue;
    while (q.length > 0 && q[0]!.left <= 0) this.pong(q.shift()!.payload);
  }
}
