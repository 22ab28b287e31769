import { FrameType, WireCode } from '../../protocol/frame.js';
import { close } from './close.js';
import { roleOf, type FrameHandler, type HandlerConn } from './conn.js';
import { linkAuth, linkChallenge, linkHello, linkReady, routeError, source } from './link.js';
import { lookup, lookupResult } from './lookup.js';
import { ping, pong } from './ping.js';
import { register, sendUnregistered } from './register.js';

export { roleOf, type HandlerConn };

/**
 * The router's frame handlers, by frame type, one file per concern (as aedes'
 * lib/handlers/). The relay's SENDs on an open connection never come here: they go to the
 * connection's Forwarder. A type missing here (REGISTERED, DELIVER, ERROR are router-to-
 * agent only), or arriving in a role its handler does not list, closes the connection
 * with MALFORMED. [P-3.4] [P-10.1]
 */
export const HANDLERS: ReadonlyArray<FrameHandler | undefined> = (() => {
  const table = new Array<FrameHandler | undefined>(256).fill(undefined);
  table[FrameType.PING] = ping;
  table[FrameType.PONG] = pong;
  table[FrameType.CLOSE] = close;
  table[FrameType.REGISTER] = register;
  table[FrameType.SEND] = sendUnregistered;
  table[FrameType.LOOKUP] = lookup;
  table[FrameType.LOOKUP_RESULT] = lookupResult;
  table[FrameType.LINK_HELLO] = linkHello;
  table[FrameType.LINK_CHALLENGE] = linkChallenge;
  table[FrameType.LINK_AUTH] = linkAuth;
  table[FrameType.LINK_READY] = linkReady;
  table[FrameType.SOURCE] = source;
  table[FrameType.ROUTE_ERROR] = routeError;
  return table;
})();

/** Hands the frame at `start` to its handler when it is allowed where `c` is; else closes `c`. */
export function dispatch(c: HandlerConn, buf: Buffer, start: number, end: number): void {
  const type = buf[start + 4]!;
  const h = HANDLERS[type];
  if (h !== undefined && (h.roles & roleOf(c)) !== 0) {
    h.handle(c, buf, start, end);
    return;
  }
  // REGISTERED, DELIVER, ERROR are router-to-agent only; link frames belong on links. [P-3.4] [P-10.1]
  c.close(WireCode.MALFORMED, `frame type 0x${type.toString(16).padStart(2, '0')} is not allowed here`);
}
