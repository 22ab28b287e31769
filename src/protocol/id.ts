import { randomFillSync } from 'node:crypto';
import { ID_SIZE, ROUTER_ID_SIZE } from './frame.js';
import { ErrorCode, PosternError } from './errors.js';

/**
 * Agent IDs. [P-5]
 *
 * 16 bytes: the issuing router's ID as a u32 big-endian (never 0), then 12 bytes from a
 * cryptographically secure random source. Text form: 32 lowercase hex digits, the first 8
 * being the router ID. The all-zero ID means "no agent".
 */

/** Length of the text form. */
export const ID_TEXT_LENGTH = ID_SIZE * 2;

/** The all-zero ID ("no agent"). [P-5.5] */
export const NO_ID: Readonly<Buffer> = Buffer.alloc(ID_SIZE);

const HEX_RE = /^[0-9a-fA-F]{32}$/;

/** True when `n` is a valid router ID: an integer in 1..2^32-1. [P-5.2-1] */
export function isValidRouterId(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 0xffffffff;
}

/**
 * A fresh agent ID for router `routerId`, written into `out` (allocated when omitted).
 * The 96 random bits come from the OS CSPRNG, so IDs cannot be enumerated from one
 * another and a restarted router does not reissue them (collision odds 2^-96 per pair). [P-5.3]
 */
export function newAgentId(routerId: number, out: Buffer = Buffer.allocUnsafe(ID_SIZE)): Buffer {
  if (!isValidRouterId(routerId)) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, `router ID must be an integer in 1..4294967295, got ${String(routerId)}`);
  }
  out.writeUInt32BE(routerId, 0);
  randomFillSync(out, ROUTER_ID_SIZE, ID_SIZE - ROUTER_ID_SIZE);
  return out;
}

/** The canonical text form (lowercase hex) of the 16-byte ID at `buf[offset..offset+16]`. [P-5.4-1] */
export function formatId(buf: Uint8Array, offset = 0): string {
  return Buffer.from(buf.buffer, buf.byteOffset + offset, ID_SIZE).toString('hex');
}

/**
 * Parses the text form (32 hex digits, either case) or checks a 16-byte buffer, returning a
 * fresh 16-byte Buffer. Throws POSTERN_ERR_INVALID_ID for anything else, including the
 * all-zero ID and an ID whose router part is 0. [P-5.4-1] [P-5.5]
 */
export function parseId(id: string | Uint8Array): Buffer {
  let out: Buffer;
  if (typeof id === 'string') {
    if (!HEX_RE.test(id)) {
      throw new PosternError(ErrorCode.INVALID_ID, `not an agent ID (want ${ID_TEXT_LENGTH} hex digits): ${JSON.stringify(id.slice(0, 80))}`);
    }
    out = Buffer.from(id, 'hex');
  } else if (id instanceof Uint8Array && id.length === ID_SIZE) {
    out = Buffer.from(id);
  } else {
    throw new PosternError(ErrorCode.INVALID_ID, `an agent ID is a ${ID_TEXT_LENGTH}-digit hex string or ${ID_SIZE} bytes`);
  }
  if (out.readUInt32BE(0) === 0) {
    throw new PosternError(ErrorCode.INVALID_ID, 'agent ID has router ID 0, which no router issues');
  }
  return out;
}

/** The router ID embedded in an agent ID (its first 4 bytes, big-endian). [P-5.1-1] */
export function routerIdOf(id: Uint8Array, offset = 0): number {
  return ((id[offset]! << 24) | (id[offset + 1]! << 16) | (id[offset + 2]! << 8) | id[offset + 3]!) >>> 0;
}

/** Compares 16 ID bytes at two places without allocating. */
export function idEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < ID_SIZE; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** A router ID as logs show it: 8 hex digits, as it starts every agent ID it issues (§5.2). */
export function routerHex(id: number): string {
  return (id >>> 0).toString(16).padStart(8, '0');
}
