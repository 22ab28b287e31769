import { WireCode } from '../protocol/frame.js';
import { routerIdOf } from '../protocol/id.js';
import type { LookupBody, LookupResultBody } from '../protocol/control.js';
import type { RouterContext } from './context.js';
import { Parked } from './parked.js';

/** What the key directory needs of the connection a LOOKUP came on. */
export interface KeyAsker<C> {
  readonly kind: '' | 'agent' | 'link';
  readonly anonymous: boolean;
  readonly id: Buffer;
  /** The X25519 key the agent registered, if any. */
  readonly publicKey: Buffer | null;
  refuse(code: number, seq: number, dest: Uint8Array, src: Buffer | null): void;
  /** Queues replies for this connection. */
  readonly writer: { replyChunks(chunks: Buffer[]): void };
  close(code: number, reason: string): void;
  /** The reply handles routed to this (anonymous) connection. [P-11.3] */
  handles(): { next(): Buffer };
  /** Notes that this connection's requests went over `link`, for its next flush barrier. [P-10.6-1] */
  usedLink(link: C): void;
}

/**
 * [P-11.4] Answers a LOOKUP (already decoded) from `asker`: the key of an agent of this
 * router (a parked one's too), or the request forwarded over the link to the ID's router,
 * asking for the answer to come back to the asker's ID (a reply handle when anonymous).
 * On a link the LOOKUP names the asker in `from`, and is never forwarded again.
 */
export function answerLookup<C extends KeyAsker<C>>(ctx: RouterContext<C>, asker: C, q: LookupBody): void {
  const link = asker.kind === 'link';
  if (link && q.from === undefined) {
    asker.close(WireCode.MALFORMED, 'LOOKUP on a router link needs from');
    return;
  }
  const from = link ? Buffer.from(q.from!) : null;
  const rid = routerIdOf(q.id);
  if (rid !== ctx.options.routerId) {
    const next = link ? undefined : ctx.mesh.linkFor(rid);
    if (next === undefined) {
      asker.refuse(WireCode.UNREACHABLE_ROUTER, q.ref, q.id, from);
      return;
    }
    next.writer.replyChunks(ctx.codec.encodeLookup({ ref: q.ref, id: q.id, from: asker.anonymous ? asker.handles().next() : asker.id }));
    asker.usedLink(next);
    return;
  }
  const entry = ctx.registry.lookup(q.id, 0);
  // A parked agent's key is still answered; a reply handle has none to give.
  const agent = entry === undefined ? null : entry instanceof Parked ? entry : entry.conn !== null && entry.conn.id === entry.id ? entry.conn : null;
  if (agent === null) {
    asker.refuse(WireCode.UNKNOWN_DESTINATION, q.ref, q.id, from);
    return;
  }
  const key = agent.publicKey;
  if (key === null) {
    asker.refuse(WireCode.NO_KEY, q.ref, q.id, from);
    return;
  }
  asker.writer.replyChunks(ctx.codec.encodeLookupResult({ ref: q.ref, id: q.id, key, ...(from !== null ? { to: from } : {}) }));
}

/** A LOOKUP_RESULT come back over a link: to the agent that asked, if it is still here. */
export function passLookupResult<C extends KeyAsker<C>>(ctx: RouterContext<C>, r: LookupResultBody): void {
  const to = r.to === undefined ? undefined : ctx.registry.lookup(r.to, 0);
  if (to === undefined || to.conn === null) return; // the asker is gone
  to.conn.writer.replyChunks(ctx.codec.encodeLookupResult({ ref: r.ref, id: r.id, key: r.key }));
}
