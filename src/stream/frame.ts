/**
 * The stream layer's wire vocabulary (PROTOCOL.md §14): stream frames ride inside the payload
 * of ordinary SEND/DELIVER frames, so routers relay them without looking. Every constant
 * here is specified in §14; tags name the clause.
 *
 * Layout of a stream frame (the whole SEND payload, or the content of a sealed envelope):
 *
 * ```
 * 0  4  marker 89 53 54 52 ("\x89STR")
 * 4  1  type
 * 5  1  flags (bit 0: ACCEPTOR, the sender is the side that accepted the stream)
 * 6  4  stream ID, u32 big-endian (request ID for REQUEST/REPLY)
 * 10 4  value, u32 big-endian (meaning depends on type)
 * 14 .. body
 * ```
 *
 * @module
 */

/** The 4 bytes that open every stream frame. [P-14.1] */
export const STREAM_MARKER: Readonly<Uint8Array> = Uint8Array.of(0x89, 0x53, 0x54, 0x52);
/** Fixed header of a stream frame, in bytes. [P-14.1] */
export const STREAM_HEADER_SIZE = 14;
/** Longest service name in OPEN, in bytes of UTF-8. [P-14.3] */
export const MAX_SERVICE_NAME = 255;
/** Longest RESET reason, in bytes of UTF-8. [P-14.6] */
export const MAX_RESET_REASON = 256;
/**
 * Credit each side holds for the other when a stream opens, before any WINDOW frame: the
 * opener may send this much DATA right behind its OPEN. [P-14.4]
 */
export const INITIAL_WINDOW = 256 * 1024;

/** Stream frame types. [P-14.2] */
export const StreamType = {
  OPEN: 0x01,
  DATA: 0x02,
  WINDOW: 0x03,
  FIN: 0x04,
  RESET: 0x05,
  PING: 0x06,
  PONG: 0x07,
  REQUEST: 0x08,
  REPLY: 0x09,
} as const;
export type StreamType = (typeof StreamType)[keyof typeof StreamType];

/** Stream frame flags. [P-14.2] */
export const StreamFlag = {
  /** The sender accepted the stream (else it opened it): stream IDs are per direction of opening. */
  ACCEPTOR: 0x01,
} as const;

/** RESET codes (the value of a RESET frame). [P-14.6] */
export const ResetCode = {
  /** The application aborted the stream (destroy with or without an error). */
  CANCEL: 1,
  /** The acceptor takes no streams (no listener, or the opener is not allowed). */
  REFUSED: 2,
  /** The acceptor does not offer the service named in OPEN. */
  UNKNOWN_SERVICE: 3,
  /** A frame named a stream the receiver does not have. */
  UNKNOWN_STREAM: 4,
  /** DATA beyond the credit the receiver granted. */
  FLOW_CONTROL: 5,
  /** The sender lost its router connection: its state of this stream is gone. */
  RECONNECTED: 6,
  /** A malformed frame for this stream (bad OPEN, a second OPEN, data after FIN). */
  PROTOCOL: 7,
  /** The acceptor is at its stream limit. */
  LIMIT: 8,
  /** The far end of a tunnel could not be reached (e.g. `postern expose` could not connect to its target). */
  TARGET_UNREACHABLE: 9,
} as const;
export type ResetCode = (typeof ResetCode)[keyof typeof ResetCode];

/** Names of the RESET codes, for messages. */
export const RESET_CODE_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(ResetCode).map(([k, v]) => [v, k])),
);

/** A decoded stream frame; `body` is a view of the payload (not a copy). */
export interface StreamFrame {
  readonly type: number;
  readonly flags: number;
  readonly id: number;
  readonly value: number;
  readonly body: Buffer;
}

/** True when `payload` starts with the stream marker, i.e. it is stream traffic. [P-14.1] */
export function isStreamPayload(payload: Uint8Array): boolean {
  return payload.length >= 4 && payload[0] === 0x89 && payload[1] === 0x53 && payload[2] === 0x54 && payload[3] === 0x52;
}

/**
 * Decodes a stream frame, or returns a reason string when it is malformed (too short,
 * unknown type, reserved flag bits, a body where none is allowed, an over-long name or
 * reason). The payload must start with the marker (see {@link isStreamPayload}). [P-14.2]
 */
export function decodeStreamFrame(payload: Buffer): StreamFrame | string {
  if (payload.length < STREAM_HEADER_SIZE) return 'shorter than the 14-byte header';
  const type = payload[4]!;
  const flags = payload[5]!;
  if ((flags & ~StreamFlag.ACCEPTOR) !== 0) return 'reserved flag bits set';
  const id = payload.readUInt32BE(6);
  const value = payload.readUInt32BE(10);
  const body = payload.subarray(STREAM_HEADER_SIZE);
  switch (type) {
    case StreamType.OPEN:
      if (body.length > MAX_SERVICE_NAME) return 'service name longer than 255 bytes';
      break;
    case StreamType.RESET:
      if (body.length > MAX_RESET_REASON) return 'reset reason longer than 256 bytes';
      break;
    case StreamType.WINDOW:
    case StreamType.FIN:
    case StreamType.PING:
    case StreamType.PONG:
      if (body.length !== 0) return 'a body on a frame that has none';
      break;
    case StreamType.DATA:
    case StreamType.REQUEST:
    case StreamType.REPLY:
      break;
    default:
      return `unknown stream frame type 0x${type.toString(16).padStart(2, '0')}`;
  }
  return { type, flags, id, value, body };
}

/** Writes the 14-byte header of a stream frame at `off` of `buf`. */
export function writeStreamHeader(buf: Buffer, off: number, type: number, flags: number, id: number, value: number): void {
  buf[off] = 0x89;
  buf[off + 1] = 0x53;
  buf[off + 2] = 0x54;
  buf[off + 3] = 0x52;
  buf[off + 4] = type;
  buf[off + 5] = flags;
  buf.writeUInt32BE(id >>> 0, off + 6);
  buf.writeUInt32BE(value >>> 0, off + 10);
}

/** Encodes a whole stream frame: header and a copy of `body`. */
export function encodeStreamFrame(type: number, flags: number, id: number, value: number, body?: Uint8Array): Buffer {
  const n = body === undefined ? 0 : body.length;
  const out = Buffer.allocUnsafe(STREAM_HEADER_SIZE + n);
  writeStreamHeader(out, 0, type, flags, id, value);
  if (n > 0) out.set(body!, STREAM_HEADER_SIZE);
  return out;
}
