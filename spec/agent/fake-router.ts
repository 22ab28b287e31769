/**
 * A small scripted router for agent tests, over in-memory duplex pairs. It speaks the wire
 * protocol through the src/protocol codec and records every frame it receives, so tests can
 * assert on bytes. Not a test file itself.
 */
import type { Agent, Status } from '../../src/agent/agent.js';
import { duplexPair, type Duplex } from 'node:stream';
import { ControlCodec } from '../../src/protocol/control.js';
import { Decoder } from '../../src/protocol/decoder.js';
import {
  encodeClose,
  encodeDeliver,
  encodeError,
  encodePing,
  encodePong,
  encodePreamble,
} from '../../src/protocol/encoder.js';
import { FrameType, HEADER_SIZE, RELAY_HEADER_SIZE, WireCode } from '../../src/protocol/frame.js';
import { formatId, newAgentId } from '../../src/protocol/id.js';

export interface FakeRouterOptions {
  routerId?: number;
  maxFrame?: number;
  keepalive?: number;
  timeout?: number;
  /** Version byte of our preamble (default 1). */
  version?: number;
  /** Answer REGISTER (default true). */
  register?: boolean;
  /** Answer PING with PONG (default true). */
  pong?: boolean;
  /** Send nothing at all, not even the preamble. */
  silent?: boolean;
}

export interface Recorded {
  type: number;
  /** A copy of the whole frame. */
  bytes: Buffer;
}

export class FakeConn {
  readonly frames: Recorded[] = [];
  id: Buffer | null = null;
  preambleVersion = -1;
  ended = false;
  readonly stream: Duplex;
  private readonly router: FakeRouter;
  private readonly decoder: Decoder;
  private closedByUs = false;

  /** The agent's end of the pair (an in-memory pair does not propagate destroy by itself). */
  readonly peer: Duplex;

  constructor(router: FakeRouter, stream: Duplex, peer: Duplex) {
    this.router = router;
    this.stream = stream;
    this.peer = peer;
    this.decoder = new Decoder(
      {
        preamble: (v) => {
          this.preambleVersion = v;
          if (!router.opts.silent) this.write(encodePreamble(router.opts.version ?? 1));
        },
        frame: (buf, start, end) => this.onFrame(buf, start, end),
      },
      { maxFrame: 16 * 1024 * 1024, preamble: true },
    );
    stream.on('data', (c: Buffer) => {
      try {
        this.decoder.push(c);
      } catch {
        stream.destroy();
      }
    });
    stream.on('end', () => {
      this.ended = true;
      if (!stream.writableEnded) stream.end();
    });
    stream.on('error', () => {});
  }

  /** Frames of `type` received so far. */
  of(type: number): Recorded[] {
    return this.frames.filter((f) => f.type === type);
  }

  write(b: Buffer | Buffer[]): boolean {
    if (this.closedByUs || this.stream.writableEnded || this.stream.destroyed) return false;
    let ok = true;
    for (const c of Array.isArray(b) ? b : [b]) ok = this.stream.write(c);
    return ok;
  }

  deliver(from: Buffer, payload: Buffer | string): boolean {
    return this.write(encodeDeliver(from, typeof payload === 'string' ? Buffer.from(payload) : payload));
  }

  error(code: number, seq: number, id: Buffer | null, text = ''): void {
    this.write(encodeError(code, seq, id, text));
  }

  ping(payload: Buffer): void {
    this.write(encodePing(payload));
  }

  /** CLOSE(code) then end, as a router does. */
  close(code: number, reason = ''): void {
    this.write(encodeClose(code, reason));
    this.closedByUs = true;
    this.stream.end();
  }

  /** Drop the connection without CLOSE, like a TCP reset. */
  destroy(): void {
    this.closedByUs = true;
    this.ended = true;
    this.stream.destroy();
    this.peer.destroy(Object.assign(new Error('read ECONNRESET (fake)'), { code: 'ECONNRESET' }));
  }

  private onFrame(buf: Buffer, start: number, end: number): void {
    const type = buf[start + 4]!;
    this.frames.push({ type, bytes: Buffer.from(buf.subarray(start, end)) });
    const r = this.router;
    switch (type) {
      case FrameType.REGISTER:
        if (r.opts.register === false) return;
        this.id = newAgentId(r.routerId);
        r.byId.set(formatId(this.id), this);
        this.write(
          r.codec.encodeRegistered({
            id: this.id,
            router: r.routerId,
            maxFrame: r.opts.maxFrame ?? 1048576,
            keepalive: r.opts.keepalive ?? 30000,
            timeout: r.opts.timeout ?? 45000,
          }),
        );
        return;
      case FrameType.PING:
        if (r.opts.pong !== false) this.write(encodePong(buf.subarray(start + HEADER_SIZE, end)));
        return;
      case FrameType.SEND: {
        const dest = formatId(buf, start + 6);
        const seq = buf.readUInt32BE(start + 22);
        const target = r.byId.get(dest);
        if (target === undefined || target.ended) {
          this.error(WireCode.UNKNOWN_DESTINATION, seq, buf.subarray(start + 6, start + 22));
          return;
        }
        target.deliver(this.id!, Buffer.from(buf.subarray(start + RELAY_HEADER_SIZE, end)));
        return;
      }
      case FrameType.CLOSE:
        this.ended = true;
        this.decoder.stop();
        this.stream.end();
        return;
      default:
        return;
    }
  }
}

export class FakeRouter {
  readonly opts: FakeRouterOptions;
  readonly routerId: number;
  readonly codec = new ControlCodec();
  readonly conns: FakeConn[] = [];
  readonly byId = new Map<string, FakeConn>();
  /** When false, `connect` throws like a refused dial. */
  accepting = true;

  constructor(opts: FakeRouterOptions = {}) {
    this.opts = opts;
    this.routerId = opts.routerId ?? 0x0a0b0c0d;
  }

  /** A `createConnection` for the agent. */
  readonly connect = (): Duplex => {
    if (!this.accepting) throw Object.assign(new Error('connect ECONNREFUSED (fake)'), { code: 'ECONNREFUSED' });
    const [agentSide, routerSide] = duplexPair();
    this.conns.push(new FakeConn(this, routerSide, agentSide));
    return agentSide;
  };

  /** The latest connection. */
  get last(): FakeConn {
    const c = this.conns[this.conns.length - 1];
    if (c === undefined) throw new Error('no connection yet');
    return c;
  }
}

/** Lets stream events propagate: `n` turns of the event loop (no timers involved). */
export async function ticks(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Waits until `pred()` holds, for at most `max` event-loop turns; throws otherwise. */
export async function until(pred: () => boolean, max = 2000, what = 'condition'): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (pred()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Collects the status events an agent emits. */
export function recordStatus(agent: Agent): Status[] {
  const out: Status[] = [];
  agent.on('status', (s) => out.push(s));
  return out;
}
