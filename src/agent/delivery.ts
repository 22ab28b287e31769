import type { EventEmitter } from 'node:events';
import type { AgentEvents } from './events.js';
import type { Message } from './message.js';
import type { ResolvedAgentOptions } from './options.js';
import { FairQueue } from './queue.js';

/**
 * Delivery of received messages to the consumer: the agent's one bounded inbox, read by
 * `messages()` iterators, or `'message'` listeners while any are attached; and pausing the
 * connection's reading while the inbox is full. [P-9.3]
 *
 * @module
 */

/** Where the paused/resumed reading happens: the agent's current connection, if any. */
export interface Reader {
  pause(): void;
  resume(): void;
}

/** The inbox's turn shared by all anonymous senders (no agent ID is 9 characters long). */
const ANONYMOUS_SENDERS = 'anonymous';

/** One agent's inbox and its listeners (see the module note). */
export class Delivery {
  readonly inbox: FairQueue<Message>;
  /** True while reading is paused because a message did not fit into the inbox. */
  readPaused = false;

  constructor(
    opts: ResolvedAgentOptions,
    private readonly emitter: EventEmitter<AgentEvents>,
    private readonly reader: () => Reader | null,
  ) {
    this.inbox = new FairQueue<Message>({
      capacity: opts.maxQueue,
      maxBytes: opts.maxQueueBytes,
      weigh: (m) => m.data.length,
      // Round-robin per sender ID. Anonymous senders share one turn: without STICKY each of
      // their messages has a fresh handle (§11.2), so a turn per handle would give one
      // anonymous flood a turn per message, ahead of every registered sender.
      key: (m) => (m.anonymous ? ANONYMOUS_SENDERS : m.from),
      onDrain: () => this.resumeReading(),
    });
  }

  /** Hands a message to the listeners, or queues it. */
  deliver(m: Message): void {
    if (this.inbox.length === 0 && this.emitter.listenerCount('message') > 0) {
      this.emitMessage(m);
      return;
    }
    // [P-9.3] a bounded inbound queue: stop reading rather than grow, but only once a
    // message does not fit. A full queue alone keeps reading, so stream frames (which never
    // enter it) keep flowing while the application leaves its messages unread. [P-14.4]
    if (!this.inbox.push(m)) this.pauseReading();
  }

  /** Hands what waits in the inbox to the `'message'` listeners, while there are any. */
  drainToListeners(): void {
    while (this.emitter.listenerCount('message') > 0) {
      const m = this.inbox.shift();
      if (m === undefined) break;
      this.emitMessage(m);
    }
  }

  private emitMessage(m: Message): void {
    // guard() inline: this runs per message, and a closure per message shows in the profile.
    try {
      this.emitter.emit('message', m);
    } catch (err) {
      rethrowLater(err);
    }
  }

  private pauseReading(): void {
    if (this.readPaused) return;
    this.readPaused = true;
    this.reader()?.pause();
  }

  private resumeReading(): void {
    if (!this.readPaused) return;
    this.readPaused = false;
    this.reader()?.resume();
  }
}

/**
 * Runs a user listener. Listeners run inside the frame loop; a throwing one must not cut the
 * connection or skip the frames after it, so its error is rethrown outside, as an uncaught
 * exception (what Node does for a throwing stream 'data' listener).
 */
export function guard(emit: () => unknown): void {
  try {
    emit();
  } catch (err) {
    rethrowLater(err);
  }
}

/** Rethrows a listener's error outside the frame loop, as an uncaught exception. */
function rethrowLater(err: unknown): void {
  queueMicrotask(() => {
    throw err;
  });
}
