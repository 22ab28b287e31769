import {
  CLOSE_FIXED_SIZE,
  ERROR_FIXED_SIZE,
  FrameType,
  HEADER_SIZE,
  ID_SIZE,
  LENGTH_SIZE,
  MAGIC,
  MAX_PING_PAYLOAD,
  PREAMBLE_SIZE,
  RELAY_HEADER_SIZE,
  RELAY_ID_OFFSET,
  RELAY_SEQ_OFFSET,
  ROUTE_ERROR_FIXED_SIZE,
  SOURCE_SIZE,
} from './frame.js';
import { ErrorCode, PosternError } from './errors.js';

/**
 * Encoders. Each returns the frame as a list of chunks to be written together (under
 * `cork()` or one `writev`): a freshly written header, then the caller's payload as given,
 * never copied. Join the chunks with `Buffer.concat` only where a single buffer is wanted
 * (tests, vectors). [P-3.1]
 */

/** The 8-byte preamble carrying `version`. [P-2.1] */
export function encodePreamble(version: number): Buffer {
  const b = Buffer.allocUnsafe(PREAMBLE_SIZE);
  b.set(MAGIC, 0);
  b[MAGIC.length] = version;
  return b;
}

/** Writes the common 6-byte header for a frame whose body is `bodyLength` bytes. [P-3.1] */
export function writeHeader(out: Buffer, offset: number, type: number, flags: number, bodyLength: number): void {
  out.writeUInt32BE(bodyLength + HEADER_SIZE - LENGTH_SIZE, offset);
  out[offset + 4] = type;
  out[offset + 5] = flags;
}

/**
 * Writes a 26-byte relay header (SEND or DELIVER) into `out` at `offset`. [P-6.1-1]
 * `id` is the destination (SEND) or the sender (DELIVER).
 */
export function writeRelayHeader(
  out: Buffer,
  offset: number,
  type: number,
  flags: number,
  id: Uint8Array,
  seq: number,
  payloadLength: number,
): void {
  if (id.length !== ID_SIZE) throw new PosternError(ErrorCode.INVALID_ID, `an ID is ${ID_SIZE} bytes`);
  writeHeader(out, offset, type, flags, RELAY_HEADER_SIZE - HEADER_SIZE + payloadLength);
  out.set(id, offset + RELAY_ID_OFFSET);
  out.writeUInt32BE(seq >>> 0, offset + RELAY_SEQ_OFFSET);
}

function relay(type: number, id: Uint8Array, seq: number, payload: Uint8Array, flags: number): Buffer[] {
  const h = Buffer.allocUnsafe(RELAY_HEADER_SIZE);
  writeRelayHeader(h, 0, type, flags, id, seq, payload.length);
  return payload.length === 0 ? [h] : [h, toBuffer(payload)];
}

/** SEND: `to` (16 bytes), client sequence number, payload. [P-6.2-1] */
export function encodeSend(to: Uint8Array, seq: number, payload: Uint8Array, flags = 0): Buffer[] {
  return relay(FrameType.SEND, to, seq, payload, flags);
}

/** DELIVER: `from` (16 bytes), seq field (0 in v1), payload. [P-6.3] */
export function encodeDeliver(from: Uint8Array, payload: Uint8Array, flags = 0, seq = 0): Buffer[] {
  return relay(FrameType.DELIVER, from, seq, payload, flags);
}

/** ERROR: wire code, the seq it refers to, the ID it concerns (zeros when none), UTF-8 text. [P-7.1] */
export function encodeError(code: number, seq: number, id: Uint8Array | null, text = ''): Buffer {
  checkCode(code);
  if (id !== null && id.length !== ID_SIZE) throw new PosternError(ErrorCode.INVALID_ID, `an ID is ${ID_SIZE} bytes`);
  const textLen = Buffer.byteLength(text);
  const b = Buffer.alloc(ERROR_FIXED_SIZE + textLen);
  writeHeader(b, 0, FrameType.ERROR, 0, ERROR_FIXED_SIZE - HEADER_SIZE + textLen);
  b.writeUInt16BE(code, HEADER_SIZE);
  b.writeUInt32BE(seq >>> 0, HEADER_SIZE + 2);
  if (id !== null) b.set(id, HEADER_SIZE + 6);
  b.write(text, ERROR_FIXED_SIZE);
  return b;
}

/** CLOSE: wire code and UTF-8 reason. [P-9.1-1] */
export function encodeClose(code: number, reason = ''): Buffer {
  checkCode(code);
  const textLen = Buffer.byteLength(reason);
  const b = Buffer.allocUnsafe(CLOSE_FIXED_SIZE + textLen);
  writeHeader(b, 0, FrameType.CLOSE, 0, CLOSE_FIXED_SIZE - HEADER_SIZE + textLen);
  b.writeUInt16BE(code, HEADER_SIZE);
  b.write(reason, CLOSE_FIXED_SIZE);
  return b;
}

function ping(type: number, payload: Uint8Array): Buffer {
  if (payload.length > MAX_PING_PAYLOAD) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, `a PING/PONG payload is at most ${MAX_PING_PAYLOAD} bytes`);
  }
  const b = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  writeHeader(b, 0, type, 0, payload.length);
  b.set(payload, HEADER_SIZE);
  return b;
}

/** PING with an opaque payload of at most 64 bytes. [P-8.1] */
export function encodePing(payload: Uint8Array = EMPTY): Buffer {
  return ping(FrameType.PING, payload);
}

/** PONG echoing a PING's payload. [P-8.1] */
export function encodePong(payload: Uint8Array = EMPTY): Buffer {
  return ping(FrameType.PONG, payload);
}

/** A frame of `type` whose body is `body` (e.g. a MessagePack control body). */
export function encodeFrame(type: number, body: Uint8Array, flags = 0): Buffer[] {
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(h, 0, type, flags, body.length);
  return body.length === 0 ? [h] : [h, toBuffer(body)];
}

const EMPTY = new Uint8Array(0);

// A code outside u16 would otherwise be a RangeError from writeUInt16BE, without a code.
function checkCode(code: number): void {
  if (!Number.isInteger(code) || code < 0 || code > 0xffff) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, `a wire code is a u16, got ${String(code)}`);
  }
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.length);
}

/**
 * Writes a SOURCE frame (router links) into `out` at `offset`: the sender of the SEND
 * frames that follow, and how many links they have crossed including this one. [P-10.4]
 */
export function writeSource(out: Buffer, offset: number, src: Uint8Array, hops: number, flags = 0): void {
  writeHeader(out, offset, FrameType.SOURCE, flags, SOURCE_SIZE - HEADER_SIZE);
  out.set(src.subarray(0, ID_SIZE), offset + HEADER_SIZE);
  out[offset + HEADER_SIZE + ID_SIZE] = hops;
  out[offset + HEADER_SIZE + ID_SIZE + 1] = 0;
  out[offset + HEADER_SIZE + ID_SIZE + 2] = 0;
  out[offset + HEADER_SIZE + ID_SIZE + 3] = 0;
}

/** SOURCE frame as a fresh buffer. [P-10.4] */
export function encodeSource(src: Uint8Array, hops: number, flags = 0): Buffer {
  const b = Buffer.allocUnsafe(SOURCE_SIZE);
  writeSource(b, 0, src, hops, flags);
  return b;
}

/** ROUTE_ERROR: wire code, seq, destination, the sender it is for, UTF-8 text. [P-10.5] */
export function encodeRouteError(code: number, seq: number, dest: Uint8Array, src: Uint8Array, text = ''): Buffer {
  const textLen = Buffer.byteLength(text);
  const b = Buffer.alloc(ROUTE_ERROR_FIXED_SIZE + textLen);
  writeHeader(b, 0, FrameType.ROUTE_ERROR, 0, ROUTE_ERROR_FIXED_SIZE - HEADER_SIZE + textLen);
  b.writeUInt16BE(code, HEADER_SIZE);
  b.writeUInt32BE(seq >>> 0, HEADER_SIZE + 2);
  b.set(dest.subarray(0, ID_SIZE), HEADER_SIZE + 6);
  b.set(src.subarray(0, ID_SIZE), HEADER_SIZE + 6 + ID_SIZE);
  b.write(text, ROUTE_ERROR_FIXED_SIZE);
  return b;
}
