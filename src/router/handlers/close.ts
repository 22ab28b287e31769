import { ANY_ROLE, type FrameHandler } from './conn.js';

/** CLOSE from the peer [P-9.2]: its code and (at most 256 bytes of) reason, to the connection. */
export const close: FrameHandler = {
  roles: ANY_ROLE,
  handle(c, buf, start, end) {
    c.closedByPeer(buf.readUInt16BE(start + 6), buf.toString('utf8', start + 8, Math.min(end, start + 8 + 256)));
  },
};
