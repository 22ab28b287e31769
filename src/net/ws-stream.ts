/**
 * A WebSocket as a byte stream (PROTOCOL.md §13.4): each binary message carries the next
 * bytes of the postern stream, split anywhere. Used on both sides (ws `WebSocket` from a
 * client or from `WebSocketServer.handleUpgrade`).
 *
 * Unlike ws's own `createWebSocketStream`, a write batch (`cork()`…`uncork()`, which the
 * router and agent use to coalesce the frames of one tick) leaves as ONE message, so a
 * batch costs one WebSocket header rather than one per frame; and a text message is a
 * violation that ends the stream rather than bytes.
 *
 * @module
 */
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { ErrorCode, PosternError } from '../protocol/errors.js';

/**
 * Largest WebSocket message either side sends or accepts, in bytes. [P-13.4] A write batch
 * larger than this leaves as several messages (the stream may be split anywhere).
 */
export const MAX_WS_MESSAGE = 1 << 20;

/** WebSocket close code sent after the peer broke §13.4 (a text message): 1003, unsupported data. */
const UNSUPPORTED_DATA = 1003;

/** Wraps an open (or opening) WebSocket. Reading pauses the socket when the consumer does not keep up. */
export class WebSocketDuplex extends Duplex {
  private readonly ws: WebSocket;

  constructor(ws: WebSocket) {
    // The default 16 KiB high-water mark would pause the socket between two large messages.
    super({ allowHalfOpen: false, readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer | Buffer[] | ArrayBuffer, isBinary: boolean) => {
      if (!isBinary) {
        // [P-13.4] the stream travels in binary messages only.
        ws.close(UNSUPPORTED_DATA, 'postern: binary messages only');
        this.destroy(new PosternError(ErrorCode.MALFORMED, 'text WebSocket message on a postern stream'));
        return;
      }
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (buf.length > 0 && !this.push(buf)) ws.pause();
    });
    ws.on('close', () => {
      this.push(null);
      // The peer is gone: nothing more can be written either.
      if (!this.writableFinished) this.destroy();
    });
    ws.on('error', (err: Error) => this.destroy(err));
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.send(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.send(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  private send(data: Buffer, cb: (err?: Error | null) => void): void {
    const ws = this.ws;
    if (ws.readyState === ws.CONNECTING) {
      ws.once('open', () => this.send(data, cb));
      return;
    }
    if (ws.readyState !== ws.OPEN) {
      cb(new PosternError(ErrorCode.CONNECTION_LOST, 'the WebSocket is closed'));
      return;
    }
    // The callback fires when the socket took the bytes, so backpressure reaches the writer.
    let off = 0;
    while (data.length - off > MAX_WS_MESSAGE) {
      ws.send(data.subarray(off, off + MAX_WS_MESSAGE), { binary: true, compress: false, fin: true });
      off += MAX_WS_MESSAGE;
    }
    ws.send(off === 0 ? data : data.subarray(off), { binary: true, compress: false, fin: true }, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(1000);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const ws = this.ws;
    if (ws.readyState === ws.OPEN) ws.close(1000);
    else if (ws.readyState === ws.CONNECTING) ws.terminate();
    // Give a polite close a moment, then cut: a peer that never answers must not pin the socket.
    if (ws.readyState === ws.CLOSING) setTimeout(() => ws.terminate(), 2000).unref();
    cb(err);
  }
}
