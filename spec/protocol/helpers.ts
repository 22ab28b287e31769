/**
 * Shared by the protocol tests: the vectors of spec/vectors/frames.json, a recording sink,
 * a seeded PRNG, and a slow reference decoder that the fast one is checked against.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Decoder, type FrameSink } from '../../src/protocol/decoder.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import {
  FrameType,
  HEADER_SIZE,
  MAGIC,
  MAX_FRAME_SIZE_BY_TYPE,
  MIN_FRAME_SIZE,
  PREAMBLE_SIZE,
  RELAY_HEADER_SIZE,
  RELAY_ID_OFFSET,
  RELAY_SEQ_OFFSET,
} from '../../src/protocol/frame.js';
import { ControlCodec, readClose, readError, readRouteError } from '../../src/protocol/control.js';

/** The repository root (the directory holding package.json and PROTOCOL.md). */
export const ROOT: string = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'spec', 'vectors'))) return d;
    d = dirname(d);
  }
  throw new Error('repository root not found');
})();

export interface Vector {
  name: string;
  kind: 'preamble' | 'frame' | 'skip' | 'invalid' | 'invalid-body';
  description: string;
  hex: string;
  canonical?: false;
  decoder?: { preamble: boolean; maxFrame: number };
  decoded?: Record<string, unknown> & { typeCode?: number; size?: number };
  expect?: { error: string; wireCode: number; failsAfter?: number };
}

export interface VectorFile {
  protocol: number;
  ids: { router: number; A: string; B: string; C: string; zero: string };
  mesh: { secret: string; dialer: number; acceptor: number; dialerNonce: string; acceptorNonce: string };
  defaultMaxFrame: number;
  vectors: Vector[];
}

export const VECTORS: VectorFile = JSON.parse(readFileSync(join(ROOT, 'spec', 'vectors', 'frames.json'), 'utf8'));
export const byKind = (...kinds: Vector['kind'][]): Vector[] => VECTORS.vectors.filter((v) => kinds.includes(v.kind));
export const vector = (name: string): Vector => {
  const v = VECTORS.vectors.find((x) => x.name === name);
  if (v === undefined) throw new Error(`no vector ${name}`);
  return v;
};
export const hexBuf = (hex: string): Buffer => Buffer.from(hex, 'hex');

/** What a decoder run produced. */
export interface Run {
  versions: number[];
  /** Hex of each frame, in order. */
  frames: string[];
  /** `code` of the PosternError thrown, or null. */
  error: string | null;
  /** Bytes pushed before the push that threw (plus that chunk's length): see failsAfter. */
  consumed: number;
}

/** A sink that records copies of what it gets, plus the raw (buf, start, end) triples. */
export class Recorder implements FrameSink {
  versions: number[] = [];
  frames: string[] = [];
  raw: { buf: Buffer; start: number; end: number }[] = [];
  onFrame: ((buf: Buffer, start: number, end: number) => void) | undefined;
  preamble(version: number): void {
    this.versions.push(version);
  }
  frame(buf: Buffer, start: number, end: number): void {
    this.frames.push(buf.toString('hex', start, end));
    this.raw.push({ buf, start, end });
    this.onFrame?.(buf, start, end);
  }
}

/** Feeds `data` to a fresh decoder in the chunks given by `sizes` (cycled); records errors by code. */
export function decodeChunked(data: Buffer, opts: { preamble?: boolean; maxFrame: number }, sizes: (i: number) => number): Run {
  const rec = new Recorder();
  const d = new Decoder(rec, { maxFrame: opts.maxFrame, preamble: opts.preamble === true });
  let off = 0;
  let i = 0;
  let error: string | null = null;
  while (off < data.length) {
    const n = Math.max(1, Math.min(sizes(i++), data.length - off));
    // A copy per chunk, like a socket hands out: views must never depend on chunk reuse.
    const chunk = Buffer.from(data.subarray(off, off + n));
    off += n;
    try {
      d.push(chunk);
    } catch (err) {
      if (!(err instanceof PosternError)) throw err;
      error = err.code;
      break;
    }
  }
  return { versions: rec.versions, frames: rec.frames, error, consumed: off };
}

export const whole = (data: Buffer, opts: { preamble?: boolean; maxFrame: number }): Run =>
  decodeChunked(data, opts, () => data.length);
export const byteByByte = (data: Buffer, opts: { preamble?: boolean; maxFrame: number }): Run =>
  decodeChunked(data, opts, () => 1);

/**
 * The reference decoder: the rules of PROTOCOL.md §2.2 and §3.3 written as plainly as
 * possible over a whole buffer, with no state machine and no chunk handling.
 */
export function referenceDecode(data: Buffer, opts: { preamble?: boolean; maxFrame: number }): Omit<Run, 'consumed'> {
  const versions: number[] = [];
  const frames: string[] = [];
  let pos = 0;
  if (opts.preamble === true) {
    for (let i = 0; i < PREAMBLE_SIZE; i++) {
      if (pos >= data.length) return { versions, frames, error: null };
      if (i < MAGIC.length && data[pos] !== MAGIC[i]) return { versions, frames, error: ErrorCode.BAD_MAGIC };
      if (i === PREAMBLE_SIZE - 1) versions.push(data[pos]!);
      pos++;
    }
  }
  for (;;) {
    if (data.length - pos < HEADER_SIZE) return { versions, frames, error: null };
    const length = data.readUInt32BE(pos);
    const type = data[pos + 4]!;
    const total = length + 4;
    if (length < 2) return { versions, frames, error: ErrorCode.MALFORMED };
    if (total > opts.maxFrame) return { versions, frames, error: ErrorCode.FRAME_TOO_LARGE };
    const min = MIN_FRAME_SIZE[type];
    if (min === undefined) {
      if (type >= 0x80) {
        pos += total;
        continue;
      }
      return { versions, frames, error: ErrorCode.UNKNOWN_FRAME };
    }
    const max = MAX_FRAME_SIZE_BY_TYPE[type] ?? Infinity;
    if (total < min || total > max) return { versions, frames, error: ErrorCode.MALFORMED };
    if (pos + total > data.length) return { versions, frames, error: null };
    frames.push(data.toString('hex', pos, pos + total));
    pos += total;
  }
}

/** The decoded fields of a frame, in the shape of a vector's `decoded`. */
export function fieldsOf(codec: ControlCodec, buf: Buffer, start: number, end: number): Record<string, unknown> {
  const type = buf[start + 4]!;
  const name = Object.entries(FrameType).find(([, v]) => v === type)?.[0];
  const out: Record<string, unknown> = {
    type: name,
    typeCode: type,
    flags: buf[start + 5],
    length: buf.readUInt32BE(start),
    size: end - start,
  };
  switch (type) {
    case FrameType.REGISTER:
      out['body'] = hexBytes(codec.decodeMap(buf, start, end, 'REGISTER'));
      break;
    case FrameType.REGISTERED:
      out['body'] = hexBytes({ ...codec.decodeRegistered(buf, start, end) });
      break;
    case FrameType.DRAIN:
      out['body'] = { ...codec.decodeDrain(buf, start, end) };
      break;
    case FrameType.LOOKUP:
      out['body'] = hexBytes({ ...codec.decodeLookup(buf, start, end) });
      break;
    case FrameType.LOOKUP_RESULT:
      out['body'] = hexBytes({ ...codec.decodeLookupResult(buf, start, end) });
      break;
    case FrameType.ERROR: {
      const e = readError(buf, start, end);
      Object.assign(out, { code: e.code, seq: e.seq, id: e.id.toString('hex'), text: e.text });
      break;
    }
    case FrameType.CLOSE: {
      const c = readClose(buf, start, end);
      Object.assign(out, { code: c.code, reason: c.reason });
      break;
    }
    case FrameType.PING:
    case FrameType.PONG:
      out['payload'] = buf.toString('hex', start + HEADER_SIZE, end);
      break;
    case FrameType.LINK_HELLO:
    case FrameType.LINK_CHALLENGE:
    case FrameType.LINK_AUTH:
    case FrameType.LINK_READY: {
      out['body'] = hexBytes(codec.decodeMap(buf, start, end, String(name)));
      break;
    }
    case FrameType.SOURCE:
      out['id'] = buf.toString('hex', start + HEADER_SIZE, start + HEADER_SIZE + 16);
      out['hops'] = buf[start + HEADER_SIZE + 16];
      break;
    case FrameType.ROUTE_ERROR: {
      const e = readRouteError(buf, start, end);
      Object.assign(out, { code: e.code, seq: e.seq, id: e.id.toString('hex'), src: e.src.toString('hex'), text: e.text });
      break;
    }
    case FrameType.SEND:
    case FrameType.DELIVER:
      out['id'] = buf.toString('hex', start + RELAY_ID_OFFSET, start + RELAY_ID_OFFSET + 16);
      out['seq'] = buf.readUInt32BE(start + RELAY_SEQ_OFFSET);
      out['payload'] = buf.toString('hex', start + RELAY_HEADER_SIZE, end);
      break;
  }
  return out;
}

/** A map with its byte-string values as hex, the form the vectors use. */
export function hexBytes(m: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v]));
}

/** The inverse of {@link hexBytes} for the keys that hold bytes. */
export function bytesFromHex(m: Record<string, unknown>): Record<string, any> {
  const BYTES = new Set(['id', 'key', 'nonce', 'proof', 'from', 'to', 'resume', 'instance']);
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, BYTES.has(k) && typeof v === 'string' ? Buffer.from(v, 'hex') : v]));
}

export { prng } from '../helpers/random.js';

/** Integer in [0, n). */
export const randInt = (rnd: () => number, n: number): number => Math.floor(rnd() * n);

/** Asserts that `fn` throws a PosternError with `code`; returns it. */
export function throwsCode(fn: () => unknown, code: string, what = ''): PosternError {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof PosternError)) throw new Error(`${what}: expected PosternError ${code}, got ${String(err)}`);
    if (err.code !== code) throw new Error(`${what}: expected ${code}, got ${err.code}`);
    return err;
  }
  throw new Error(`${what}: expected ${code}, nothing thrown`);
}
