import { readFileSync } from 'node:fs';

/**
 * The process's limit on open file descriptors (`ulimit -n`), which bounds the connections
 * a router can hold: past it, accept() fails with EMFILE and new agents cannot connect.
 */

/** The soft "Max open files" limit in the text of /proc/self/limits; null when absent or unlimited. */
export function parseFdLimit(text: string): number | null {
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (m === null || m[1] === 'unlimited') return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** This process's descriptor limit, read now; null where /proc is not there (not Linux). */
export function readFdLimit(): number | null {
  try {
    return parseFdLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Connections that fit under `limit` descriptors, keeping a tenth (at least 32) for what
 * else the process opens: its log, the metrics listener, links it dials, the listening
 * socket, and sockets refused at the door that are still closing.
 */
export function connectionsWithin(limit: number): number {
  return Math.max(1, limit - Math.max(32, Math.floor(limit / 10)));
}
