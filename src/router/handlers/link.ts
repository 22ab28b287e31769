import { readRouteError } from '../../protocol/control.js';
import { LinkHandshake } from '../mesh/link.js';
import { Role, type FrameHandler } from './conn.js';

/**
 * A router link's frames [P-10.2] [P-10.4] [P-10.5]: the four handshake steps (each allowed
 * only at its step, on the side that expects it), then SOURCE and ROUTE_ERROR on a link that
 * is up. The handshake itself is mesh/link.ts; the connection becomes a link in linkUp().
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
    if (c.hs!.auth(buf, start, end)) c.linkUp();
  },
};

export const linkReady: FrameHandler = {
  roles: Role.DIAL_AUTHED,
  handle(c) {
    if (c.hs!.ready()) c.linkUp();
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
