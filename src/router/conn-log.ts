import { routerHex } from '../protocol/id.js';

import type { Logger } from '../net/log.js';

/** How logs name a connection that ended without CLOSE: POSTERN_ERR_CONNECTION_LOST without its prefix, like the wire-code names. */
const LOST = 'CONNECTION_LOST';

/** What logs read of a connection to say who it is. */
export interface Described {
  readonly kind: '' | 'agent' | 'link';
  readonly dialled: boolean;
  readonly idText: string;
  readonly remote: string | undefined;
  readonly hs: { readonly peer: { readonly router: number } | null } | null;
  readonly link: { readonly peerRouter: number } | null;
}

/** A router link, up or in its handshake. */
export function isLink(c: Described): boolean {
  return c.kind === 'link' || c.dialled || c.hs !== null;
}

/** Who `c` is, for logs: an agent by its ID, a link by its peer's router ID in hex (and its address). */
export function logId(c: Described): Record<string, string | undefined> {
  if (!isLink(c)) return { agent: c.idText || undefined };
  const router = c.link !== null ? c.link.peerRouter : (c.hs?.peer?.router ?? 0);
  return { router: router !== 0 ? routerHex(router) : undefined, remote: c.remote };
}

/** Logs that the TCP connection of `c` ended without a CLOSE. */
export function logLost(c: Described & { readonly ctx: { readonly log: Logger } }): void {
  // Close codes in logs are wire-code names; this one has none on the wire (§7.3).
  c.ctx.log.info(isLink(c) ? 'link lost' : 'agent disconnected', { ...logId(c), code: LOST });
}
