import { encodeClose, encodePreamble } from '../protocol/encoder.js';
import { ErrorCode } from '../protocol/errors.js';
import { PROTOCOL_VERSION, WIRE_CODE_NAMES, WireCode } from '../protocol/frame.js';
import type { Logger } from '../net/log.js';
import { countCode, type RouterStats } from './stats.js';

/**
 * [P-2.2] What a peer that does not speak postern is told. The replies are built once, so
 * a flood of strangers allocates nothing per reply; they are shared by every connection
 * that writes them and never written to.
 */

const STRANGER_BODY = `This port speaks the postern protocol, not HTTP (${ErrorCode.BAD_MAGIC}). See PROTOCOL.md.\n`;
const HTTP_REFUSAL = Buffer.from(
  `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(STRANGER_BODY)}\r\nConnection: close\r\n\r\n${STRANGER_BODY}`,
);
const CLOSE = encodeClose(WireCode.BAD_MAGIC, 'not a postern peer');
const PREAMBLE_AND_CLOSE = Buffer.concat([encodePreamble(PROTOCOL_VERSION), CLOSE]);

/**
 * Counts and logs a stranger at `remote`, and returns the bytes that turn it away, by the
 * first byte it sent: an HTTP 400 for what looks like an HTTP request (an upper-case
 * method), else CLOSE(BAD_MAGIC), after our preamble when the peer has not had it yet
 * (`preambleSent`), so it can parse the CLOSE. [P-2.3]
 */
export function rejectStranger(ctx: { readonly stats: RouterStats; readonly log: Logger }, remote: string | undefined, firstByte: number, preambleSent: boolean): Buffer {
  countCode(ctx.stats.closes, WireCode.BAD_MAGIC);
  ctx.log.warn('not a postern client', { remote, code: WIRE_CODE_NAMES[WireCode.BAD_MAGIC] });
  if (firstByte >= 0x41 && firstByte <= 0x5a) return HTTP_REFUSAL;
  return preambleSent ? CLOSE : PREAMBLE_AND_CLOSE;
}
