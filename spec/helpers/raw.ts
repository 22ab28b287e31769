/**
 * Test helpers: a raw protocol client (no agent library) and in-memory duplex pairs.
 */
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { ControlCodec, type RegisteredBody } from '../../src/protocol/control.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodePreamble } from '../../src/protocol/encoder.js';
import { MAX_MAX_FRAME, PROTOCOL_VERSION } from '../../src/protocol/frame.js';

/** A decoded frame, copied out of the socket chunk. */
export interface RawFrame {
  type: number;
  flags: number;
  /** The whole frame, length field included. */
  bytes: Buffer;
}

/** Two connected in-memory Duplex ends. */
export function duplexPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

/** Polls `pred` every 10 ms until it holds, failing after `ms`. */
export async function eventually(pred: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A raw client: writes bytes, collects frames (and the preamble version, and stray bytes). */
export class RawClient {
  readonly frames: RawFrame[] = [];
  version = -1;
  ended = false;
  closed = false;
  readonly raw: Buffer[] = [];
  readonly codec = new ControlCodec();
  private readonly decoder: Decoder;
  private waiters: Array<() => void> = [];

  constructor(readonly stream: Duplex) {
    this.decoder = new Decoder(
      {
        preamble: (v) => {
          this.version = v;
          this.wake();
        },
        frame: (b, s, e) => {
          this.frames.push({ type: b[s + 4]!, flags: b[s + 5]!, bytes: Buffer.from(b.subarray(s, e)) });
          this.wake();
        },
      },
      { maxFrame: MAX_MAX_FRAME, preamble: true },
    );
    stream.on('data', (c: Buffer) => {
      this.raw.push(c);
      try {
        this.decoder.push(c);
      } catch {
        // raw bytes are still in `raw`
      }
      this.wake();
    });
    stream.on('end', () => {
      this.ended = true;
      // like a TCP socket without allowHalfOpen: the peer finished, so finish too
      stream.end();
      this.wake();
    });
    stream.on('close', () => {
      this.closed = true;
      this.wake();
    });
    stream.on('error', () => {});
  }

  /** Connects over TCP to 127.0.0.1:port. */
  static tcp(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  write(...bufs: Buffer[]): void {
    for (const b of bufs) this.stream.write(b);
  }

  /** Waits until `pred` holds (rechecked on every event), failing after `ms`. */
  async until(pred: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Waits for the next frame (removing it from `frames`). */
  async next(ms = 2000): Promise<RawFrame> {
    await this.until(() => this.frames.length > 0, ms, 'a frame');
    return this.frames.shift()!;
  }

  /** Sends the preamble and REGISTER, returns the REGISTERED body. */
  async register(): Promise<RegisteredBody> {
    this.write(encodePreamble(PROTOCOL_VERSION), ...this.codec.encodeRegister({}));
    const f = await this.next();
    if (f.type !== 0x02) throw new Error(`expected REGISTERED, got type ${f.type}`);
    return this.codec.decodeRegistered(f.bytes, 0, f.bytes.length);
  }

  rawText(): string {
    return Buffer.concat(this.raw).toString('latin1');
  }

  destroy(): void {
    this.stream.destroy();
  }
}
