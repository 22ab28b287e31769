import { encodePing, encodePong } from '../../protocol/encoder.js';
import { barrierDone, PongQueue, type Barrier } from '../mesh/barrier.js';
import { ConnState } from '../state.js';
import { ANY_ROLE, type FrameHandler, type HandlerConn } from './conn.js';

/**
 * PING and PONG. [P-8.1] A PING is answered with a PONG carrying its payload, except from
 * an agent whose SENDs went over links since its last PING: that PONG waits until each of
 * those links answered a PING of this router's own (a flush barrier), and later PINGs wait
 * behind it. [P-10.6-1] A PONG on a link answers such a barrier PING.
 */

export const ping: FrameHandler = {
  roles: ANY_ROLE,
  handle(c, buf, start, end) {
    const payload = buf.subarray(start + 6, end);
    if (c.linksUsed !== null && c.linksUsed.size > 0) barrier(c, payload);
    else if (c.pongs !== null && c.pongs.waiting) c.pongs.add(Buffer.from(payload), 0);
    else c.writer.reply(encodePong(payload));
  },
};

export const pong: FrameHandler = {
  roles: ANY_ROLE,
  handle(c, buf, start, end) {
    if (c.tokens !== null && end - start === 10) c.tokens.answered(buf.readUInt32BE(start + 6));
  },
};

/** A PING from an agent whose SENDs went over links: PONG only after each link answers. */
function barrier(c: HandlerConn, payload: Buffer): void {
  const links = c.linksUsed!;
  c.linksUsed = null;
  const pongs = (c.pongs ??= new PongQueue((p) => c.writer.reply(encodePong(p))));
  const b = pongs.add(Buffer.from(payload), links.size);
  for (const l of links) sendBarrier(l, b);
}

/** On a link: a PING whose PONG means every earlier frame on this link was handled. */
function sendBarrier(link: HandlerConn, b: Barrier): void {
  if (link.state !== ConnState.OPEN || link.tokens === null) {
    barrierDone(b);
    return;
  }
  link.writer.reply(encodePing(link.tokens.issue(b)));
}
