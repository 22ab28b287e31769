import { Packr } from 'msgpackr';
import {
  CLOSE_FIXED_SIZE,
  ERROR_FIXED_SIZE,
  FrameType,
  HEADER_SIZE,
  ID_SIZE,
  MAX_MAX_FRAME,
  MIN_MAX_FRAME,
} from './frame.js';
import { encodeFrame } from './encoder.js';
import { ErrorCode, PosternError } from './errors.js';
import { isValidRouterId } from './id.js';
import { readMap } from './msgpack.js';
import { RegisteredTemplate } from './registered-template.js';

/**
 * Bodies of control frames. REGISTER and REGISTERED carry a MessagePack map with string
 * keys; ERROR and CLOSE have fixed binary bodies so that a router can answer a SEND without
 * an encoder. Every decoded body is shape-checked; a bad one is POSTERN_ERR_MALFORMED. [P-4]
 */

/** REGISTER body as an agent writes it: the keys of {@link RegisterRequest}, plus any others. [P-4.1] */
export interface RegisterBody {
  [key: string]: unknown;
}

/**
 * A REGISTER body as the router reads it: every key version 1 defines, type-checked, and
 * nothing else (unknown keys are skipped whatever their value). [P-4.1] [P-11.1] [P-12.3] [P-12.7]
 */
export interface RegisterRequest {
  /** `anonymous: true`: no agent ID, every SEND is anonymous. Absent means false. */
  anonymous: boolean;
  /** The agent's X25519 public key for the key directory (32 bytes, a copy). */
  key?: Buffer;
  /** The ID to take back (16 bytes, a copy); only meaningful with `resume`. */
  id?: Buffer;
  /** The resume token for `id` (a copy). */
  resume?: Buffer;
  /** The admission token. */
  token?: string;
  /** `stable: true`: register for the stable ID of `key` (PROTOCOL.md §15). Absent means false. */
  stable: boolean;
  /** The stable-ID proof, in the second REGISTER only (a copy; its length is the §15 check's). */
  proof?: Buffer;
}

/** REGISTERED body (router → agent): everything the agent must honour. [P-4.2] */
export interface RegisteredBody {
  /** The assigned agent ID, 16 bytes. */
  id: Uint8Array;
  /** The router's ID (the first 4 bytes of `id`). */
  router: number;
  /** Largest frame, length field included, the router accepts from now on and may send. */
  maxFrame: number;
  /** Keepalive interval in ms: a side that has received nothing for this long sends PING. */
  keepalive: number;
  /** Silence in ms after which either side closes the connection (1.5 x keepalive). */
  timeout: number;
  /** True for an anonymous connection: `id` is then all zeros. [P-11.1] */
  anonymous?: boolean;
  /** Resume token to present when reconnecting within `resumeGrace` ms. [P-12.3] */
  resume?: Uint8Array;
  /** Ms the router holds this ID (and messages for it) after the connection is lost. */
  resumeGrace?: number;
  /** True when this registration resumed an earlier one (same `id`). */
  resumed?: boolean;
  /** Other routers to fail over to, as addresses of PROTOCOL.md §13.1 (at most 16). [P-13.7] */
  alternates?: string[];
}

/** DRAIN body (router → agent). [P-12.1] */
export interface DrainBody {
  /** Ms to wait before reconnecting (spread over 0..after with jitter by the agent). */
  after: number;
  /** Ms after which the router closes connections still open. */
  grace: number;
  /** Other routers to reconnect to, as host:port (may be empty: reconnect to the same address). */
  alternates: string[];
}

/** LOOKUP body: which ID's key, and a reference echoed in the answer. [P-11.4] */
export interface LookupBody {
  ref: number;
  id: Uint8Array;
  /** On router links only: who asked (an ID or a reply handle). */
  from?: Uint8Array;
}

/** LOOKUP_RESULT body. [P-11.4] */
export interface LookupResultBody {
  ref: number;
  id: Uint8Array;
  /** The X25519 public key the ID registered. */
  key: Uint8Array;
  /** On router links only: who asked. */
  to?: Uint8Array;
}

/** A decoded ERROR frame. [P-7.1] */
export interface ErrorFrame {
  code: number;
  seq: number;
  /** The ID the error concerns (a view into the frame), all zeros when none. */
  id: Buffer;
  text: string;
}

/** A decoded CLOSE frame. [P-9.1-1] */
export interface CloseFrame {
  code: number;
  reason: string;
}

/**
 * Encodes and decodes MessagePack control bodies. One instance per router or agent: no
 * module-level encoder state. `useRecords: false` so no peer depends on structure state.
 */
export class ControlCodec {
  private readonly packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

  /** The REGISTER frame's chunks. */
  encodeRegister(body: RegisterBody = {}): Buffer[] {
    return encodeFrame(FrameType.REGISTER, this.packr.pack(body));
  }

  // A router's REGISTERED differ only in the ID and the resume token: see registered-template.ts.
  private readonly registered = new RegisteredTemplate((body) => this.encodeRegisteredPlain(body));

  /** The REGISTERED frame's chunks (for the common shape, one buffer from a template: the same bytes). */
  encodeRegistered(body: RegisteredBody): Buffer[] {
    return this.registered.encode(body) ?? this.encodeRegisteredPlain(body);
  }

  /** @internal The REGISTERED frame's chunks, packed from scratch: the reference the template is built and tested against. */
  encodeRegisteredPlain(body: RegisteredBody): Buffer[] {
    // Key order fixed so the bytes match the vectors in PROTOCOL.md.
    const ordered: Record<string, unknown> = {
      id: Buffer.from(body.id),
      router: body.router,
      maxFrame: body.maxFrame,
      keepalive: body.keepalive,
      timeout: body.timeout,
    };
    if (body.anonymous === true) ordered['anonymous'] = true;
    if (body.resume !== undefined) ordered['resume'] = Buffer.from(body.resume);
    if (body.resumeGrace !== undefined) ordered['resumeGrace'] = body.resumeGrace;
    if (body.resumed === true) ordered['resumed'] = true;
    if (body.alternates !== undefined && body.alternates.length > 0) ordered['alternates'] = body.alternates;
    return encodeFrame(FrameType.REGISTERED, this.packr.pack(ordered));
  }

  /**
   * Decodes and checks a REGISTER body from frame bytes `[start, end)`: a defined key with a
   * value of the wrong type is MALFORMED, as is `anonymous: true` together with `key` (an
   * anonymous connection has no ID to publish a key under, and dropping the key silently
   * would leave the agent believing it is in the directory). [P-4.1] [P-11.1]
   */
  decodeRegister(buf: Buffer, start: number, end: number): RegisterRequest {
    const m = this.map(buf, start, end, 'REGISTER');
    const anonymous = m['anonymous'];
    // [P-11.1-1] never a visible registration for an agent that asked, however oddly, for anonymity
    if (anonymous !== undefined && typeof anonymous !== 'boolean') malformed('REGISTER.anonymous must be a boolean');
    const out: RegisterRequest = { anonymous: anonymous === true, stable: false };
    const key = m['key'];
    if (key !== undefined) {
      if (!(key instanceof Uint8Array) || key.length !== 32) malformed('REGISTER.key must be 32 bytes of bin'); // [P-11.1-2]
      if (out.anonymous) malformed('REGISTER.key cannot go with anonymous: true'); // [P-11.1-3]
      out.key = Buffer.from(key);
    }
    const id = m['id'];
    if (id !== undefined) out.id = bytes16(id, 'REGISTER.id');
    const resume = m['resume'];
    if (resume !== undefined) {
      if (!(resume instanceof Uint8Array)) malformed('REGISTER.resume must be bin');
      out.resume = Buffer.from(resume);
    }
    const token = m['token'];
    if (token !== undefined) {
      if (typeof token !== 'string') malformed('REGISTER.token must be a string');
      out.token = token;
    }
    const stable = m['stable'];
    if (stable !== undefined && typeof stable !== 'boolean') malformed('REGISTER.stable must be a boolean');
    out.stable = stable === true;
    const proof = m['proof'];
    if (proof !== undefined) {
      if (!(proof instanceof Uint8Array)) malformed('REGISTER.proof must be bin');
      out.proof = Buffer.from(proof);
    }
    return out;
  }

  /** Decodes and shape-checks a REGISTERED body from frame bytes `[start, end)`. */
  decodeRegistered(buf: Buffer, start: number, end: number): RegisteredBody {
    const m = this.map(buf, start, end, 'REGISTERED');
    const id = m['id'];
    if (!(id instanceof Uint8Array) || id.length !== ID_SIZE) malformed('REGISTERED.id must be 16 bytes');
    const router = uint(m['router'], 'router');
    if (!isValidRouterId(router)) malformed('REGISTERED.router must be an integer in 1..2^32-1');
    const anonymous = m['anonymous'];
    if (anonymous !== undefined && typeof anonymous !== 'boolean') malformed('REGISTERED.anonymous must be a boolean');
    if (anonymous === true) {
      if (id.some((b) => b !== 0)) malformed('REGISTERED.id of an anonymous connection must be all zeros');
    } else if (Buffer.from(id.buffer, id.byteOffset, 4).readUInt32BE(0) !== router) {
      malformed('REGISTERED.id does not embed REGISTERED.router');
    }
    const resume = m['resume'];
    if (resume !== undefined && (!(resume instanceof Uint8Array) || resume.length < 16 || resume.length > 64)) {
      malformed('REGISTERED.resume must be 16..64 bytes');
    }
    const resumeGrace = m['resumeGrace'] === undefined ? undefined : uint(m['resumeGrace'], 'resumeGrace');
    const resumed = m['resumed'];
    if (resumed !== undefined && typeof resumed !== 'boolean') malformed('REGISTERED.resumed must be a boolean');
    const maxFrame = uint(m['maxFrame'], 'maxFrame');
    if (maxFrame < MIN_MAX_FRAME || maxFrame > MAX_MAX_FRAME) {
      malformed(`REGISTERED.maxFrame must be in ${MIN_MAX_FRAME}..${MAX_MAX_FRAME}`);
    }
    const keepalive = uint(m['keepalive'], 'keepalive');
    const timeout = uint(m['timeout'], 'timeout');
    if (keepalive < 1 || timeout < keepalive) malformed('REGISTERED.keepalive must be >= 1 and timeout >= keepalive');
    const out: RegisteredBody = { id: Buffer.from(id), router, maxFrame, keepalive, timeout };
    if (anonymous === true) out.anonymous = true;
    if (resume !== undefined) out.resume = Buffer.from(resume as Uint8Array);
    if (resumeGrace !== undefined) out.resumeGrace = resumeGrace;
    if (resumed === true) out.resumed = true;
    // [P-13.7] the same shape as DRAIN's alternates.
    const alternates = m['alternates'];
    if (alternates !== undefined) {
      if (!Array.isArray(alternates) || alternates.length > 16 || !alternates.every((a) => typeof a === 'string' && Buffer.byteLength(a) <= 262)) {
        malformed('REGISTERED.alternates must be at most 16 strings of at most 262 bytes');
      }
      out.alternates = alternates as string[];
    }
    return out;
  }

  /** DRAIN frame chunks. */
  encodeDrain(body: DrainBody): Buffer[] {
    return encodeFrame(FrameType.DRAIN, this.packr.pack({ after: body.after, grace: body.grace, alternates: body.alternates }));
  }

  /** Decodes and shape-checks a DRAIN body. */
  decodeDrain(buf: Buffer, start: number, end: number): DrainBody {
    const m = this.map(buf, start, end, 'DRAIN');
    const alternates = m['alternates'] ?? [];
    if (!Array.isArray(alternates) || alternates.length > 16 || !alternates.every((a) => typeof a === 'string' && a.length <= 262)) {
      malformed('DRAIN.alternates must be at most 16 host:port strings');
    }
    return { after: uint(m['after'], 'after', 'DRAIN'), grace: uint(m['grace'], 'grace', 'DRAIN'), alternates: alternates as string[] };
  }

  /** LOOKUP frame chunks. */
  encodeLookup(body: LookupBody): Buffer[] {
    const m: Record<string, unknown> = { ref: body.ref, id: Buffer.from(body.id) };
    if (body.from !== undefined) m['from'] = Buffer.from(body.from);
    return encodeFrame(FrameType.LOOKUP, this.packr.pack(m));
  }

  /** Decodes and shape-checks a LOOKUP body. */
  decodeLookup(buf: Buffer, start: number, end: number): LookupBody {
    const m = this.map(buf, start, end, 'LOOKUP');
    const out: LookupBody = { ref: ref(m['ref'], 'LOOKUP'), id: bytes16(m['id'], 'LOOKUP.id') };
    if (m['from'] !== undefined) out.from = bytes16(m['from'], 'LOOKUP.from');
    return out;
  }

  /** LOOKUP_RESULT frame chunks. */
  encodeLookupResult(body: LookupResultBody): Buffer[] {
    const m: Record<string, unknown> = { ref: body.ref, id: Buffer.from(body.id), key: Buffer.from(body.key) };
    if (body.to !== undefined) m['to'] = Buffer.from(body.to);
    return encodeFrame(FrameType.LOOKUP_RESULT, this.packr.pack(m));
  }

  /** Decodes and shape-checks a LOOKUP_RESULT body. */
  decodeLookupResult(buf: Buffer, start: number, end: number): LookupResultBody {
    const m = this.map(buf, start, end, 'LOOKUP_RESULT');
    const key = m['key'];
    if (!(key instanceof Uint8Array) || key.length !== 32) malformed('LOOKUP_RESULT.key must be 32 bytes');
    const out: LookupResultBody = { ref: ref(m['ref'], 'LOOKUP_RESULT'), id: bytes16(m['id'], 'LOOKUP_RESULT.id'), key: Buffer.from(key) };
    if (m['to'] !== undefined) out.to = bytes16(m['to'], 'LOOKUP_RESULT.to');
    return out;
  }

  /** A control frame of `type` whose body is the MessagePack map `body` (keys in insertion order). */
  encodeMap(type: number, body: Record<string, unknown>): Buffer[] {
    return encodeFrame(type, this.packr.pack(body));
  }

  /** Decodes the MessagePack map body of the frame at `[start, end)`; `what` names it in errors. */
  decodeMap(buf: Buffer, start: number, end: number, what: string): Record<string, unknown> {
    return this.map(buf, start, end, what);
  }

  private map(buf: Buffer, start: number, end: number, what: string): Record<string, unknown> {
    // [P-4.1-2] [P-4.1-5] exactly one map with string keys; values of unknown keys are read, never interpreted
    if (start + HEADER_SIZE >= end) malformed(`${what} body must be a MessagePack map`);
    return readMap(buf, start + HEADER_SIZE, end, what);
  }
}

/** Reads an ERROR frame at `[start, end)`. The frame's size was checked by the decoder. */
export function readError(buf: Buffer, start: number, end: number): ErrorFrame {
  return {
    code: buf.readUInt16BE(start + HEADER_SIZE),
    seq: buf.readUInt32BE(start + HEADER_SIZE + 2),
    id: buf.subarray(start + HEADER_SIZE + 6, start + ERROR_FIXED_SIZE),
    text: utf8(buf, start + ERROR_FIXED_SIZE, end),
  };
}

/** A decoded ROUTE_ERROR frame (router links). [P-10.5] */
export interface RouteErrorFrame extends ErrorFrame {
  /** The sender the error is for (a view into the frame). */
  src: Buffer;
}

/** Reads a ROUTE_ERROR frame at `[start, end)`. */
export function readRouteError(buf: Buffer, start: number, end: number): RouteErrorFrame {
  return {
    code: buf.readUInt16BE(start + HEADER_SIZE),
    seq: buf.readUInt32BE(start + HEADER_SIZE + 2),
    id: buf.subarray(start + HEADER_SIZE + 6, start + HEADER_SIZE + 6 + ID_SIZE),
    src: buf.subarray(start + HEADER_SIZE + 6 + ID_SIZE, start + HEADER_SIZE + 6 + 2 * ID_SIZE),
    text: utf8(buf, start + HEADER_SIZE + 6 + 2 * ID_SIZE, end),
  };
}

/** Reads a CLOSE frame at `[start, end)`. */
export function readClose(buf: Buffer, start: number, end: number): CloseFrame {
  return { code: buf.readUInt16BE(start + HEADER_SIZE), reason: utf8(buf, start + CLOSE_FIXED_SIZE, end) };
}

// [P-3.6] Text from the peer is informational; cap it so a log line stays a line. Invalid
// UTF-8 becomes U+FFFD rather than an error.
function utf8(buf: Buffer, start: number, end: number): string {
  return buf.toString('utf8', start, Math.min(end, start + 512));
}

// [P-4.2-4] any integer width is accepted; uint64/int64 beyond 2^53 come as bigint.
function uint(v: unknown, key: string, frame = 'REGISTERED'): number {
  if (typeof v === 'bigint' && v >= 0n && v <= 0xffffffffn) return Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    malformed(`${frame}.${key} must be an unsigned integer`);
  }
  return v;
}

// [P-11.4-1] a ref is a u32 other than 0: an ERROR with seq 0 is about no request (§7.1).
function ref(v: unknown, frame: string): number {
  const r = uint(v, 'ref', frame);
  if (r === 0) malformed(`${frame}.ref must be in 1..2^32-1`);
  return r;
}

function bytes16(v: unknown, what: string): Buffer {
  if (!(v instanceof Uint8Array) || v.length !== ID_SIZE) malformed(`${what} must be 16 bytes`);
  return Buffer.from(v);
}

function malformed(message: string): never {
  throw new PosternError(ErrorCode.MALFORMED, message);
}
