import { EventEmitter } from 'node:events';
import { ControlCodec } from '../protocol/control.js';
import type { PosternError } from '../protocol/errors.js';
import { Flag, FrameType, HEADER_SIZE, ID_SIZE, RELAY_HEADER_SIZE, RELAY_ID_OFFSET, RELAY_SEQ_OFFSET } from '../protocol/frame.js';
import { writeHeader } from '../protocol/encoder.js';
import { formatId } from '../protocol/id.js';
import { textAgentId, toPayload, writeDestination } from './arguments.js';
import { Delivery, guard } from './delivery.js';
import { KeyDirectory } from './directory.js';
import { Inbound } from './inbound.js';
import type { AgentEvents, RouterInfo, Status, StatusIterator } from './events.js';
import { Lifecycle } from './lifecycle.js';
import type { Message, SendOptions } from './message.js';
import { resolveAgentOptions, type AgentOptions, type ResolvedAgentOptions } from './options.js';
import { BoundedQueue } from './queue.js';
import { sealPayload, sealTarget, replyOptions, type SealTarget, type Sealer } from './sealing.js';
import { Session } from './session.js';
import { isStreamPayload } from '../stream/frame.js';
import { StreamMux, type OpenStreamOptions, type RequestOptions } from '../stream/mux.js';
import type { Stream } from '../stream/stream.js';

/**
 * The agent: one logical endpoint that stays registered with a router across connections.
 *
 * This file is the public facade (send, receive, lookup, flush, status, close, with the
 * TSDoc users read); the rest lives beside it: the connection lifecycle (`lifecycle.ts`:
 * dial, register, lose, drain, reconnect, pending flushes in `flushes.ts`), one connection
 * (`session.ts`), the inbound pipeline (`inbound.ts`), delivery to the consumer
 * (`delivery.ts`), key directory lookups (`directory.ts`), sealing options (`sealing.ts`)
 * and argument checks (`arguments.ts`).
 *
 * @module
 */

export type { Message, MessageSender, RejectedMessage, SealTo, SendOptions, Verification } from './message.js';

export type { AgentEvents, RouterInfo, Status, StatusIterator } from './events.js';

export { isPermanentError } from './reconnect.js';

const DONE: IteratorResult<never, undefined> = Object.freeze({ done: true, value: undefined });

/**
 * Connects to a router and resolves once registered. Makes one attempt: a failure rejects
 * with a coded error (POSTERN_ERR_CONNECT_TIMEOUT, POSTERN_ERR_BAD_MAGIC,
 * POSTERN_ERR_UNSUPPORTED_VERSION, POSTERN_ERR_CONNECTION_LOST with the socket error as
 * `cause`, ...). Reconnecting applies only to connections lost after this resolved.
 */
export async function connect(options: AgentOptions = {}): Promise<Agent> {
  const opts = resolveAgentOptions(options);
  if (opts.waitForRouter) return (await import('../stream/wait.js')).connectWaiting(opts, (o) => new Agent(o));
  const agent = new Agent(opts);
  await agent._start();
  return agent;
}

/**
 * A postern agent. Create with {@link connect}.
 *
 * Sequence numbers: `send()` numbers SENDs 1, 2, … per agent (across reconnects), wrapping
 * from 2^32-1 to 1; 0 is never used because ERROR frames use 0 for "no SEND". [P-6.2-1]
 */
export class Agent extends EventEmitter<AgentEvents> implements AsyncIterable<Message> {
  private readonly opts: ResolvedAgentOptions;
  private readonly codec = new ControlCodec();
  /** The inbox, its listeners and paused reading. */
  private readonly delivery: Delivery;
  private readonly statusSubs = new Set<BoundedQueue<Status>>();
  /** State, the current connection, reconnecting and pending flushes. */
  private readonly life: Lifecycle;
  private seq = 0;
  private readonly directory: KeyDirectory;
  private readonly inbound: Inbound;
  private readonly sealer: Sealer;
  private readonly sendHeader = Buffer.alloc(RELAY_HEADER_SIZE);
  /** `sendSealed()` calls not yet sent; they go out in call order. */
  private sealedTail: Promise<unknown> = Promise.resolve();
  private sealedPending = 0;

  /** Not for callers: use {@link connect}, which validates the options and dials. */
  constructor(opts: ResolvedAgentOptions) {
    super();
    this.opts = opts;
    this.delivery = new Delivery(opts, this, () => this.life.session);
    this.directory = new KeyDirectory(opts.keyCacheSize, (id) => {
      const s = this.life.liveSession();
      if (!(s instanceof Session)) return s;
      // LOOKUP refs share the SEND seq space, so an ERROR's seq names exactly one of them.
      const ref = this.nextSeq();
      s.write(this.codec.encodeLookup({ ref, id }));
      return ref;
    });
    this.inbound = new Inbound(opts, this.directory, this, () => this.life.idBuf, {
      message: (m) => this.onMessage(m),
      rejected: (r) => guard(() => this.emit('rejected', r)),
    });
    const agent = this;
    this.sealer = {
      keyPair: opts.keyPair,
      anonymous: opts.anonymous,
      get id() {
        return agent.life.idBuf;
      },
    };
    this.life = new Lifecycle(opts, this.codec, this.directory, this.inbound, {
      get readPaused() {
        return agent.delivery.readPaused;
      },
      status: (s) => this.emitStatus(s),
      routerError: (err) => {
        if ((err.seq ?? 0) !== 0) guard(() => this.emit('undeliverable', err));
        else guard(() => this.emit('warning', err));
      },
      drained: () => guard(() => this.emit('drain')),
      ended: (err) => {
        this.delivery.inbox.end();
        this.emitStatus({ type: 'closed', error: err });
        for (const q of this.statusSubs) q.end();
        this.statusSubs.clear();
      },
    });
    (this as EventEmitter).on('newListener', (event: string | symbol) => {
      // Like a stream's 'data': a 'message' listener takes over delivery, starting with
      // whatever waits in the queue (after the listener is actually attached).
      if (event === 'message') queueMicrotask(() => this.delivery.drainToListeners());
    });
  }

  /** The current agent ID, text form. A reconnect changes it. */
  get id(): string {
    return this.life.idText;
  }

  /** The current agent ID, 16 bytes (a copy). */
  get idBytes(): Buffer {
    return Buffer.from(this.life.idBuf);
  }

  /** What the router announced at the last registration. */
  get routerInfo(): RouterInfo {
    return this.life.info!;
  }

  /** True while registered (send() works). */
  get connected(): boolean {
    return this.life.state === 'open';
  }

  /** True once closed (by `close()` or for good after an error). */
  get isClosed(): boolean {
    return this.life.state === 'closed';
  }

  /**
   * False after a `send()` that left more than 256 KiB (or half of `maxSendBuffer`, if less)
   * waiting to be sent; wait for `'drain'` before sending more (sending anyway is allowed up
   * to `maxSendBuffer` bytes).
   */
  get writable(): boolean {
    return this.life.state === 'open' && !this.life.wantDrain;
  }

  /** Messages waiting for the consumer. */
  get queued(): number {
    return this.delivery.inbox.length;
  }

  /** Payload bytes of the messages waiting for the consumer (bounded by `maxQueueBytes`). */
  get queuedBytes(): number {
    return this.delivery.inbox.bytes;
  }

  /**
   * True while reading from the router is paused: a message arrived while the queue already
   * held `maxQueue` messages or `maxQueueBytes` bytes. Reading resumes once the consumer has
   * taken the queue down to half of both. Streams on this connection wait meanwhile.
   */
  get receivePaused(): boolean {
    return this.delivery.readPaused;
  }

  /** This agent's X25519 public key (the `keyPair` option), or undefined. */
  get publicKey(): Buffer | undefined {
    const kp = this.opts.keyPair;
    return kp === undefined ? undefined : Buffer.from(kp.publicKey);
  }

  /** Sealed messages refused so far because their envelope did not open (see the `'rejected'` event). */
  get rejected(): number {
    return this.inbound.rejected;
  }

  /**
   * Sends `data` to agent `to` (32 hex digits or 16 bytes) and returns the seq it used, which
   * an `'undeliverable'` event would carry. A string is sent as UTF-8. Bytes are written
   * as given, not copied: the socket may read them from your memory later (until its buffer
   * has drained), so do not modify them after the call.
   *
   * Throws synchronously, in this order: POSTERN_ERR_CLOSED (closed or closing),
   * POSTERN_ERR_INVALID_ID, POSTERN_ERR_INVALID_ARGUMENT (data neither bytes nor string),
   * POSTERN_ERR_FRAME_TOO_LARGE (payload over `routerInfo.maxPayload`),
   * POSTERN_ERR_NOT_CONNECTED (reconnecting: nothing is queued, because the router gives no
   * receipt and the sender's ID will change), POSTERN_ERR_SEND_BUFFER_FULL (more than
   * `maxSendBuffer` bytes already wait in the socket).
   *
   * A SEND accepted here may still be lost if the connection drops before the router reads
   * it; `flush()` tells when every earlier SEND was routed or refused. `options` set the
   * relay flags (anonymous, sticky, sealed).
   *
   * Sealing: with `seal: { publicKey }`, or `seal: true` and a key pinned for `to` in
   * `trustedKeys`, `data` is sealed into an envelope [P-D] (with this agent's sender proof
   * unless the send is anonymous, see {@link SendOptions.prove}) and the SEND gets the
   * SEALED flag; the payload limit then applies to the envelope (content + 69, or + 133
   * with the proof, more when padded). `send()` never waits: for a key from the router's
   * directory use {@link sendSealed}. POSTERN_ERR_INVALID_ARGUMENT covers bad sealing
   * options too (`seal: true` and nothing pinned, `prove` without a `keyPair`, `pad`,
   * `prove` or `bind` without `seal`).
   */
  send(to: string | Uint8Array, data: Uint8Array | string, options?: SendOptions): number {
    const closed = this.life.closedError();
    if (closed !== undefined) throw closed;
    // One header buffer for every send: the session copies it before send() returns.
    const header = this.sendHeader;
    writeDestination(header, to);
    let payload = toPayload(data);
    if (options !== undefined) {
      const pinned = options.seal === true ? this.opts.trustedKeys.get(formatId(header, RELAY_ID_OFFSET)) : undefined;
      const target = sealTarget(options, pinned, 'send');
      if (target !== null) {
        payload = sealPayload(this.sealer, header.subarray(RELAY_ID_OFFSET, RELAY_ID_OFFSET + ID_SIZE), payload, target.key!, options, target.bindByDefault);
      }
    }
    const s = this.life.sendableSession(payload.length);
    let flags = 0;
    if (options !== undefined) {
      if (options.anonymous === true) flags |= Flag.ANONYMOUS;
      if (options.sticky === true) flags |= Flag.STICKY;
      if (options.sealed === true || (options.seal !== undefined && options.seal !== false)) flags |= Flag.SEALED;
    }
    const seq = this.nextSeq();
    writeHeader(header, 0, FrameType.SEND, flags, RELAY_HEADER_SIZE - HEADER_SIZE + payload.length);
    header.writeUInt32BE(seq, RELAY_SEQ_OFFSET);
    if (!s.writeSend(header, payload)) this.life.wantDrain = true;
    return seq;
  }

  /**
   * @internal The stream layer's DATA: one SEND whose payload is `prefix` (copied at once)
   * then `body`, which is never copied: `written` runs once the socket is done with it.
   * Throws as {@link send} does.
   */
  sendPrefixed(to: string, prefix: Buffer, body: Buffer, written: (err?: Error | null) => void): void {
    const closed = this.life.closedError();
    if (closed !== undefined) throw closed;
    const size = prefix.length + body.length;
    const s = this.life.sendableSession(size);
    const header = Buffer.allocUnsafe(RELAY_HEADER_SIZE + prefix.length);
    writeDestination(header, to);
    writeHeader(header, 0, FrameType.SEND, 0, RELAY_HEADER_SIZE - HEADER_SIZE + size);
    header.writeUInt32BE(this.nextSeq(), RELAY_SEQ_OFFSET);
    header.set(prefix, RELAY_HEADER_SIZE);
    if (!s.writeSend(header, body, written)) this.life.wantDrain = true;
  }

  /**
   * Seals `data` and sends it, asking the router's key directory for the recipient's key
   * when it is not known: `options.seal` defaults to true, and a `true` seal takes the key
   * pinned for `to` in `trustedKeys`, else the one cached from an earlier lookup, else
   * `lookup(to)`. Resolves with the seq (as `send()` returns it). The envelope carries this
   * agent's sender proof as for `send()` (see {@link SendOptions.prove}) and, with a key
   * found under `to`, is bound to `to`.
   *
   * Order: `sendSealed()` calls go out in the order they were made, even while some wait
   * for a lookup; a plain `send()` made meanwhile may go first.
   *
   * Rejects with the codes of `send()`, and of `lookup()` when the key has to be looked up
   * (POSTERN_ERR_NO_KEY when the recipient registered none, POSTERN_ERR_UNKNOWN_DESTINATION,
   * POSTERN_ERR_NOT_SENT, ...); POSTERN_ERR_INVALID_ARGUMENT for `seal: false`.
   */
  sendSealed(to: string | Uint8Array, data: Uint8Array | string, options: SendOptions = {}): Promise<number> {
    let id: string;
    let target: SealTarget;
    try {
      const closed = this.life.closedError();
      if (closed !== undefined) throw closed;
      const scratch = Buffer.allocUnsafe(RELAY_HEADER_SIZE);
      writeDestination(scratch, to);
      id = formatId(scratch, RELAY_ID_OFFSET);
      target = sealTarget(options, this.opts.trustedKeys.get(id), 'sendSealed')!;
    } catch (err) {
      return Promise.reject(err);
    }
    const known = target.key;
    const sendWith = (key: Uint8Array): number =>
      this.send(to, data, { ...options, seal: { publicKey: key }, bind: options.bind ?? target.bindByDefault });
    if (known !== undefined && this.sealedPending === 0) {
      try {
        return Promise.resolve(sendWith(known));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const key = known !== undefined ? Promise.resolve(known) : this.directory.key(id);
    key.catch(noop); // observed below, after the earlier sendSealed() calls
    const prev = this.sealedTail;
    this.sealedPending++;
    const p = (async () => {
      try {
        await prev;
        return sendWith(await key);
      } finally {
        this.sealedPending--;
      }
    })();
    this.sealedTail = p.then(noop, noop);
    return p;
  }

  /**
   * The X25519 public key agent `id` registered with its router (32 bytes). [P-11.4]
   * Rejects with the router's code: POSTERN_ERR_UNKNOWN_DESTINATION (no such agent),
   * POSTERN_ERR_NO_KEY (registered without one), POSTERN_ERR_UNREACHABLE_ROUTER; and like
   * `flush()` with NOT_CONNECTED / NOT_SENT / CLOSED. The router vouches only that this is
   * the key that ID registered.
   */
  lookup(id: string | Uint8Array): Promise<Buffer> {
    const closed = this.life.closedError();
    if (closed !== undefined) return Promise.reject(closed);
    const idBuf = Buffer.allocUnsafe(RELAY_HEADER_SIZE);
    try {
      writeDestination(idBuf, id);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<Buffer>((resolve, reject) => {
      const err = this.directory.lookup(idBuf.subarray(RELAY_ID_OFFSET, RELAY_ID_OFFSET + ID_SIZE), { resolve, reject });
      if (err !== undefined) reject(err);
    });
  }

  /** @internal {@link Message.reply}. */
  _reply(m: Message, data: Uint8Array | string, options: SendOptions | undefined): number {
    return this.send(m.from, data, replyOptions(m, options));
  }

  /**
   * Resolves once every SEND made before it was routed by the router or answered with an
   * ERROR (whose `'undeliverable'` event has then already been emitted): a PING round trip,
   * relying on the router answering one connection in order. [P-6.5] Rejects with
   * POSTERN_ERR_NOT_CONNECTED while reconnecting, POSTERN_ERR_NOT_SENT (cause: the
   * disconnect error) if the connection drops first, POSTERN_ERR_CLOSED on close. While
   * reading is paused (`receivePaused`), the PONG waits behind the unread messages.
   */
  flush(): Promise<void> {
    return this.life.flush();
  }

  /**
   * Messages as an async iterator over the agent's one bounded queue. Iteration ends after
   * `close()` once the queued messages are taken. Several iterators share the queue (each
   * message goes to one). While a `'message'` listener is attached, messages go to it
   * instead, so use one style. Breaking out of `for await` does not close the agent.
   */
  messages(): AsyncIterableIterator<Message, undefined> {
    const inbox = this.delivery.inbox;
    const token = {};
    let done = false;
    const it: AsyncIterableIterator<Message, undefined> = {
      next: () => (done ? Promise.resolve(DONE) : inbox.next(token)),
      return: () => {
        done = true;
        inbox.release(token);
        return Promise.resolve(DONE);
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** Same as {@link messages}. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Message, undefined> {
    return this.messages();
  }

  /**
   * Status events from now on, as an async iterator. Each iterator holds at most
   * `maxStatusQueue` events; when its consumer lags, the oldest is dropped and counted in
   * `dropped`. Ends after the `closed` event.
   */
  status(): StatusIterator {
    const q = new BoundedQueue<Status>({ capacity: this.opts.maxStatusQueue, overflow: 'drop-oldest' });
    if (this.life.state === 'closed') q.end();
    else this.statusSubs.add(q);
    const subs = this.statusSubs;
    const it: StatusIterator = {
      next: () => q.next(),
      return: () => {
        subs.delete(q);
        return q.return();
      },
      get dropped() {
        return q.dropped;
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /**
   * Closes the agent: stops reconnecting, sends CLOSE(NORMAL), ends the connection and waits
   * for it to close (at most `closeTimeout` ms). Message iterators finish once the queued
   * messages are taken; pending `flush()`es reject with POSTERN_ERR_CLOSED. Idempotent.
   */
  close(): Promise<void> {
    return this.life.close();
  }

  /**
   * Settles when the agent is closed for good, with the error that ended it, or undefined
   * after `close()`. Never rejects.
   */
  closed(): Promise<PosternError | undefined> {
    return this.life.done;
  }

  // --- streams (PROTOCOL.md §14, src/stream/): the agent only routes frames to the mux ---
  private mux: StreamMux | null = null;

  private streamMux(): StreamMux {
    this.mux ??= new StreamMux(this, this.opts.streams, this.opts.clock);
    return this.mux;
  }

  /**
   * Opens a stream to agent `to` (32 hex digits): a Node `Duplex` with backpressure, `end()`
   * as half-close and `destroy(err)` as reset. Data may be written at once (up to 256 KiB go
   * before the peer answers). Throws like `send()` (POSTERN_ERR_INVALID_ID,
   * POSTERN_ERR_NOT_CONNECTED, ...) and POSTERN_ERR_STREAM_REFUSED past `streams.maxStreams`;
   * later failures destroy the stream with a coded error (see {@link Stream}).
   */
  openStream(to: string, options: OpenStreamOptions = {}): Stream {
    const closed = this.life.closedError();
    if (closed !== undefined) throw closed;
    return this.streamMux().open(textAgentId(to), options, this.opts.keyPair !== undefined);
  }

  /**
   * Sends `payload` to `to` as a REQUEST (§14.7) and resolves with the peer's reply: the peer
   * receives it as a message (`'message'` or the iterator) and answers with `m.reply()`.
   * Rejects with POSTERN_ERR_TIMEOUT after `timeout` ms, the router's code for an
   * undeliverable request (POSTERN_ERR_UNKNOWN_DESTINATION ...), or like `send()`.
   */
  request(to: string, payload: Uint8Array | string, options: RequestOptions = {}): Promise<Message> {
    const closed = this.life.closedError();
    if (closed !== undefined) return Promise.reject(closed);
    let id: string;
    try {
      id = textAgentId(to);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.streamMux().request(id, payload, options);
  }

  /** Streams open now (both directions). */
  get streamCount(): number {
    return this.mux?.size ?? 0;
  }

  /** @internal The first connection attempt (see {@link connect}). */
  _start(): Promise<void> {
    return this.life.start();
  }

  private nextSeq(): number {
    this.seq = this.seq >= 0xffffffff ? 1 : this.seq + 1;
    return this.seq;
  }

  private onMessage(m: Message): void {
    // [P-14.1] stream traffic goes to the stream layer; only REQUESTs come back as messages.
    if (isStreamPayload(m.data)) {
      const r = this.streamMux().receive(m);
      if (r === undefined) return;
      m = r;
    }
    this.delivery.deliver(m);
  }

  private emitStatus(s: Status): void {
    for (const q of this.statusSubs) q.push(s);
    guard(() => this.emit('status', s));
  }
}

function noop(): void {}
