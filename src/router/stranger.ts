import { encodeClose, encodePreamble } from '../protocol/encoder.js';
import { ErrorCode } from '../protocol/errors.js';
import { PROTOCOL_VERSION, WireCode } from '../protocol/frame.js';

/**
 * [P-2.2] What a peer that does not speak postern is told, built once, so a flood of
 * strangers allocates nothing per reply. Shared by every connection that writes them;
 * never written to.
 */

const STRANGER_BODY = `This port speaks the postern protocol, not HTTP (${ErrorCode.BAD_MAGIC}). See PROTOCOL.md.\n`;
const HTTP_REFUSAL = Buffer.from(
  `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(STRANGER_BODY)}\r\nConnection: close\r\n\r\n${STRANGER_BODY}`,
);
const STRANGER_CLOSE = Buffer.concat([encodePreamble(PROTOCOL_VERSION), encodeClose(WireCode.BAD_MAGIC, 'not a postern peer')]);

/** The reason a stranger's connection is closed with, when neither reply below fits. */
export const STRANGER_REASON = 'not a postern peer';

/**
 * The bytes that turn a stranger away, by the first byte it sent: an HTTP 400 for what
 * looks like an HTTP request (an upper-case method), else our preamble and CLOSE(BAD_MAGIC)
 * when the peer has not had our preamble yet; null when it has (then a plain CLOSE).
 */
export function strangerReply(firstByte: number, preambleSent: boolean): Buffer | null {
  if (firstByte >= 0x41 && firstByte <= 0x5a) return HTTP_REFUSAL;
  return preambleSent ? null : STRANGER_CLOSE;
}
