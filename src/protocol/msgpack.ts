import { ErrorCode, PosternError } from './errors.js';

/**
 * A strict MessagePack reader for control bodies (§4.1 of PROTOCOL.md). msgpackr is kept
 * for encoding; decoding goes through this reader because a shared wire needs rules
 * msgpackr does not give: the top-level map's keys must be strings (a non-string key is
 * MALFORMED), values of any type are read without being interpreted (extension values
 * become {@link MsgExt}, never a Date or a structured-clone object), floats stay
 * distinguishable from integers ({@link MsgFloat}), nesting is bounded, and no count a
 * peer declares is allocated before the bytes to back it are known to be there. [P-4.1]
 */

/** A MessagePack float, kept apart from integers so `1.0` never passes as an integer. */
export class MsgFloat {
  constructor(readonly value: number) {}
}

/** A MessagePack extension value: its type and a copy of its data, not interpreted. */
export class MsgExt {
  constructor(
    readonly type: number,
    readonly data: Buffer,
  ) {}
}

/** Deepest nesting of arrays and maps a control body may use. */
export const MAX_DEPTH = 16;

/**
 * Decodes `buf[start, end)` as exactly one MessagePack map with string keys. Nested maps
 * become `Map` objects (no control body defines one; they are only ever skipped). A repeated
 * key keeps its last value. Anything else, trailing bytes included, throws MALFORMED.
 */
export function readMap(buf: Buffer, start: number, end: number, what: string): Record<string, unknown> {
  const r: Reader = new Reader(buf, start, end, what);
  const n = r.mapHeader();
  if (n < 0) r.fail('body must be a MessagePack map');
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = r.value(1);
    if (typeof k !== 'string') r.fail('map keys must be strings'); // [P-4.1-6]
    // defineProperty: a key "__proto__" is data, never the object's prototype.
    Object.defineProperty(out, k, { value: r.value(1), enumerable: true, writable: true, configurable: true });
  }
  if (r.pos !== end) r.fail('trailing bytes after the map');
  return out;
}

class Reader {
  pos: number;
  constructor(
    private readonly buf: Buffer,
    start: number,
    private readonly end: number,
    private readonly what: string,
  ) {
    this.pos = start;
  }

  fail(msg: string): never {
    throw new PosternError(ErrorCode.MALFORMED, `${this.what} ${msg}`);
  }

  private need(n: number): number {
    if (this.end - this.pos < n) this.fail('body is truncated MessagePack');
    const p = this.pos;
    this.pos += n;
    return p;
  }

  private u8(): number {
    return this.buf[this.need(1)]!;
  }

  private uint(bytes: number): number {
    const p = this.need(bytes);
    return bytes === 1 ? this.buf[p]! : bytes === 2 ? this.buf.readUInt16BE(p) : this.buf.readUInt32BE(p);
  }

  /** Map entry count when the next value is a map (consumed), else -1 (nothing consumed). */
  mapHeader(): number {
    if (this.pos >= this.end) this.fail('body is empty');
    const b = this.buf[this.pos]!;
    if ((b & 0xf0) === 0x80) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === 0xde || b === 0xdf) {
      this.pos++;
      return this.count(b === 0xde ? 2 : 4, 2);
    }
    return -1;
  }

  /** A declared element count, refused when the bytes left cannot hold that many. */
  private count(bytes: number, per: number): number {
    const n = this.uint(bytes);
    if (n * per > this.end - this.pos) this.fail('declares more elements than it holds');
    return n;
  }

  private bytes(n: number): Buffer {
    const p = this.need(n);
    return Buffer.from(this.buf.subarray(p, p + n));
  }

  private str(n: number): string {
    const p = this.need(n);
    return this.buf.toString('utf8', p, p + n);
  }

  value(depth: number): unknown {
    if (depth > MAX_DEPTH) this.fail(`nests deeper than ${MAX_DEPTH}`);
    const b = this.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if ((b & 0xe0) === 0xa0) return this.str(b & 0x1f);
    if ((b & 0xf0) === 0x90) return this.array(b & 0x0f, depth);
    if ((b & 0xf0) === 0x80) return this.map(b & 0x0f, depth);
    const buf = this.buf;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
      case 0xc5:
      case 0xc6:
        return this.bytes(this.uint(1 << (b - 0xc4)));
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        const n = this.uint(1 << (b - 0xc7));
        const type = buf.readInt8(this.need(1));
        return new MsgExt(type, this.bytes(n));
      }
      case 0xca:
        return new MsgFloat(buf.readFloatBE(this.need(4)));
      case 0xcb:
        return new MsgFloat(buf.readDoubleBE(this.need(8)));
      case 0xcc:
        return this.uint(1);
      case 0xcd:
        return this.uint(2);
      case 0xce:
        return this.uint(4);
      case 0xcf: {
        const v = buf.readBigUInt64BE(this.need(8));
        return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      case 0xd0:
        return buf.readInt8(this.need(1));
      case 0xd1:
        return buf.readInt16BE(this.need(2));
      case 0xd2:
        return buf.readInt32BE(this.need(4));
      case 0xd3: {
        const v = buf.readBigInt64BE(this.need(8));
        return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
      }
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8: {
        const type = buf.readInt8(this.need(1));
        return new MsgExt(type, this.bytes(1 << (b - 0xd4)));
      }
      case 0xd9:
      case 0xda:
      case 0xdb:
        return this.str(this.uint(1 << (b - 0xd9)));
      case 0xdc:
      case 0xdd:
        return this.array(this.count(b === 0xdc ? 2 : 4, 1), depth);
      case 0xde:
      case 0xdf:
        return this.map(this.count(b === 0xde ? 2 : 4, 2), depth);
      default: // 0xc1 is never used
        return this.fail(`has the unused MessagePack byte 0x${b.toString(16)}`);
    }
  }

  private array(n: number, depth: number): unknown[] {
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
    return out;
  }

  private map(n: number, depth: number): Map<unknown, unknown> {
    const out = new Map<unknown, unknown>();
    for (let i = 0; i < n; i++) {
      const k = this.value(depth + 1);
      out.set(k, this.value(depth + 1));
    }
    return out;
  }
}
