import {
  HEADER_SIZE,
  LENGTH_SIZE,
  MAGIC,
  MAX_FRAME_SIZE_BY_TYPE,
  MIN_FRAME_SIZE,
  OPTIONAL_TYPE_BIT,
  PREAMBLE_SIZE,
} from './frame.js';
import { ErrorCode, PosternError } from './errors.js';

/**
 * Where a {@link Decoder} hands what it decoded. The decoder depends on nothing else.
 */
export interface FrameSink {
  /**
   * The peer's preamble was read; `version` is its version byte (unchecked). Only called
   * when the decoder was made with `preamble: true`.
   */
  preamble?(version: number): void;
  /**
   * One complete frame: bytes `[start, end)` of `buf`, length field included, so
   * `buf[start + 4]` is the type. Ownership: `buf` is either the chunk given to `push()` or
   * a fresh buffer the decoder allocated for a frame that straddled chunks; the decoder
   * never writes to either again, so the sink may keep views of it, edit it in place and
   * pass it to `socket.write()`. Within one `push()`, frames arrive in wire order, and
   * frames taken from the same chunk share that chunk.
   */
  frame(buf: Buffer, start: number, end: number): void;
}

/** Options of a {@link Decoder}. */
export interface DecoderOptions {
  /** Largest total frame size (length field included) accepted, in bytes. Checked when a header is read. */
  maxFrame: number;
  /** Expect the 8-byte preamble before the first frame. Default false. */
  preamble?: boolean;
}

// Per-type tables, so the hot loop does two array reads instead of object lookups.
const MIN_SIZE = new Uint32Array(256);
const MAX_SIZE = new Uint32Array(256).fill(0xffffffff);
const KNOWN = new Uint8Array(256);
for (const [t, n] of Object.entries(MIN_FRAME_SIZE)) {
  MIN_SIZE[Number(t)] = n;
  KNOWN[Number(t)] = 1;
}
for (const [t, n] of Object.entries(MAX_FRAME_SIZE_BY_TYPE)) MAX_SIZE[Number(t)] = n;

/**
 * A pure incremental decoder of postern frames (PROTOCOL.md §2.1, §3). `push(chunk)` in,
 * frames out to the sink. [P-3.1]
 *
 * - Frames wholly inside a chunk are handed out as views of it, without copying.
 * - A frame that straddles chunks is copied once, into a buffer of exactly its size,
 *   allocated only after its header has passed every check.
 * - The declared length is checked against `maxFrame` and the type's bounds when the
 *   6-byte header is read, before any body byte is buffered. [P-3.3]
 * - Unknown optional types (0x80-0xff) are skipped without buffering; unknown critical
 *   types fail. [P-3.2]
 *
 * On a violation `push()` throws a {@link PosternError} (MALFORMED, FRAME_TOO_LARGE,
 * UNKNOWN_FRAME, BAD_MAGIC) and the decoder refuses further input.
 */
export class Decoder {
  /** Current frame size limit; may be changed between pushes (e.g. after registration). */
  maxFrame: number;
  private readonly sink: FrameSink;
  private preambleLeft: number;
  private readonly head = Buffer.allocUnsafe(HEADER_SIZE);
  private headLen = 0;
  private partial: Buffer | null = null;
  private partialLen = 0;
  private skipLeft = 0;
  private stopped = false;

  constructor(sink: FrameSink, options: DecoderOptions) {
    this.sink = sink;
    this.maxFrame = options.maxFrame;
    this.preambleLeft = options.preamble === true ? PREAMBLE_SIZE : 0;
  }

  /**
   * Stops the decoder: frames left in the current chunk are not emitted, later pushes are
   * ignored, and a frame in progress is dropped, so its memory goes with it.
   */
  stop(): void {
    this.stopped = true;
    this.partial = null;
    this.partialLen = 0;
    this.headLen = 0;
  }

  /** True once stopped or failed. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * True when the next byte pushed starts a frame: no preamble, partial frame or skip in
   * progress, not stopped. A caller may then handle whole frames itself and push the rest.
   */
  get atFrameStart(): boolean {
    return !this.stopped && this.preambleLeft === 0 && this.skipLeft === 0 && this.partial === null && this.headLen === 0;
  }

  /**
   * Feeds only the bytes of `chunk` that complete a frame already begun in an earlier
   * push (emitting it), and returns how many were used: 0 when no frame was begun. The
   * rest of the chunk is the caller's, starting at a frame boundary when
   * {@link atFrameStart} is true afterwards. Throws like {@link push}.
   */
  finishPartial(chunk: Buffer): number {
    if (this.stopped || this.preambleLeft > 0) return 0;
    if (this.skipLeft > 0) {
      const n = Math.min(this.skipLeft, chunk.length);
      this.skipLeft -= n;
      return n;
    }
    if (this.partial !== null) return this.fillPartial(chunk, 0);
    if (this.headLen > 0) return this.fillHead(chunk, 0);
    return 0;
  }

  /**
   * The unfilled rest of the frame in progress, as a view of the buffer allocated for it
   * (after its header passed every check), or null when no frame body is in progress. A
   * reader may have the kernel read the frame's remaining bytes straight into it, then call
   * {@link filledRest}: a large frame is then never copied after the kernel. Nothing else
   * may write to the view.
   */
  get partialRest(): Buffer | null {
    const p = this.partial;
    return p === null ? null : p.subarray(this.partialLen);
  }

  /**
   * `n` bytes were written at the start of `rest`, a view {@link partialRest} returned;
   * emits the frame once it is complete. Returns false, and takes nothing, when `rest` is
   * no longer where the frame in progress continues (the decoder was stopped since) or `n`
   * runs past the frame: the bytes then belong to no frame and the caller drops them.
   */
  filledRest(rest: Uint8Array, n: number): boolean {
    const p = this.partial;
    if (p === null || rest.buffer !== p.buffer || rest.byteOffset !== p.byteOffset + this.partialLen || n > p.length - this.partialLen) return false;
    this.partialLen += n;
    if (this.partialLen === p.length) {
      this.partial = null;
      this.partialLen = 0;
      this.sink.frame(p, 0, p.length);
    }
    return true;
  }

  /**
   * Takes `buf[0, n)` as the start of the next frame without copying it, when that frame
   * is exactly `buf.length` bytes long: `buf` becomes the frame's buffer (the rest then
   * goes through {@link partialRest}), or, when all of it is there, the frame is emitted
   * at once. The header is checked first, as by {@link push}. Returns false, having taken
   * nothing, when not at a frame start, when fewer than 6 bytes are there, or when the frame
   * is of another size or one to skip: the caller then pushes the bytes as usual.
   */
  adopt(buf: Buffer, n: number): boolean {
    if (!this.atFrameStart || n < HEADER_SIZE) return false;
    const total = (((buf[0]! << 24) | (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!) >>> 0) + LENGTH_SIZE;
    if (total !== buf.length || !this.check(total, buf[LENGTH_SIZE]!)) return false;
    if (n === total) {
      this.sink.frame(buf, 0, total);
    } else {
      this.partial = buf;
      this.partialLen = n;
    }
    return true;
  }

  /** Bytes held for an incomplete frame (for memory accounting and tests). */
  get buffered(): number {
    return this.partial !== null ? this.partialLen : this.headLen;
  }

  /**
   * Bytes allocated for the frame in progress: its whole declared size from the moment its
   * header is read (the buffer is allocated then), 0 when none. What a caller budgeting
   * memory across decoders counts; the decoder itself enforces only `maxFrame`.
   */
  get reserved(): number {
    return this.partial !== null ? this.partial.length : 0;
  }

  /** Feeds bytes. Throws a coded PosternError on a protocol violation. */
  push(chunk: Buffer): void {
    if (this.stopped) return;
    const len = chunk.length;
    let off = 0;
    if (this.preambleLeft > 0) {
      off = this.readPreamble(chunk);
      if (this.stopped) return;
    }
    if (this.skipLeft > 0) {
      const n = Math.min(this.skipLeft, len - off);
      this.skipLeft -= n;
      off += n;
    }
    if (this.partial !== null) {
      off = this.fillPartial(chunk, off);
    } else if (this.headLen > 0) {
      off = this.fillHead(chunk, off);
    }
    while (len - off >= HEADER_SIZE && !this.stopped) {
      // Byte arithmetic: readUInt32BE validates its offset on every call.
      const total = (((chunk[off]! << 24) | (chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!) >>> 0) + LENGTH_SIZE;
      const type = chunk[off + LENGTH_SIZE]!;
      if (!this.check(total, type)) {
        // An unknown optional frame: skip it.
        const n = Math.min(total, len - off);
        this.skipLeft = total - n;
        off += n;
        continue;
      }
      const end = off + total;
      if (end <= len) {
        this.sink.frame(chunk, off, end);
        off = end;
      } else {
        const p = Buffer.allocUnsafe(total);
        chunk.copy(p, 0, off, len);
        this.partial = p;
        this.partialLen = len - off;
        return;
      }
    }
    if (off < len && !this.stopped) {
      chunk.copy(this.head, 0, off, len);
      this.headLen = len - off;
    }
  }

  /** Validates a header; returns false for a frame to skip, throws for a violation. */
  private check(total: number, type: number): boolean {
    if (total < HEADER_SIZE) {
      this.fail(ErrorCode.MALFORMED, `frame length ${total - LENGTH_SIZE} is shorter than type and flags`);
    }
    if (total > this.maxFrame) {
      this.fail(ErrorCode.FRAME_TOO_LARGE, `frame of ${total} bytes exceeds the limit of ${this.maxFrame}`);
    }
    if (KNOWN[type] === 0) {
      if ((type & OPTIONAL_TYPE_BIT) !== 0) return false;
      this.fail(ErrorCode.UNKNOWN_FRAME, `unknown frame type 0x${type.toString(16).padStart(2, '0')}`);
    }
    if (total < MIN_SIZE[type]! || total > MAX_SIZE[type]!) {
      this.fail(ErrorCode.MALFORMED, `frame type 0x${type.toString(16).padStart(2, '0')} cannot be ${total} bytes long`);
    }
    return true;
  }

  private fail(code: ErrorCode, message: string): never {
    this.stopped = true;
    this.partial = null;
    throw new PosternError(code, message);
  }

  private readPreamble(chunk: Buffer): number {
    let off = 0;
    while (this.preambleLeft > 0 && off < chunk.length) {
      const i = PREAMBLE_SIZE - this.preambleLeft;
      const b = chunk[off]!;
      if (i < MAGIC.length) {
        // [P-2.2] reject at the first byte that differs, without waiting for more
        if (b !== MAGIC[i]) this.fail(ErrorCode.BAD_MAGIC, `not a postern peer (byte ${i} is 0x${b.toString(16).padStart(2, '0')})`);
      }
      this.preambleLeft--;
      off++;
      if (this.preambleLeft === 0) this.sink.preamble?.(b);
    }
    return off;
  }

  private fillHead(chunk: Buffer, off: number): number {
    const n = Math.min(HEADER_SIZE - this.headLen, chunk.length - off);
    chunk.copy(this.head, this.headLen, off, off + n);
    this.headLen += n;
    off += n;
    if (this.headLen < HEADER_SIZE) return off;
    this.headLen = 0;
    const total = this.head.readUInt32BE(0) + LENGTH_SIZE;
    if (!this.check(total, this.head[LENGTH_SIZE]!)) {
      const skip = Math.min(total - HEADER_SIZE, chunk.length - off);
      this.skipLeft = total - HEADER_SIZE - skip;
      return off + skip;
    }
    const p = Buffer.allocUnsafe(total);
    this.head.copy(p, 0, 0, HEADER_SIZE);
    this.partial = p;
    this.partialLen = HEADER_SIZE;
    return this.fillPartial(chunk, off);
  }

  private fillPartial(chunk: Buffer, off: number): number {
    const p = this.partial!;
    const n = Math.min(p.length - this.partialLen, chunk.length - off);
    chunk.copy(p, this.partialLen, off, off + n);
    this.partialLen += n;
    off += n;
    if (this.partialLen === p.length) {
      this.partial = null;
      this.partialLen = 0;
      this.sink.frame(p, 0, p.length);
    }
    return off;
  }
}
