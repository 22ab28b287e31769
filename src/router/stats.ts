/** Router counters since start. Plain numbers, bumped on the hot path without allocation. */
export interface RouterStats {
  /** Connections accepted. */
  accepted: number;
  /** Successful registrations. */
  registrations: number;
  /** Frames read from agents. */
  framesIn: number;
  /** Messages relayed (SEND turned into DELIVER). */
  relayed: number;
  /** Bytes of DELIVER frames queued to agents. */
  relayedBytes: number;
  /** Bytes read. */
  bytesIn: number;
  /** Bytes queued for writing. */
  bytesOut: number;
  /** ERROR frames sent, by wire code. */
  errors: Record<number, number>;
  /** Connections closed by the router, by wire code. */
  closes: Record<number, number>;
  /** Connections closed for keepalive silence. */
  keepaliveExpiries: number;
  /** Connections closed for not registering in time. */
  handshakeTimeouts: number;
  /** Connections closed as slow consumers. */
  slowConsumers: number;
}

/** Fresh zeroed counters. */
export function newStats(): RouterStats {
  return {
    accepted: 0,
    registrations: 0,
    framesIn: 0,
    relayed: 0,
    relayedBytes: 0,
    bytesIn: 0,
    bytesOut: 0,
    errors: {},
    closes: {},
    keepaliveExpiries: 0,
    handshakeTimeouts: 0,
    slowConsumers: 0,
  };
}
