/**
 * The whole wire vocabulary of postern protocol v1 in one place. Every constant here is
 * specified in PROTOCOL.md; section numbers are given as `[P-x.y]` tags.
 *
 * @module
 */

/** Protocol versions this implementation speaks. [P-2.3] */
export const PROTOCOL_VERSION = 1;
/** Lowest version this implementation accepts. */
export const MIN_PROTOCOL_VERSION = 1;

/**
 * The 7 magic bytes that open the preamble in both directions: `0x89 'P' 'S' 'T' 'N' CR LF`.
 * The high first byte makes every text protocol (HTTP, SMTP, SSH) and TLS (0x16) fail on
 * byte 0. [P-2.1]
 */
export const MAGIC: Readonly<Uint8Array> = Uint8Array.of(0x89, 0x50, 0x53, 0x54, 0x4e, 0x0d, 0x0a);
/** Preamble: the magic then one version byte. [P-2.1] */
export const PREAMBLE_SIZE = 8;

/** Bytes of the common frame header: u32 length, u8 type, u8 flags. [P-3.1] */
export const HEADER_SIZE = 6;
/** Bytes of the length field; `length` counts the bytes after it. [P-3.1] */
export const LENGTH_SIZE = 4;

/** Width of an agent ID on the wire. [P-5.1-1] */
export const ID_SIZE = 16;
/** Bytes of the router-ID part at the start of an agent ID. [P-5.1-1] */
export const ROUTER_ID_SIZE = 4;

/**
 * Relay header (SEND and DELIVER): common header, 16-byte ID at offset 6, u32 seq at
 * offset 22, payload from offset 26. Both frames have the same layout, so a router turns a
 * SEND into a DELIVER by rewriting bytes 4..25 in place. [P-6.1-1]
 */
export const RELAY_ID_OFFSET = 6;
export const RELAY_SEQ_OFFSET = 22;
export const RELAY_HEADER_SIZE = 26;

/** ERROR body: u16 code, u32 seq, 16-byte ID, then UTF-8 text. [P-7.1] */
export const ERROR_FIXED_SIZE = HEADER_SIZE + 2 + 4 + ID_SIZE;
/** CLOSE body: u16 code, then UTF-8 reason. [P-9.1-1] */
export const CLOSE_FIXED_SIZE = HEADER_SIZE + 2;
/** SOURCE frame: header, 16-byte sender ID, u8 hops, 3 zero bytes. Fixed size. */
export const SOURCE_SIZE = HEADER_SIZE + ID_SIZE + 4;
/** ROUTE_ERROR body: u16 code, u32 seq, 16-byte destination, 16-byte sender, then UTF-8 text. */
export const ROUTE_ERROR_FIXED_SIZE = HEADER_SIZE + 2 + 4 + ID_SIZE + ID_SIZE;
/** Longest PING/PONG payload. [P-8.1] */
export const MAX_PING_PAYLOAD = 64;

/**
 * Largest frame a router accepts before the connection is registered (REGISTER, PING,
 * CLOSE). [P-4.1]
 */
export const PRE_REGISTER_MAX_FRAME = 4096;
/** Smallest maxFrame a router may announce: a relay header plus 1 KiB. [P-4.2] */
export const MIN_MAX_FRAME = RELAY_HEADER_SIZE + 1024;
/** Largest maxFrame a router may announce (the length field is a u32, but 64 MiB is plenty). */
export const MAX_MAX_FRAME = 64 * 1024 * 1024;

/** Frame types. Types 0x00-0x7f are critical: an unknown one closes the connection; 0x80-0xff may be skipped. [P-3.2] */
export const FrameType = {
  REGISTER: 0x01,
  REGISTERED: 0x02,
  ERROR: 0x03,
  CLOSE: 0x04,
  PING: 0x05,
  PONG: 0x06,
  /** Router is going away: reconnect after a delay, maybe elsewhere. MessagePack {after, grace, alternates}. [P-12.1] */
  DRAIN: 0x07,
  /** Stable addresses: the router's nonce for a REGISTER asking for a stable ID. MessagePack {nonce}. [P-15.2] */
  CHALLENGE: 0x08,
  SEND: 0x10,
  DELIVER: 0x11,
  /** Key directory: ask the router for the X25519 key an ID registered. MessagePack {ref, id}. [P-11.4] */
  LOOKUP: 0x12,
  /** Key directory answer. MessagePack {ref, id, key}. */
  LOOKUP_RESULT: 0x13,
  /** Router links (§10): dialer's hello, MessagePack {router, nonce, maxFrame}. [P-10.1] */
  LINK_HELLO: 0x20,
  /** Router links: acceptor's challenge and proof, MessagePack {router, nonce, proof, maxFrame}. */
  LINK_CHALLENGE: 0x21,
  /** Router links: dialer's proof, MessagePack {proof}. */
  LINK_AUTH: 0x22,
  /** Router links: acceptor's confirmation, MessagePack {}. */
  LINK_READY: 0x23,
  /** Router links: names the sender of the SEND frames that follow on the link. [P-10.4] */
  SOURCE: 0x24,
  /** Router links: an error for a forwarded SEND, addressed to its sender. [P-10.5] */
  ROUTE_ERROR: 0x25,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/**
 * Flags of SEND, DELIVER and SOURCE frames. [P-3.4] [P-6.4] [P-11.2]
 * - SEND: ANONYMOUS sends this message under a reply handle instead of the sender's ID;
 *   STICKY (with ANONYMOUS) reuses the connection's one sticky handle; SEALED is passed
 *   through to the DELIVER untouched (the payload is a sealed envelope).
 * - DELIVER: ANONYMOUS means the sender field is a reply handle; SEALED as sent.
 * - SOURCE (router links): ANONYMOUS means the source is a reply handle.
 */
export const Flag = {
  ANONYMOUS: 0x01,
  STICKY: 0x02,
  SEALED: 0x04,
} as const;
/** Every SEND flag a v1 router implements. */
export const SEND_FLAGS = Flag.ANONYMOUS | Flag.STICKY | Flag.SEALED;

/** Types at or above this value are optional: a receiver that does not know one skips it. [P-3.2] */
export const OPTIONAL_TYPE_BIT = 0x80;

/** Human names for frame types, for logs and errors. */
export const FRAME_TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [FrameType.REGISTER]: 'REGISTER',
  [FrameType.REGISTERED]: 'REGISTERED',
  [FrameType.ERROR]: 'ERROR',
  [FrameType.CLOSE]: 'CLOSE',
  [FrameType.PING]: 'PING',
  [FrameType.PONG]: 'PONG',
  [FrameType.DRAIN]: 'DRAIN',
  [FrameType.CHALLENGE]: 'CHALLENGE',
  [FrameType.SEND]: 'SEND',
  [FrameType.DELIVER]: 'DELIVER',
  [FrameType.LOOKUP]: 'LOOKUP',
  [FrameType.LOOKUP_RESULT]: 'LOOKUP_RESULT',
  [FrameType.LINK_HELLO]: 'LINK_HELLO',
  [FrameType.LINK_CHALLENGE]: 'LINK_CHALLENGE',
  [FrameType.LINK_AUTH]: 'LINK_AUTH',
  [FrameType.LINK_READY]: 'LINK_READY',
  [FrameType.SOURCE]: 'SOURCE',
  [FrameType.ROUTE_ERROR]: 'ROUTE_ERROR',
});

/**
 * Smallest total size (length field included) of each known type; checked when the header
 * is read, before the body is buffered. [P-3.3]
 */
export const MIN_FRAME_SIZE: Readonly<Record<number, number>> = Object.freeze({
  [FrameType.REGISTER]: HEADER_SIZE + 1,
  [FrameType.REGISTERED]: HEADER_SIZE + 1,
  [FrameType.ERROR]: ERROR_FIXED_SIZE,
  [FrameType.CLOSE]: CLOSE_FIXED_SIZE,
  [FrameType.PING]: HEADER_SIZE,
  [FrameType.PONG]: HEADER_SIZE,
  [FrameType.DRAIN]: HEADER_SIZE + 1,
  [FrameType.CHALLENGE]: HEADER_SIZE + 1,
  [FrameType.SEND]: RELAY_HEADER_SIZE,
  [FrameType.DELIVER]: RELAY_HEADER_SIZE,
  [FrameType.LOOKUP]: HEADER_SIZE + 1,
  [FrameType.LOOKUP_RESULT]: HEADER_SIZE + 1,
  [FrameType.LINK_HELLO]: HEADER_SIZE + 1,
  [FrameType.LINK_CHALLENGE]: HEADER_SIZE + 1,
  [FrameType.LINK_AUTH]: HEADER_SIZE + 1,
  [FrameType.LINK_READY]: HEADER_SIZE + 1,
  [FrameType.SOURCE]: SOURCE_SIZE,
  [FrameType.ROUTE_ERROR]: ROUTE_ERROR_FIXED_SIZE,
});

/** Largest total size of types whose size is bounded regardless of maxFrame. [P-8.1] */
export const MAX_FRAME_SIZE_BY_TYPE: Readonly<Record<number, number>> = Object.freeze({
  [FrameType.PING]: HEADER_SIZE + MAX_PING_PAYLOAD,
  [FrameType.PONG]: HEADER_SIZE + MAX_PING_PAYLOAD,
  [FrameType.SOURCE]: SOURCE_SIZE,
  [FrameType.LOOKUP]: 256,
  [FrameType.CHALLENGE]: PRE_REGISTER_MAX_FRAME,
  [FrameType.LOOKUP_RESULT]: 256,
  [FrameType.LINK_HELLO]: PRE_REGISTER_MAX_FRAME,
  [FrameType.LINK_CHALLENGE]: PRE_REGISTER_MAX_FRAME,
  [FrameType.LINK_AUTH]: PRE_REGISTER_MAX_FRAME,
  [FrameType.LINK_READY]: PRE_REGISTER_MAX_FRAME,
});

/**
 * Wire error codes (u16), one space for ERROR and CLOSE frames. [P-7.2]
 *
 * 1-63 are per-message and travel in ERROR frames (the connection stays open);
 * 64-127 end the connection and travel in CLOSE frames; 0 is a normal close.
 */
export const WireCode = {
  NORMAL: 0,
  UNKNOWN_DESTINATION: 1,
  NOT_REGISTERED: 2,
  ALREADY_REGISTERED: 3,
  UNSUPPORTED_FLAGS: 4,
  DESTINATION_SLOW: 5,
  /** The message is larger than the destination's router accepts (mesh). */
  MESSAGE_TOO_LARGE: 6,
  /** LOOKUP: the ID exists but registered no key. */
  NO_KEY: 7,
  /** The destination's connection was lost and it did not resume within its grace period; the message held for it was dropped. */
  NOT_DELIVERED: 8,
  /** Registration refused for now: too many from this address; retry later. */
  RATE_LIMITED: 16,
  /** Reserved for router drain (a later version). */
  DRAINING: 17,
  /** No link to the router that issued the destination ID (unknown or down). */
  UNREACHABLE_ROUTER: 18,
  /** A forwarded message would cross more router links than allowed. */
  HOP_LIMIT: 20,
  BAD_MAGIC: 64,
  UNSUPPORTED_VERSION: 65,
  MALFORMED: 66,
  FRAME_TOO_LARGE: 67,
  UNKNOWN_FRAME: 68,
  KEEPALIVE_TIMEOUT: 69,
  SLOW_CONSUMER: 70,
  HANDSHAKE_TIMEOUT: 71,
  GOING_AWAY: 72,
  INTERNAL: 73,
  /** The router's connection limit (overall or per address) is reached. */
  TOO_MANY_CONNECTIONS: 74,
  /** A router link's challenge-response failed (no or wrong mesh secret). */
  LINK_AUTH_FAILED: 75,
  /** A router link to a router with this router's own ID. */
  DUPLICATE_ROUTER_ID: 76,
  /** Registration requires an admission token this agent did not present. */
  ADMISSION_DENIED: 77,
  /** A frame did not arrive at the receiver's minimum rate (a trickled partial frame). */
  FRAME_TOO_SLOW: 78,
  /** The router has no room left to buffer another incomplete frame; retry later. */
  OVERLOADED: 79,
} as const;
export type WireCode = (typeof WireCode)[keyof typeof WireCode];

/** Names of wire codes, index by number. */
export const WIRE_CODE_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(WireCode).map(([k, v]) => [v, k])),
);

/** True when a wire code ends the connection (sent in CLOSE). [P-7.2] */
export function isFatalCode(code: number): boolean {
  return code === 0 || code >= 64;
}

/** Default TCP port of a router. [P-2.4] */
export const DEFAULT_PORT = 7447;
