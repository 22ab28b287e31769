import { connect, type Socket } from 'node:net';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodeClose, encodePong, encodePreamble, writeRelayHeader } from '../../src/protocol/encoder.js';
import { ControlCodec, readClose, readError } from '../../src/protocol/control.js';
import {
  FrameType,
  HEADER_SIZE,
  PRE_REGISTER_MAX_FRAME,
  PROTOCOL_VERSION,
  RELAY_HEADER_SIZE,
  WIRE_CODE_NAMES,
} from '../../src/protocol/frame.js';

/**
 * The three systems the load generator speaks, each with the raw protocol and no client
 * library: postern (preamble, REGISTER, SEND/DELIVER), the plain forwarder (a hello, then
 * the very same SEND bytes, unparsed by the forwarder) and NATS (CONNECT, SUB, PUB/MSG).
 */

/** Called for every message a receiver gets: the payload is `buf[off, off + len)`. */
export type MessageFn = (buf: Buffer, off: number, len: number) => void;
/** Called with a description of anything unexpected on a connection. */
export type ErrorFn = (what: string) => void;

/**
 * A receiver's fast path, next to its {@link MessageFn}: takes the whole frames of type
 * `type` and its expected size lying in `chunk` from `off` (a frame boundary), and returns
 * the offset of the first frame it did not take. Whatever it leaves, the decoder handles.
 * Without it every frame goes through the decoder's per-frame dispatch, which costs the
 * generator more than the relay costs the router.
 */
export type BulkFn = (chunk: Buffer, dv: DataView, off: number, type: number, head: number) => number;

/** Feeds a chunk to `decoder`, letting `bulk` take the whole frames it knows from a frame boundary on. */
export function feed(decoder: Decoder, chunk: Buffer, bulk: BulkFn | null, type: number, head: number): void {
  let off = 0;
  if (bulk !== null) {
    off = decoder.finishPartial(chunk);
    if (decoder.atFrameStart && chunk.length - off >= head) off = bulk(chunk, new DataView(chunk.buffer, chunk.byteOffset, chunk.length), off, type, head);
  }
  if (off < chunk.length) decoder.push(off === 0 ? chunk : chunk.subarray(off));
}

/** One open, ready connection. */
export interface Conn {
  readonly sock: Socket;
  /** How senders address this connection: a postern ID, a NATS subject, or nothing. */
  readonly dest: Buffer;
  /** Ends the connection politely. */
  close(): void;
}

/** A system under test, as the generator sees it. */
export interface Wire {
  readonly name: SystemName;
  /** Whether frames carry a destination the system routes on (false: pairs only). */
  readonly routes: boolean;
  /** Framing bytes before a payload. */
  head(size: number): number;
  /** Framing bytes after a payload. */
  readonly tail: number;
  openReceiver(index: number, onMessage: MessageFn, onError: ErrorFn, localAddress?: string, bulk?: BulkFn): Promise<Conn>;
  openSender(index: number, onError: ErrorFn, localAddress?: string): Promise<Conn>;
  /** Writes the framing of one message of `size` payload bytes to `dest` at `buf[off]`. */
  writeFrame(buf: Buffer, off: number, dest: Buffer, size: number): void;
  /** Changes the destination of the frame at `buf[off]`. */
  setDest(buf: Buffer, off: number, dest: Buffer): void;
}

export type SystemName = 'postern' | 'plain' | 'nats' | 'mesh' | 'sealed';

/** Opens the connection a wire speaks over (plain TCP by default; benchmarks/transports.ts passes TLS and WebSocket). */
export type Opener = (host: string, port: number, localAddress: string | undefined) => Socket;

function open(host: string, port: number, localAddress: string | undefined): Socket {
  const sock = connect(localAddress === undefined ? { host, port } : { host, port, localAddress });
  sock.setNoDelay(true);
  return sock;
}

function settle(sock: Socket, what: string, timeoutMs = 15_000): { promise: Promise<void>; done: () => void; fail: (e: Error) => void } {
  let done!: () => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`${what}: no answer after ${timeoutMs} ms (${sock.connecting ? 'TCP connect still pending' : `connected, ${sock.bytesRead} bytes read`})`)),
      timeoutMs,
    );
    const onErr = (e: Error): void => {
      clearTimeout(t);
      reject(e);
    };
    const onClose = (): void => {
      clearTimeout(t);
      reject(new Error(`${what}: connection closed during setup`));
    };
    sock.once('error', onErr);
    sock.once('close', onClose);
    done = () => {
      clearTimeout(t);
      sock.off('error', onErr);
      sock.off('close', onClose);
      resolve();
    };
    fail = (e) => {
      clearTimeout(t);
      reject(e);
    };
  });
  return { promise, done, fail };
}

// ---------------------------------------------------------------------------------- postern

const codec = new ControlCodec();
/** Preamble + REGISTER with an empty map, written in one piece by every postern client. */
export const HELLO: Buffer = Buffer.concat([encodePreamble(PROTOCOL_VERSION), ...codec.encodeRegister({})]);
const DUMMY_ID = Buffer.alloc(16, 0xee);

/** A registered postern connection that answers PINGs, as a bare agent would. */
export class PosternConn implements Conn {
  readonly sock: Socket;
  dest: Buffer = DUMMY_ID;
  /** Every DELIVER payload goes here. */
  onMessage: MessageFn | null = null;
  /** Whole DELIVERs of the expected size go here first, when set. */
  bulk: BulkFn | null = null;
  /** PINGs answered. */
  pings = 0;
  /** Set when the router sent CLOSE: its wire code. */
  closeCode = -1;
  private readonly decoder: Decoder;
  private readonly onError: ErrorFn;
  private ready: (() => void) | null = null;
  private closed = false;

  private constructor(sock: Socket, onError: ErrorFn) {
    this.sock = sock;
    this.onError = onError;
    this.decoder = new Decoder(this, { maxFrame: PRE_REGISTER_MAX_FRAME, preamble: true });
    sock.on('data', (chunk: Buffer) => {
      try {
        feed(this.decoder, chunk, this.bulk, FrameType.DELIVER, RELAY_HEADER_SIZE);
      } catch (err) {
        this.onError(`decoder: ${(err as Error).message}`);
        sock.destroy();
      }
    });
    sock.on('error', (err) => {
      if (!this.closed) this.onError(`socket: ${err.message}`);
    });
  }

  /** Connects, registers and resolves once REGISTERED arrived. */
  static async open(host: string, port: number, onError: ErrorFn, localAddress?: string, timeoutMs?: number, opener: Opener = open): Promise<PosternConn> {
    const sock = opener(host, port, localAddress);
    const c = new PosternConn(sock, onError);
    const s = settle(sock, 'postern REGISTER', timeoutMs);
    c.ready = s.done;
    sock.write(HELLO);
    await s.promise;
    return c;
  }

  /** FrameSink: the preamble. */
  preamble(version: number): void {
    if (version !== PROTOCOL_VERSION) this.onError(`router speaks version ${version}`);
  }

  /** FrameSink: one frame. */
  frame(buf: Buffer, start: number, end: number): void {
    const type = buf[start + 4]!;
    if (type === FrameType.DELIVER) {
      if (this.onMessage !== null) this.onMessage(buf, start + RELAY_HEADER_SIZE, end - start - RELAY_HEADER_SIZE);
      return;
    }
    switch (type) {
      case FrameType.PING:
        this.pings++;
        if (!this.closed) this.sock.write(encodePong(buf.subarray(start + HEADER_SIZE, end)));
        return;
      case FrameType.PONG:
        return;
      case FrameType.REGISTERED: {
        const body = codec.decodeRegistered(buf, start, end);
        this.dest = Buffer.from(body.id);
        this.decoder.maxFrame = body.maxFrame;
        const r = this.ready;
        this.ready = null;
        r?.();
        return;
      }
      case FrameType.ERROR: {
        const e = readError(buf, start, end);
        this.onError(`ERROR ${WIRE_CODE_NAMES[e.code] ?? e.code} seq=${e.seq} ${e.text}`);
        return;
      }
      case FrameType.CLOSE: {
        const c = readClose(buf, start, end);
        this.closeCode = c.code;
        if (!this.closed) this.onError(`CLOSE ${WIRE_CODE_NAMES[c.code] ?? c.code} ${c.reason}`);
        this.closed = true;
        this.sock.end();
        return;
      }
      default:
        this.onError(`unexpected frame type 0x${type.toString(16)}`);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.end(encodeClose(0, 'bench done'));
  }
}

/**
 * postern: routes on the 16-byte ID of each SEND. Senders connect to `sendPort` (default
 * `port`): a second router of a mesh, so every message crosses the link. `flags` go on every
 * SEND: Flag.SEALED (0x04) makes it sealed traffic as far as the router can tell (it never
 * looks inside a payload).
 */
export function posternWire(host: string, port: number, sendPort = port, flags = 0, opener: Opener = open): Wire {
  return {
    name: flags !== 0 ? 'sealed' : sendPort === port ? 'postern' : 'mesh',
    routes: true,
    head: () => RELAY_HEADER_SIZE,
    tail: 0,
    async openReceiver(_i, onMessage, onError, localAddress, bulk) {
      const c = await PosternConn.open(host, port, onError, localAddress, undefined, opener);
      c.onMessage = onMessage;
      c.bulk = bulk ?? null;
      return c;
    },
    openSender: (_i, onError, localAddress) => PosternConn.open(host, sendPort, onError, localAddress, undefined, opener),
    writeFrame(buf, off, dest, size) {
      writeRelayHeader(buf, off, FrameType.SEND, flags, dest, 0, size);
    },
    setDest(buf, off, dest) {
      dest.copy(buf, off + 6);
    },
  };
}

// ------------------------------------------------------------------------------------ plain

/**
 * The plain forwarder: same bytes as postern (SEND frames), but the forwarder pipes them
 * unparsed from sender N to receiver N; the receiver parses them with the same decoder.
 */
export function plainWire(host: string, port: number): Wire {
  const hello = (role: number, n: number): Buffer => {
    const b = Buffer.alloc(5);
    b[0] = role;
    b.writeUInt32BE(n, 1);
    return b;
  };
  async function openConn(role: number, n: number, onError: ErrorFn, onMessage: MessageFn | null, localAddress?: string, bulk?: BulkFn): Promise<Conn> {
    const sock = open(host, port, localAddress);
    const s = settle(sock, 'plain hello');
    let acked = false;
    const decoder = new Decoder(
      {
        frame(buf, start, end) {
          if (buf[start + 4] !== FrameType.SEND) onError(`plain: unexpected frame type ${buf[start + 4]}`);
          else onMessage?.(buf, start + RELAY_HEADER_SIZE, end - start - RELAY_HEADER_SIZE);
        },
      },
      { maxFrame: 1 << 24 },
    );
    sock.on('data', (chunk: Buffer) => {
      if (!acked) {
        acked = true;
        s.done();
        if (chunk.length === 1) return;
        chunk = chunk.subarray(1);
      }
      try {
        feed(decoder, chunk, bulk ?? null, FrameType.SEND, RELAY_HEADER_SIZE);
      } catch (err) {
        onError(`plain decoder: ${(err as Error).message}`);
      }
    });
    let closing = false;
    sock.on('error', (err) => {
      if (!closing) onError(`plain socket: ${err.message}`);
    });
    sock.write(hello(role, n));
    await s.promise;
    return {
      sock,
      dest: DUMMY_ID,
      close() {
        closing = true;
        sock.end();
      },
    };
  }
  return {
    name: 'plain',
    routes: false,
    head: () => RELAY_HEADER_SIZE,
    tail: 0,
    openReceiver: (i, onMessage, onError, la, bulk) => openConn(0x52, i, onError, onMessage, la, bulk),
    openSender: (i, onError, la) => openConn(0x53, i, onError, null, la),
    writeFrame(buf, off, dest, size) {
      writeRelayHeader(buf, off, FrameType.SEND, 0, dest, 0, size);
    },
    setDest(buf, off, dest) {
      dest.copy(buf, off + 6);
    },
  };
}

// ------------------------------------------------------------------------------------- NATS

const CRLF = 0x0a;

/**
 * A NATS protocol reader for the benchmark's receivers: `MSG <subject> <sid> <size>\r\n`
 * then the payload and `\r\n`; answers PING; reports -ERR. A payload that straddles chunks
 * is copied once into a buffer of its size, as the postern decoder does.
 */
export class NatsReader {
  private rest: Buffer | null = null;
  private pend: Buffer | null = null;
  private pendLen = 0;
  constructor(
    private readonly sock: Socket,
    private readonly onMessage: MessageFn | null,
    private readonly onError: ErrorFn,
    private onPong: (() => void) | null,
  ) {}

  push(chunk: Buffer): void {
    let off = 0;
    if (this.pend !== null) {
      const p = this.pend;
      const n = Math.min(p.length - this.pendLen, chunk.length);
      chunk.copy(p, this.pendLen, 0, n);
      this.pendLen += n;
      off = n;
      if (this.pendLen < p.length) return;
      this.pend = null;
      this.onMessage?.(p, 0, p.length - 2);
    }
    if (this.rest !== null) {
      chunk = Buffer.concat([this.rest, chunk.subarray(off)]);
      this.rest = null;
      off = 0;
    }
    const len = chunk.length;
    while (off < len) {
      const nl = chunk.indexOf(CRLF, off);
      if (nl < 0) {
        this.rest = Buffer.from(chunk.subarray(off));
        return;
      }
      const c0 = chunk[off];
      if (c0 === 0x4d /* M */) {
        // MSG <subject> <sid> [reply] <size>\r\n: the size is the last token.
        let i = nl - 2;
        let size = 0;
        let mul = 1;
        while (chunk[i] !== 0x20) {
          size += (chunk[i]! - 48) * mul;
          mul *= 10;
          i--;
        }
        const p = nl + 1;
        const end = p + size + 2;
        if (end <= len) {
          this.onMessage?.(chunk, p, size);
          off = end;
        } else {
          const buf = Buffer.allocUnsafe(size + 2);
          chunk.copy(buf, 0, p, len);
          this.pend = buf;
          this.pendLen = len - p;
          return;
        }
        continue;
      }
      const line = chunk.toString('latin1', off, nl - 1);
      off = nl + 1;
      if (line === 'PING') this.sock.write('PONG\r\n');
      else if (line === 'PONG') {
        const f = this.onPong;
        this.onPong = null;
        f?.();
      } else if (line.startsWith('-ERR')) this.onError(`nats: ${line}`);
      // INFO and +OK need nothing
    }
  }
}

/** The subject of receiver `i`: fixed width, so a sender can rewrite it in place. */
function subject(i: number): Buffer {
  return Buffer.from(`r.${String(i).padStart(5, '0')}`);
}

/** NATS: PUB to the receiver's subject; each receiver SUBscribes to its own. */
export function natsWire(host: string, port: number): Wire {
  async function openConn(sub: Buffer | null, onError: ErrorFn, onMessage: MessageFn | null, la?: string): Promise<Conn> {
    const sock = open(host, port, la);
    const s = settle(sock, 'nats CONNECT');
    const reader = new NatsReader(sock, onMessage, onError, s.done);
    let closing = false;
    sock.on('data', (chunk: Buffer) => reader.push(chunk));
    sock.on('error', (err) => {
      if (!closing) onError(`nats socket: ${err.message}`);
    });
    sock.write(
      'CONNECT {"verbose":false,"pedantic":false,"echo":false,"lang":"postern-bench","version":"1"}\r\n' +
        (sub !== null ? `SUB ${sub.toString()} 1\r\n` : '') +
        'PING\r\n',
    );
    await s.promise;
    return {
      sock,
      dest: sub ?? subject(0),
      close() {
        closing = true;
        sock.end();
      },
    };
  }
  return {
    name: 'nats',
    routes: true,
    head: (size) => 4 + 7 + 1 + String(size).length + 2,
    tail: 2,
    openReceiver: (i, onMessage, onError, la) => openConn(subject(i), onError, onMessage, la),
    openSender: (_i, onError, la) => openConn(null, onError, null, la),
    writeFrame(buf, off, dest, size) {
      const h = `PUB ${dest.toString()} ${size}\r\n`;
      buf.write(h, off, 'latin1');
      const end = off + h.length + size;
      buf[end] = 0x0d;
      buf[end + 1] = 0x0a;
    },
    setDest(buf, off, dest) {
      dest.copy(buf, off + 4);
    },
  };
}

/**
 * Waits until a message sent through router `sendPort` reaches an agent of router `port`
 * (the mesh link is up). Resolves false after `timeoutMs`.
 */
export async function probeMesh(host: string, port: number, sendPort: number, timeoutMs = 10_000): Promise<boolean> {
  const ignore = (): void => {};
  const r = await PosternConn.open(host, port, ignore);
  const s = await PosternConn.open(host, sendPort, ignore);
  let got = false;
  r.onMessage = () => {
    got = true;
  };
  const frame = Buffer.alloc(RELAY_HEADER_SIZE + 16);
  writeRelayHeader(frame, 0, FrameType.SEND, 0, r.dest, 1, 16);
  const deadline = Date.now() + timeoutMs;
  while (!got && Date.now() < deadline) {
    s.sock.write(frame);
    await new Promise((res) => setTimeout(res, 100));
  }
  r.close();
  s.close();
  return got;
}
