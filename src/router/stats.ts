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
  /** Connections refused at the door (connection limits). */
  refused: number;
  /** Connections the router could not accept because it was out of file descriptors (EMFILE, ENFILE). */
  fdExhausted: number;
  /** Registrations refused for a missing or wrong admission token. */
  admissionDenied: number;
  /** Registrations answered RATE_LIMITED. */
  registrationsLimited: number;
  /** Times a connection's reading was paused by its rate limit. */
  rateLimited: number;
  /** Agents whose connection was lost and whose ID was kept for resume. */
  parked: number;
  /** Registrations that took an earlier ID back. */
  resumes: number;
  /** Messages held for parked agents. */
  held: number;
  /** Messages not delivered, by reason (the sender was told each time). */
  dropped: { holdFull: number; resumeExpired: number; connectionEnded: number };
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
    refused: 0,
    fdExhausted: 0,
    admissionDenied: 0,
    registrationsLimited: 0,
    rateLimited: 0,
    parked: 0,
    resumes: 0,
    held: 0,
    dropped: { holdFull: 0, resumeExpired: 0, connectionEnded: 0 },
  };
}

/** Counts one more of wire code `code` in `table` ({@link RouterStats.errors} or {@link RouterStats.closes}). */
export function countCode(table: Record<number, number>, code: number): void {
  table[code] = (table[code] ?? 0) + 1;
}
