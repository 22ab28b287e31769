import { Duplex } from 'node:stream';
import type { MessageSender, Verification } from '../agent/message.js';
import { INITIAL_WINDOW } from './frame.js';

/**
 * One stream between two agents, as a Node `Duplex` (PROTOCOL.md §14). The {@link StreamMux}
 * owns the wire side; this class holds one stream's state and maps Node's stream calls onto
 * it: `write()` sends DATA within the credit the peer granted, `end()` sends FIN, `destroy()`
 * sends RESET, reading grants the peer new credit.
 *
 * @module
 */

/** What a {@link Stream} asks of its mux (the wire side). */
export interface StreamOwner {
  /** Sends what `s.pending` holds, as far as credit and the socket allow. */
  pump(s: Stream): void;
  /** Sends FIN. */
  fin(s: Stream): void;
  /** Grants the peer more credit if the reader consumed enough. */
  grant(s: Stream): void;
  /** The stream is destroyed: forget it, and RESET it on the wire unless it ended cleanly. */
  destroyed(s: Stream, err: Error | null): void;
}

/** Where a stream came from and who opened it. */
export interface StreamInit {
  readonly peer: string;
  readonly id: number;
  readonly opener: boolean;
  readonly service: string;
  readonly sendCredit: number;
  readonly sender?: MessageSender | undefined;
  readonly verification?: Verification;
  readonly highWaterMark: number;
}

/**
 * A stream: a byte pipe to one peer agent with backpressure, half-close and reset.
 *
 * - `write()` returns false while the peer's credit or the agent's socket is exhausted;
 *   wait for `'drain'`, as with any Node stream.
 * - `end()` half-closes (FIN): the peer reads to its end, and may keep writing to us.
 * - `destroy(err)` resets the stream (RESET, code CANCEL, or the one given to {@link reset}).
 * - A reset by the peer, a lost router connection or a dead peer destroys it with a coded
 *   `PosternError` (`'error'` event): POSTERN_ERR_STREAM_RESET, POSTERN_ERR_STREAM_REFUSED,
 *   POSTERN_ERR_UNKNOWN_SERVICE, POSTERN_ERR_UNKNOWN_DESTINATION, POSTERN_ERR_TIMEOUT,
 *   POSTERN_ERR_CONNECTION_LOST. Nothing ends silently short: a stream either ends with
 *   the peer's FIN after all its bytes, or errors.
 *
 * Events besides Duplex's: `'accepted'` once the acceptor answered an opened stream.
 */
export class Stream extends Duplex {
  /** The peer's agent ID (text form). */
  readonly peer: string;
  /** The stream ID (unique per peer and direction of opening). */
  readonly streamId: number;
  /** True on the side that opened the stream. */
  readonly opener: boolean;
  /** The service named in OPEN ('' for none). */
  readonly service: string;
  /** On an accepted stream whose OPEN was sealed with a sender proof: the sender it names. */
  readonly sender: MessageSender | undefined;
  /** How that sender was checked (see `Message.verification`). */
  readonly verification: Verification;
  /** The RESET code received from or sent to the peer, once reset. */
  resetCode: number | undefined;

  /** @internal Bytes we may still send. */
  _sendCredit: number;
  /** @internal Bytes the peer may send in all, from the start (credit granted so far). */
  _granted = INITIAL_WINDOW;
  /** @internal Bytes received so far. */
  _received = 0;
  /** @internal Current receive window. */
  _window = INITIAL_WINDOW;
  /** @internal A write waiting for credit: the chunk, how far it is sent, its callback. */
  _pending: { chunk: Buffer; off: number; cb: (err?: Error | null) => void } | null = null;
  /** @internal FIN sent / received. */
  _finSent = false;
  _finReceived = false;
  /** @internal The opener has heard from the acceptor (the acceptor: it answered). */
  _accepted: boolean;
  /** @internal Ended cleanly (both FINs): destroying it sends no RESET. */
  _clean = false;
  /** @internal A RESET came from the peer, or must not be sent (the connection is gone). */
  _noReset = false;
  /** @internal Auto-tuning probe: token in flight (0: none) and bytes received since it left. */
  _probe = 0;
  _probeBytes = 0;
  /** @internal Keepalive: when the last frame came, and when an unanswered probe left (0: none). */
  _lastHeard = 0;
  _kaSent = 0;
  /** @internal Open timeout, while waiting to be accepted. */
  _openTimer: { cancel(): void } | null = null;
  /** @internal The OPEN was handed to the socket (writes wait for it). */
  _openSent: boolean;

  readonly #owner: StreamOwner;

  /** @internal Created by the agent's stream mux. */
  constructor(owner: StreamOwner, init: StreamInit) {
    super({ allowHalfOpen: true, readableHighWaterMark: init.highWaterMark, writableHighWaterMark: 256 * 1024 });
    this.#owner = owner;
    this.peer = init.peer;
    this.streamId = init.id;
    this.opener = init.opener;
    this.service = init.service;
    this.sender = init.sender;
    this.verification = init.verification ?? 'none';
    this._sendCredit = init.sendCredit;
    this._accepted = !init.opener;
    this._openSent = !init.opener;
  }

  /** True once the acceptor answered (always true on the accepting side). */
  get accepted(): boolean {
    return this._accepted;
  }

  /** This stream's current receive window, in bytes (it grows while it limits throughput). */
  get window(): number {
    return this._window;
  }

  /**
   * Resets the stream with `code` (a RESET code of PROTOCOL.md §14.6, e.g. REFUSED or
   * UNKNOWN_SERVICE to turn down an accepted stream) and destroys it without a local error.
   */
  reset(code: number, reason = ''): void {
    if (this.destroyed) return;
    this.resetCode = code;
    this._resetReason = reason;
    this.destroy();
  }

  /** @internal Reason text for the RESET frame. */
  _resetReason = '';

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this._pending = { chunk, off: 0, cb };
    this.#owner.pump(this);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#owner.fin(this);
    cb();
  }

  override _read(): void {
    this.#owner.grant(this);
  }

  /**
   * Credit follows consumption, so it is granted where data leaves the buffer. `_read()` alone
   * would not do: Node stops calling it until the next `push()`, and with the credit used up
   * no push comes.
   */
  override read(size?: number): any {
    const chunk: unknown = super.read(size);
    if (chunk !== null) this.#owner.grant(this);
    return chunk;
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this._openTimer?.cancel();
    this._openTimer = null;
    // A write still waiting for credit is dropped: Node fails the stream's writes after destroy.
    this._pending = null;
    this.#owner.destroyed(this, err);
    cb(err);
  }
}
