/**
 * Reading a plain TCP socket without Node's per-read buffers: the socket is opened with
 * `onread` (see `src/net/dial.ts`), and this reader decides where each read goes.
 *
 * - Normally into a slab: each read fills the slab's free part, and the bytes read are
 *   handed on as a view of it. Views stay valid: a part of the slab once read into is never
 *   read into again (a slab with too little room left is replaced, never reused), so a
 *   message that is a view of it stays intact after the callback, as with Node's own chunks.
 * - While a large frame is in progress (its header read and checked by the decoder, its
 *   buffer allocated at exactly its declared size, at most maxFrame), straight into the rest
 *   of that frame's buffer, and the read stops at the frame's end.
 *
 * - Right after such a frame, when the next read starts a frame, into a fresh buffer of that
 *   frame's size: a stream of equal large messages (the common case) then has each frame
 *   read whole into its own buffer and never copied. The decoder adopts the buffer only
 *   when the header read into it passes its checks and declares exactly that size;
 *   otherwise the read is handed on as a chunk like any other, and the reader returns to
 *   the slab (the guess is at most the last frame's size, itself at most maxFrame).
 *
 * The reader only moves bytes; every check stays in the decoder, which still sees every
 * byte in order (through {@link ReadSink.data} or {@link ReadSink.filled}).
 *
 * TLS and WebSocket streams cannot read into a caller's buffer; they keep Node's 'data'
 * events, and a session on them never meets a reader.
 *
 * @module
 */
import type { Socket } from 'node:net';

/** Where a {@link DirectReader} hands what it read: the session's receive side. */
export interface ReadSink {
  /**
   * The unfilled rest of a frame in progress, where the next read may go without a copy,
   * or null for none (the decoder's `partialRest`).
   */
  rest(): Buffer | null;
  /** True when the next byte read starts a frame (the decoder's `atFrameStart`), in a state that reads frames. */
  atFrameStart(): boolean;
  /** `buf[0, n)` was read at a frame start into a buffer of a guessed frame size: the decoder's `adopt`. False: not taken. */
  adopt(buf: Buffer, n: number): boolean;
  /** `n` bytes were read into `rest`, the view `rest()` returned. */
  filled(rest: Buffer, n: number): void;
  /** Bytes read into the slab: a view that no later read writes to. */
  data(chunk: Buffer): void;
}

/**
 * Bytes of one read slab. A message kept by the user keeps its slab (at most this much)
 * alive, as it kept Node's chunk (at most 64 KiB) before; tiny reads share one slab.
 */
export const SLAB_SIZE = 128 * 1024;
/**
 * A slab with less room than this left is replaced: every read may take 64 KiB, as Node's
 * own reads do. With 16 KiB here (and 64 KiB slabs) 4-16 KiB messages cost 5-10 % more
 * client CPU each (more read calls); with 64 KiB, 5-10 % less than Node's 'data' path.
 */
const READ_MIN = 64 * 1024;
/**
 * A frame of at least this size is read straight into its own buffer, and the next read
 * guesses the same size. A smaller frame goes through the slab: one read then also brings
 * the frames after it. Measured end to end on a shared machine: with 16 KiB here, 16 KiB
 * messages cost 27 instead of 16 us of client CPU each (one read call per frame costs more
 * than the copy it saves); frames near Node's 64 KiB read size take a read call each anyway.
 */
export const DIRECT_MIN = 60 * 1024;

/** The `onread` side of one plain TCP socket. Create it, pass {@link onread} to `net.connect`, then {@link attach}. */
export class DirectReader {
  /** For `net.connect({ onread })`. */
  readonly onread: { buffer: () => Buffer; callback: (n: number, buf: Uint8Array) => boolean };
  /** Reads that went straight into a frame's buffer (for tests and profiles). */
  directReads = 0;
  /** Reads taken as a whole frame's start into a buffer of the guessed size (for tests and profiles). */
  adopted = 0;
  private socket: Socket | null = null;
  private sink: ReadSink | null = null;
  private slab: Buffer = Buffer.allocUnsafe(0);
  private pos = 0;
  /** The frame rest handed out for the coming read, or null when it goes elsewhere. */
  private rest: Buffer | null = null;
  /** The size of the last frame read straight into its buffer, 0 when the last read was not such a frame's. */
  private guess = 0;
  /** The buffer of guessed frame size handed out for the coming read, or null. */
  private spec: Buffer | null = null;

  constructor() {
    this.onread = { buffer: () => this.next(), callback: (n, buf) => this.read(n, buf) };
  }

  /** Ties the reader to its socket: until a sink is bound, what it reads is pushed as the socket's 'data'. */
  attach(socket: Socket): void {
    this.socket = socket;
  }

  /** Hands every later read to `sink` (a session), instead of the socket's 'data' events. */
  bind(sink: ReadSink): void {
    this.sink = sink;
  }

  /** Where the next read goes; Node calls it once at the start and after every read. */
  private next(): Buffer {
    const rest = this.sink?.rest() ?? null;
    this.spec = null;
    if (rest !== null) {
      // Frames of DIRECT_MIN and more have a buffer of their own (never Buffer's pool), so
      // the view ends where the frame does: its end is the frame's size.
      const size = rest.byteOffset + rest.length === rest.buffer.byteLength ? rest.buffer.byteLength : 0;
      if (size >= DIRECT_MIN || rest.length >= DIRECT_MIN) {
        // Even a short rest of a large frame is read alone: the read after it then starts
        // a frame, where the next one of the same size can be read whole into its buffer.
        this.rest = rest;
        this.guess = size;
        return rest;
      }
    }
    this.rest = null;
    if (this.guess > 0 && this.sink!.atFrameStart()) {
      this.spec = Buffer.allocUnsafe(this.guess);
      return this.spec;
    }
    this.guess = 0;
    if (this.slab.length - this.pos < READ_MIN) {
      this.slab = Buffer.allocUnsafe(SLAB_SIZE);
      this.pos = 0;
    }
    return this.slab.subarray(this.pos);
  }

  private read(n: number, _buf: Uint8Array): boolean {
    const rest = this.rest;
    if (rest !== null) {
      this.rest = null;
      this.directReads++;
      this.sink!.filled(rest, n);
      return true;
    }
    const spec = this.spec;
    if (spec !== null) {
      this.spec = null;
      if (this.sink!.adopt(spec, n)) {
        this.adopted++;
        return true;
      }
      // Another frame size: the bytes are an ordinary chunk, and the buffer's unread
      // part is the slab from now on.
      this.guess = 0;
      this.slab = spec;
      this.pos = 0;
    }
    const chunk = this.slab.subarray(this.pos, this.pos + n);
    this.pos += n;
    if (this.sink !== null) this.sink.data(chunk);
    else this.socket?.push(chunk);
    return true;
  }
}

const READER = Symbol('postern.directReader');

/** Marks `socket` as read by `reader` (see `src/net/dial.ts`). */
export function setDirectReader(socket: Socket, reader: DirectReader): void {
  reader.attach(socket);
  (socket as unknown as Record<symbol, DirectReader>)[READER] = reader;
}

/** The reader of a socket opened with one, else undefined (TLS, WebSocket, tests' streams). */
export function directReaderOf(stream: object): DirectReader | undefined {
  return (stream as Record<symbol, DirectReader | undefined>)[READER];
}
