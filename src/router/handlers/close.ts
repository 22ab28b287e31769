import { WIRE_CODE_NAMES, WireCode } from '../../protocol/frame.js';
import { isLink, logId } from '../conn-log.js';
import { ANY_ROLE, type FrameHandler } from './conn.js';

/** CLOSE from the peer [P-9.2]: logged with its code and (at most 256 bytes of) reason, then the connection ends. */
export const close: FrameHandler = {
  roles: ANY_ROLE,
  handle(c, buf, start, end) {
    const code = buf.readUInt16BE(start + 6);
    const reason = buf.toString('utf8', start + 8, Math.min(end, start + 8 + 256));
    if (isLink(c)) {
      // A refused link is a configuration error an operator must see. [P-10.3]
      const refused = code === WireCode.DUPLICATE_ROUTER_ID || code === WireCode.LINK_AUTH_FAILED;
      c.ctx.log[refused ? 'error' : 'info']('link closed by peer', { ...logId(c), code: WIRE_CODE_NAMES[code] ?? code, reason: reason || undefined });
    } else {
      c.ctx.log.info('agent closed', { agent: c.idText || undefined, code: WIRE_CODE_NAMES[code] ?? code, reason: reason || undefined });
    }
    c.closedByPeer(code);
  },
};
