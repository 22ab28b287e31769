import { ErrorCode, PosternError } from '../protocol/errors.js';
import { ID_SIZE, RELAY_ID_OFFSET } from '../protocol/frame.js';

/**
 * Checks of what callers pass the agent: agent IDs (text or bytes) and payloads. Each
 * throws a coded error (POSTERN_ERR_INVALID_ID, POSTERN_ERR_INVALID_ARGUMENT).
 *
 * @module
 */

/** An agent ID in text form: 32 hex digits. */
export const HEX_ID = /^[0-9a-fA-F]{32}$/;

/** Writes and checks the destination ID at offset 6 of a SEND header. */
export function writeDestination(header: Buffer, to: string | Uint8Array): void {
  if (typeof to === 'string') {
    if (!HEX_ID.test(to)) throw new PosternError(ErrorCode.INVALID_ID, 'an agent ID is 32 hex digits');
    header.write(to, RELAY_ID_OFFSET, ID_SIZE, 'hex');
  } else if (to instanceof Uint8Array && to.length === ID_SIZE) {
    header.set(to, RELAY_ID_OFFSET);
  } else {
    throw new PosternError(ErrorCode.INVALID_ID, `an agent ID is 32 hex digits or ${ID_SIZE} bytes`);
  }
  // Router ID 0 is issued by no router, so such an ID is a caller's mistake, not a destination.
  if (header.readUInt32BE(RELAY_ID_OFFSET) === 0) throw new PosternError(ErrorCode.INVALID_ID, 'an agent ID never has router ID 0');
}

/** A text agent ID in lowercase (the stream layer's form); throws POSTERN_ERR_INVALID_ID. */
export function textAgentId(to: unknown): string {
  if (typeof to !== 'string' || !HEX_ID.test(to)) throw new PosternError(ErrorCode.INVALID_ID, 'an agent ID is 32 hex digits');
  return to.toLowerCase();
}

/** A payload as bytes: a string as UTF-8, a Uint8Array as a Buffer over the same memory. */
export function toPayload(data: Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'data must be a Uint8Array or a string');
}
