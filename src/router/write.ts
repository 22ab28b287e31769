import type { Duplex } from 'node:stream';
import { encodeError, encodeRouteError } from '../protocol/encoder.js';
import type { ResolvedRouterOptions } from './options.js';
import type { RelayPeer } from './relay/peer.js';
import type { UnsentLog } from './relay/unsent.js';
import { SMALL_RUN } from './relay/forward.js';
import { ConnState } from './state.js';
import { countCode, type RouterStats } from './stats.js';

/**
 * The one place that writes to a connection's stream (as aedes' lib/write.js): what the
 * router writes now in answer to the connection's own frames ({@link Writer.write}), what
 * it queues for this turn's flush ({@link Writer.reply}, and the relay's runs in the
 * outbox), and the flush ({@link Writer.flush}).
 *
 * Invariants: gathered frames go out before anything written after them [P-6.5]; a reply
 * never writes (it runs inside other connections' reads and writes, and a refusal that
 * wrote would flush a queue whose refusals write again); every byte queued for a peer,
 * replies included, counts against its maxOutbound. [P-9.3]
 */
export class Writer {
  constructor(
    /** The connection written to (and, for its replies, their sender). */
    private readonly conn: RelayPeer & { bytesOut: number },
    private readonly stream: Duplex,
    private readonly stats: RouterStats,
    private readonly options: ResolvedRouterOptions,
    private readonly unsent: UnsentLog,
  ) {}

  /** Bytes queued for the connection: gathered for this turn's flush, and held by its stream. */
  get queued(): number {
    return this.conn.out.bytes + this.stream.writableLength;
  }

  /** Writes one buffer now, after what is gathered for the connection. */
  write(buf: Buffer): void {
    if (this.conn.state === ConnState.CLOSED || this.stream.writableEnded) return;
    // Runs gathered for this connection go first, so answers keep wire order. [P-6.5]
    if (this.conn.out.bufs.length > 0) this.flush();
    this.stats.bytesOut += buf.length;
    this.conn.bytesOut += buf.length;
    this.unsent.sent += buf.length;
    this.stream.write(buf);
  }

  /** Writes a frame given as chunks, together. */
  writeChunks(chunks: Buffer[]): void {
    if (chunks.length === 1) return this.write(chunks[0]!);
    this.stream.cork();
    for (const c of chunks) this.write(c);
    this.stream.uncork();
  }

  /**
   * Queues a reply (PONG, ERROR, ROUTE_ERROR, LOOKUP_RESULT, a barrier PING) behind what is
   * gathered for the connection, and returns; the router's flush after this turn's reads
   * writes it, in order. Nothing is sent once CLOSE was sent or received. [P-9.2]
   */
  reply(buf: Buffer): void {
    if (this.conn.state >= ConnState.CLOSING || this.stream.writableEnded) return;
    const n = buf.length;
    if (n > SMALL_RUN) {
      this.conn.out.enqueue(buf, 0, n, this.conn, -1, -1);
      return;
    }
    // Small replies go into the slab, so a flood of them is one buffer, not one entry each.
    this.conn.out.copyAll(buf, this.conn);
  }

  /** {@link reply} for a frame given as chunks. */
  replyChunks(chunks: Buffer[]): void {
    for (const c of chunks) this.reply(c);
  }

  /** Queues an ERROR frame. [P-7.1] */
  error(code: number, seq: number, id: Uint8Array | null, text = ''): void {
    countCode(this.stats.errors, code);
    this.reply(encodeError(code, seq, id, text));
  }

  /**
   * Tells the sender of a SEND that it was not delivered: an ERROR to an agent, or a
   * ROUTE_ERROR back over a link to the router of the sender named by `src` (default: the
   * link's current SOURCE). [P-7.1] [P-10.5]
   */
  refuse(code: number, seq: number, dest: Uint8Array, src: Buffer | null): void {
    const link = this.conn.link;
    if (link === null) {
      this.error(code, seq, dest);
      return;
    }
    countCode(this.stats.errors, code);
    this.reply(encodeRouteError(code, seq, dest, src ?? link.sender));
  }

  /**
   * Writes everything gathered for the connection in one write: one slice as it is, else
   * the large runs (slices of the chunks read) and the slab ranges (short runs, copied when
   * they were routed) corked into one writev. Pauses the senders when this queue is over
   * the limit. On a closing connection nothing is written: the senders are told. [P-9.3]
   */
  flush(): void {
    const conn = this.conn;
    const out = conn.out;
    const n = out.bufs.length;
    if (n === 0) return;
    const bytes = out.bytes;
    if (conn.state >= ConnState.CLOSING) {
      this.unsent.refuseQueued(out, n);
      return;
    }
    this.stats.bytesOut += bytes;
    this.stats.relayedBytes += bytes;
    this.conn.bytesOut += bytes;
    const base = this.unsent.sent;
    this.unsent.sent += bytes;
    const m = out.ranges();
    if (m === 1) {
      this.stream.write(out.range(0));
    } else {
      // Short runs are in slabs already; what is left is large runs and slab ranges: one writev.
      this.stream.cork();
      for (let i = 0; i < m; i++) this.stream.write(out.range(i));
      this.stream.uncork();
    }
    out.forgetRanges(m);
    const queued = this.stream.writableLength;
    this.unsent.written(out, base, n, queued);
    if (queued > this.options.maxOutbound) {
      conn.flow.overLimit(conn.kind === 'link');
      for (let i = 0; i < n; i++) if (out.seqs[i]! >= 0) conn.flow.congested(out.froms[i]!);
    }
    out.clear();
    out.endTurn(queued);
  }
}
