import { WIRE_CODE_NAMES, WireCode } from './frame.js';

/**
 * Stable error codes of postern. Wire codes map to `POSTERN_ERR_<NAME>`; the others are
 * local to an implementation (bad arguments, closed objects). Every code is listed in
 * README.md ("Error codes"); the wire codes in PROTOCOL.md §7.2.
 */
export const ErrorCode = {
  // From the wire (see WireCode)
  UNKNOWN_DESTINATION: 'POSTERN_ERR_UNKNOWN_DESTINATION',
  NOT_REGISTERED: 'POSTERN_ERR_NOT_REGISTERED',
  ALREADY_REGISTERED: 'POSTERN_ERR_ALREADY_REGISTERED',
  UNSUPPORTED_FLAGS: 'POSTERN_ERR_UNSUPPORTED_FLAGS',
  DESTINATION_SLOW: 'POSTERN_ERR_DESTINATION_SLOW',
  MESSAGE_TOO_LARGE: 'POSTERN_ERR_MESSAGE_TOO_LARGE',
  NO_KEY: 'POSTERN_ERR_NO_KEY',
  NOT_DELIVERED: 'POSTERN_ERR_NOT_DELIVERED',
  RATE_LIMITED: 'POSTERN_ERR_RATE_LIMITED',
  DRAINING: 'POSTERN_ERR_DRAINING',
  UNREACHABLE_ROUTER: 'POSTERN_ERR_UNREACHABLE_ROUTER',
  ADMISSION_DENIED: 'POSTERN_ERR_ADMISSION_DENIED',
  HOP_LIMIT: 'POSTERN_ERR_HOP_LIMIT',
  BAD_MAGIC: 'POSTERN_ERR_BAD_MAGIC',
  UNSUPPORTED_VERSION: 'POSTERN_ERR_UNSUPPORTED_VERSION',
  MALFORMED: 'POSTERN_ERR_MALFORMED',
  FRAME_TOO_LARGE: 'POSTERN_ERR_FRAME_TOO_LARGE',
  UNKNOWN_FRAME: 'POSTERN_ERR_UNKNOWN_FRAME',
  KEEPALIVE_TIMEOUT: 'POSTERN_ERR_KEEPALIVE_TIMEOUT',
  SLOW_CONSUMER: 'POSTERN_ERR_SLOW_CONSUMER',
  HANDSHAKE_TIMEOUT: 'POSTERN_ERR_HANDSHAKE_TIMEOUT',
  GOING_AWAY: 'POSTERN_ERR_GOING_AWAY',
  INTERNAL: 'POSTERN_ERR_INTERNAL',
  TOO_MANY_CONNECTIONS: 'POSTERN_ERR_TOO_MANY_CONNECTIONS',
  LINK_AUTH_FAILED: 'POSTERN_ERR_LINK_AUTH_FAILED',
  DUPLICATE_ROUTER_ID: 'POSTERN_ERR_DUPLICATE_ROUTER_ID',
  FRAME_TOO_SLOW: 'POSTERN_ERR_FRAME_TOO_SLOW',
  OVERLOADED: 'POSTERN_ERR_OVERLOADED',
  /** A CLOSE with code 0 (NORMAL) from the peer. */
  NORMAL: 'POSTERN_ERR_NORMAL',
  // Local only
  /** A wire code this implementation does not know. */
  UNKNOWN_CODE: 'POSTERN_ERR_UNKNOWN_CODE',
  /** An agent ID string or buffer that is not a valid ID. */
  INVALID_ID: 'POSTERN_ERR_INVALID_ID',
  /** An option with a bad value; `message` names the option. */
  INVALID_OPTION: 'POSTERN_ERR_INVALID_OPTION',
  /** A config file that cannot be read or is not valid JSON; bad keys and values are INVALID_OPTION. */
  CONFIG: 'POSTERN_ERR_CONFIG',
  /** An argument of the wrong type or range. */
  INVALID_ARGUMENT: 'POSTERN_ERR_INVALID_ARGUMENT',
  /** The object was closed; nothing more can be done with it. */
  CLOSED: 'POSTERN_ERR_CLOSED',
  /** The agent is not connected right now (it may be reconnecting). */
  NOT_CONNECTED: 'POSTERN_ERR_NOT_CONNECTED',
  /** Connecting or registering took longer than allowed. */
  CONNECT_TIMEOUT: 'POSTERN_ERR_CONNECT_TIMEOUT',
  /** The TCP connection closed without a CLOSE frame. */
  CONNECTION_LOST: 'POSTERN_ERR_CONNECTION_LOST',
  /** The agent's send buffer is full; wait for `drain` or retry later. */
  SEND_BUFFER_FULL: 'POSTERN_ERR_SEND_BUFFER_FULL',
  /** A message stayed unacknowledged by the router when the connection was lost. */
  NOT_SENT: 'POSTERN_ERR_NOT_SENT',
  // Local only: transports (PROTOCOL.md §13)
  /** A proxy refused to open the tunnel (HTTP status other than 2xx, SOCKS reply other than success); the message carries its status. */
  PROXY_REFUSED: 'POSTERN_ERR_PROXY_REFUSED',
  /** A proxy rejected our credentials or wants some (HTTP 407, SOCKS authentication failure). */
  PROXY_AUTH_FAILED: 'POSTERN_ERR_PROXY_AUTH_FAILED',
  /** TLS failed: handshake, certificate verification, host name, SPKI pin or ALPN. */
  TLS_FAILED: 'POSTERN_ERR_TLS_FAILED',
  /** The HTTP upgrade or WebSocket handshake was answered with something other than 101. */
  UPGRADE_REFUSED: 'POSTERN_ERR_UPGRADE_REFUSED',
  /** No TCP connection to the router could be opened (refused, unreachable, timed out); `cause` holds the system error. */
  CONNECT_FAILED: 'POSTERN_ERR_CONNECT_FAILED',
  /** A host name that does not resolve (ENOTFOUND): bad input, not a network failure. */
  UNKNOWN_HOST: 'POSTERN_ERR_UNKNOWN_HOST',
  /** A listener could not bind its address (port in use, no permission, address not on this host); `cause` holds the system error. */
  LISTEN_FAILED: 'POSTERN_ERR_LISTEN_FAILED',
  // Local only: sealed envelopes and keys (src/crypto, PROTOCOL.md envelope section)
  /** A sealed box or envelope that does not open with this key pair: altered, truncated, or sealed to another key. */
  SEAL_OPEN_FAILED: 'POSTERN_ERR_SEAL_OPEN_FAILED',
  /** An envelope that opened but whose inside is malformed (lengths, non-zero padding). */
  BAD_ENVELOPE: 'POSTERN_ERR_BAD_ENVELOPE',
  /** An envelope whose version/type byte this implementation does not know. */
  UNSUPPORTED_ENVELOPE: 'POSTERN_ERR_UNSUPPORTED_ENVELOPE',
  /** An envelope naming a sender whose key did not make its inner box (a forged or re-wrapped sender). */
  SENDER_UNVERIFIED: 'POSTERN_ERR_SENDER_UNVERIFIED',
  /** An envelope bound to another recipient ID than the one opening it (replayed to another agent). */
  RECIPIENT_MISMATCH: 'POSTERN_ERR_RECIPIENT_MISMATCH',
  /** A key file does not exist. */
  KEY_FILE_NOT_FOUND: 'POSTERN_ERR_KEY_FILE_NOT_FOUND',
  /** A key file already exists and overwriting was not asked for. */
  KEY_FILE_EXISTS: 'POSTERN_ERR_KEY_FILE_EXISTS',
  /** A key file readable or writable by group or others, or not a regular file. */
  KEY_FILE_INSECURE: 'POSTERN_ERR_KEY_FILE_INSECURE',
  /** A key file that is not valid postern key JSON, or whose keys do not match. */
  BAD_KEY_FILE: 'POSTERN_ERR_BAD_KEY_FILE',
  // Local only: the stream layer (src/stream, PROTOCOL.md §14)
  /** The peer reset the stream (its RESET code is in `stream.resetCode`), or broke the stream protocol. */
  STREAM_RESET: 'POSTERN_ERR_STREAM_RESET',
  /** The peer refused the stream: it accepts none, not from this sender, or is at its limit. */
  STREAM_REFUSED: 'POSTERN_ERR_STREAM_REFUSED',
  /** The peer offers no service by the name given in `openStream()`. */
  UNKNOWN_SERVICE: 'POSTERN_ERR_UNKNOWN_SERVICE',
  /** No answer in time: a stream not accepted, a request not replied to, a keepalive unanswered. */
  TIMEOUT: 'POSTERN_ERR_TIMEOUT',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options attached to a {@link PosternError}. */
export interface PosternErrorDetails {
  /** Wire code, when the error came from or goes to the wire. */
  wireCode?: number;
  /** The client sequence number of the SEND the error refers to (0 when none). */
  seq?: number;
  /** Canonical text ID of the destination the error refers to, when there is one. */
  to?: string;
  /** The underlying cause. */
  cause?: unknown;
}

/**
 * The one error class of postern. Match on `code`, never on `message`.
 */
export class PosternError extends Error {
  /** Stable code, `POSTERN_ERR_*`. */
  readonly code: ErrorCode;
  /** Wire code, when one exists for this error. */
  readonly wireCode: number | undefined;
  /** Sequence number of the SEND this refers to, when it refers to one. */
  readonly seq: number | undefined;
  /** Destination ID (text form) this refers to, when known. */
  readonly to: string | undefined;

  constructor(code: ErrorCode, message: string, details: PosternErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'PosternError';
    this.code = code;
    this.wireCode = details.wireCode ?? WIRE_CODE_BY_ERROR[code];
    this.seq = details.seq;
    this.to = details.to;
  }
}

const ERROR_BY_WIRE: Record<number, ErrorCode> = {};
const WIRE_CODE_BY_ERROR: Partial<Record<string, number>> = {};
for (const [name, num] of Object.entries(WireCode)) {
  const code = (ErrorCode as Record<string, ErrorCode>)[name];
  if (code !== undefined) {
    ERROR_BY_WIRE[num] = code;
    WIRE_CODE_BY_ERROR[code] = num;
  }
}

/** The `POSTERN_ERR_*` code for a wire code (POSTERN_ERR_UNKNOWN_CODE when unknown, never a failure). [P-7.4] */
export function errorCodeForWire(wireCode: number): ErrorCode {
  return ERROR_BY_WIRE[wireCode] ?? ErrorCode.UNKNOWN_CODE;
}

/** The wire code for a `POSTERN_ERR_*` code, or undefined for local-only codes. */
export function wireCodeForError(code: ErrorCode): number | undefined {
  return WIRE_CODE_BY_ERROR[code];
}

/** Builds a PosternError from a wire code and the peer's text. */
export function errorFromWire(wireCode: number, text: string, details: PosternErrorDetails = {}): PosternError {
  const name = WIRE_CODE_NAMES[wireCode] ?? `code ${wireCode}`;
  const message = text.length > 0 ? `${name}: ${text}` : name;
  return new PosternError(errorCodeForWire(wireCode), message, { ...details, wireCode });
}
