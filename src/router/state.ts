/** Connection states. [P-9] */
export const ConnState = {
  /** Waiting for the agent's preamble. */
  PREAMBLE: 0,
  /** Preamble exchanged, waiting for REGISTER. */
  HANDSHAKE: 1,
  /** Registered: relaying. */
  OPEN: 2,
  /** CLOSE sent or received; flushing. */
  CLOSING: 3,
  /** The stream is gone. */
  CLOSED: 4,
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];
