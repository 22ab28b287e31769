/**
 * Write coalescing for the handshake. The router answers a client's preamble the moment it
 * reads it, and the client's REGISTER is almost always in the same read: written at once,
 * the preamble and REGISTERED go out as two writes, two syscalls and two wake-ups of the
 * peer. During a registration flood that second write was about a fifth of what each
 * hostile connection cost the router. Corked until the end of the turn, whatever the turn
 * writes goes out as one writev.
 */
import type { Duplex } from 'node:stream';

function uncork(stream: Duplex): void {
  // A stream ended or destroyed meanwhile has flushed (end uncorks) or has nothing to flush.
  stream.uncork();
}

/** Corks `stream` until the current turn's synchronous work (and its nextTick queue so far) is done. */
export function corkForTurn(stream: Duplex): void {
  stream.cork();
  process.nextTick(uncork, stream);
}
