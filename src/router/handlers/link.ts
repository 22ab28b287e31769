import { readRouteError } from '../../protocol/control.js';
import { MAX_MAX_FRAME } from '../../protocol/frame.js';
import { BarrierTokens } from '../mesh/barrier.js';
import { LinkHandshake } from '../mesh/link.js';
import { LinkSource } from '../mesh/source.js';
import { Role, type FrameHandler, type HandlerConn } from './conn.js';

/**
 * A router link's frames [P-10.2] [P-10.4] [P-10.5]: the four handshake steps (each allowed
 * only at its step, on the side that expects it), then SOURCE and ROUTE_ERROR on a link that
 * is up. The handshake itself is mesh/link.ts; the connection becomes a link in {@link linkUp}.
 */

export const linkHello: FrameHandler = {
  roles: Role.NEW,
  handle(c, buf, start, end) {
    c.hs = LinkHandshake.accept(c.ctx, c, buf, start, end);
  },
};

export const linkChallenge: FrameHandler = {
  roles: Role.DIALLING,
  handle(c, buf, start, end) {
    c.hs!.challenge(buf, start, end);
  },
};

export const linkAuth: FrameHandler = {
  roles: Role.ACCEPTING,
  handle(c, buf, start, end) {
    if (c.hs!.auth(buf, start, end)) linkUp(c);
  },
};

export const linkReady: FrameHandler = {
  roles: Role.DIAL_AUTHED,
  handle(c) {
    if (c.hs!.ready()) linkUp(c);
  },
};

export const source: FrameHandler = {
  roles: Role.LINK,
  handle(c, buf, start) {
    // Runs gathered so far were rewritten (or given their SOURCE) already.
    c.link!.read(buf, start);
  },
};

export const routeError: FrameHandler = {
  roles: Role.LINK,
  handle(c, buf, start, end) {
    c.ctx.mesh.routeError(readRouteError(buf, start, end), buf.subarray(start, end));
  },
};

/** The handshake succeeded: from now on `c` is a link to the router it names. */
function linkUp(c: HandlerConn): void {
  const peer = c.hs!.peer!;
  c.hs = null;
  c.out.mergeSenders = false;
  c.link = new LinkSource(peer.router, peer.maxFrame);
  c.peerInstance = peer.instance ?? null;
  // A peer forwards SENDs up to its own maxFrame; refuse to deliver more than ours later.
  c.open('link', Math.min(MAX_MAX_FRAME, Math.max(peer.maxFrame, c.ctx.options.maxFrame)));
  c.tokens = new BarrierTokens();
  c.ctx.mesh.onLinkUp(c);
}
