import net from 'node:net';
import { MAGIC, PREAMBLE_SIZE } from '../protocol/frame.js';

/**
 * One side of a connection under test: bytes written as given, bytes read split into a
 * preamble and frames by a lenient splitter (not the strict decoder: the point is to see
 * what a peer sends even when it is wrong). Used by the conformance runner only.
 */

/** A frame as the peer sent it, with the time it was read. */
export interface SeenFrame {
  type: number;
  flags: number;
  /** The whole frame, length field included (a copy). */
  bytes: Buffer;
  /** performance.now() when it was read. */
  at: number;
}

/** Largest frame the splitter will buffer; anything larger marks the stream as unsplittable. */
const SPLIT_LIMIT = 64 * 1024 * 1024 + 4;

/** A connection the runner drives; see module doc. */
export class Probe {
  /** The peer's preamble version, -1 until read, -2 when its magic was wrong. */
  version = -1;
  readonly frames: SeenFrame[] = [];
  /** Every byte received, for reports and the HTTP check. */
  private readonly raw: Buffer[] = [];
  private pending: Buffer = Buffer.alloc(0);
  /** The peer ended its side (or the socket closed). */
  ended = false;
  endedAt = 0;
  /** Set when a declared length was absurd; no further frames are split. */
  garbled = false;
  private waiters: Array<() => void> = [];

  constructor(
    readonly socket: net.Socket,
    private readonly expectPreamble = true,
  ) {
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onEnd());
    socket.on('error', () => this.onEnd());
  }

  /** Dials `host:port`; rejects after `ms`. */
  static dial(host: string, port: number, ms: number): Promise<Probe> {
    const dialledAt = performance.now();
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port });
      s.setNoDelay(true);
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`no TCP connection to ${host}:${port} within ${ms} ms`));
      }, ms);
      s.once('connect', () => {
        clearTimeout(t);
        const p = new Probe(s);
        p.dialledAt = dialledAt;
        resolve(p);
      });
      s.once('error', (err) => {
        clearTimeout(t);
        reject(err);
      });
    });
  }

  private onEnd(): void {
    if (!this.ended) {
      this.ended = true;
      this.endedAt = performance.now();
    }
    this.wake();
  }

  private onData(c: Buffer): void {
    this.raw.push(c);
    this.pending = this.pending.length === 0 ? c : Buffer.concat([this.pending, c]);
    const now = performance.now();
    if (this.version === -1 && this.expectPreamble) {
      if (this.pending.length < PREAMBLE_SIZE) {
        if (!MAGIC.subarray(0, this.pending.length).every((b, i) => this.pending[i] === b)) this.version = -2;
        this.wake();
        return;
      }
      this.version = MAGIC.every((b, i) => this.pending[i] === b) ? this.pending[7]! : -2;
      this.pending = this.pending.subarray(PREAMBLE_SIZE);
    }
    while (!this.garbled && this.version !== -2 && this.pending.length >= 6) {
      const len = this.pending.readUInt32BE(0);
      if (len < 2 || len + 4 > SPLIT_LIMIT) {
        this.garbled = true;
        break;
      }
      if (this.pending.length < len + 4) break;
      const bytes = Buffer.from(this.pending.subarray(0, len + 4));
      this.frames.push({ type: bytes[4]!, flags: bytes[5]!, bytes, at: now });
      this.pending = this.pending.subarray(len + 4);
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** performance.now() just before the last write: the peer cannot have read it earlier. */
  lastWrite = 0;
  /** performance.now() just before dialling (set by {@link Probe.dial}). */
  dialledAt = 0;

  /** Writes the given buffers as one chunk (one TCP segment, as far as the OS allows). */
  write(...bufs: Buffer[]): void {
    this.lastWrite = performance.now();
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(bufs));
  }

  /** Waits until `pred` holds; false after `ms`. */
  async until(pred: () => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!pred()) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return true;
  }

  /** The next frame not yet taken (or null after `ms`, or when the peer ended with none left). */
  async next(ms: number): Promise<SeenFrame | null> {
    await this.until(() => this.frames.length > 0 || this.ended, ms);
    return this.frames.shift() ?? null;
  }

  /** The next frame of one of `types`, skipping PINGs and other frames, or null. */
  async nextOf(types: number[], ms: number): Promise<SeenFrame | null> {
    const deadline = performance.now() + ms;
    for (;;) {
      const f = await this.next(Math.max(0, deadline - performance.now()));
      if (f === null) return null;
      if (types.includes(f.type)) return f;
    }
  }

  /** Everything received, as hex (capped), for a report. */
  rawHex(max = 96): string {
    const all = Buffer.concat(this.raw);
    return all.subarray(0, max).toString('hex') + (all.length > max ? `… (${all.length} bytes)` : '');
  }

  /** Everything received as latin1 text. */
  rawText(): string {
    return Buffer.concat(this.raw).toString('latin1');
  }

  close(): void {
    this.socket.destroy();
  }
}
