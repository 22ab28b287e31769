import { open, type OpenedEnvelope } from '../crypto/seal.js';
import { ErrorCode } from '../protocol/errors.js';
import { Flag } from '../protocol/frame.js';
import { formatId } from '../protocol/id.js';
import { toPosternError, type KeyDirectory } from './directory.js';
import { IncomingMessage, type MessageSender, type RejectedMessage, type Replier, type Verification } from './message.js';
import type { ResolvedAgentOptions } from './options.js';

/**
 * The agent's inbound pipeline: a DELIVER becomes a message, is opened and its sender checked
 * when sealed, and is handed on in arrival order, also while some wait for a key directory
 * lookup.
 *
 * Order: entries from the first message that waits for a lookup on are held in `pipeline`,
 * each settled (a message or a rejection) or still waiting; only settled entries at the head
 * are handed on, so a lookup never reorders messages. Bounded by `maxQueue`: reading cannot
 * pause for it, since the LOOKUP_RESULTs it waits for come in behind the messages, so past
 * the bound the oldest waiting check gives up ('lookup-failed'). [P-9.3]
 *
 * @module
 */

/** Where settled messages go, in arrival order. */
export interface InboundSink {
  /** A message to deliver to the consumer. */
  message(m: IncomingMessage): void;
  /** A sealed message whose envelope did not open (already counted in {@link Inbound.rejected}). */
  rejected(r: RejectedMessage): void;
}

/** What the pipeline needs of the agent's options. */
export type InboundOptions = Pick<ResolvedAgentOptions, 'keyPair' | 'anonymous' | 'trustedKeys' | 'verifyWithDirectory' | 'maxQueue'>;

type Item = IncomingMessage | { rejected: RejectedMessage };

/** A place in the pipeline: settled once `item` is set. */
interface PipelineEntry {
  item: Item | undefined;
  /** For a waiting entry: its message when the check gives up. */
  giveUp: (() => IncomingMessage) | undefined;
}

/** The inbound pipeline of one agent (across its connections). */
export class Inbound {
  private readonly pipeline: PipelineEntry[] = [];
  private rejectedCount = 0;

  constructor(
    private readonly opts: InboundOptions,
    private readonly directory: KeyDirectory,
    private readonly replier: Replier,
    /** The agent's current ID, to check an envelope's binding against. */
    private readonly ownId: () => Buffer,
    private readonly sink: InboundSink,
  ) {}

  /** Sealed messages refused so far. */
  get rejected(): number {
    return this.rejectedCount;
  }

  /** A DELIVER: opened and checked if sealed, then handed on in arrival order. */
  deliver(from: string, data: Buffer, flags: number): void {
    const anonymous = (flags & Flag.ANONYMOUS) !== 0;
    const sealed = (flags & Flag.SEALED) !== 0;
    const kp = this.opts.keyPair;
    if (!sealed || kp === undefined) {
      this.admit(new IncomingMessage(this.replier, from, data, anonymous, sealed, undefined, 'none'));
      return;
    }
    let opened: OpenedEnvelope;
    try {
      // An anonymous connection has no ID (all zeros) to check a binding against.
      opened = open(data, kp, this.opts.anonymous ? {} : { recipientId: this.ownId() });
    } catch (err) {
      this.admit({ rejected: { from, anonymous, error: toPosternError(err), envelope: data } });
      return;
    }
    const c = opened.content;
    const content = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    const claimed = opened.sender;
    if (claimed === undefined) {
      this.admit(new IncomingMessage(this.replier, from, content, anonymous, true, undefined, 'none'));
      return;
    }
    const sender: MessageSender = Object.freeze({
      id: claimed.id === undefined ? undefined : formatId(claimed.id),
      publicKey: Buffer.from(claimed.publicKey),
    });
    const make = (v: Verification): IncomingMessage => new IncomingMessage(this.replier, from, content, anonymous, true, sender, v);
    const now = this.verdictNow(sender, from, anonymous);
    if (now !== undefined) {
      this.admit(make(now));
      return;
    }
    const entry: PipelineEntry = { item: undefined, giveUp: () => make('lookup-failed') };
    this.pipeline.push(entry);
    this.directory.keyThen(sender.id!, false, (key, err) => {
      if (entry.item !== undefined) return; // given up already
      let v: Verification;
      if (key !== undefined) v = key.equals(sender.publicKey) ? 'directory' : 'key-mismatch';
      else v = err?.code === ErrorCode.NO_KEY || err?.code === ErrorCode.UNKNOWN_DESTINATION ? 'unknown-key' : 'lookup-failed';
      entry.item = make(v);
      this.pump();
    });
    this.bound();
  }

  /** [P-9.3] Past `maxQueue` waiting messages, the oldest waiting check gives up. */
  private bound(): void {
    const p = this.pipeline;
    while (p.length > this.opts.maxQueue) {
      const head = p[0]!;
      head.item ??= head.giveUp!();
      this.pump();
    }
  }

  /**
   * The verdict on a proven sender when it needs no lookup, else undefined. [P-D.3] A
   * registered sender's ID is stamped by the router, so an envelope claiming another lies.
   */
  private verdictNow(sender: MessageSender, from: string, anonymous: boolean): Verification | undefined {
    if (sender.id === undefined) return 'no-id';
    if (!anonymous && sender.id !== from) return 'id-mismatch';
    const pinned = this.opts.trustedKeys.get(sender.id);
    if (pinned !== undefined) return pinned.equals(sender.publicKey) ? 'pinned' : 'key-mismatch';
    if (!this.opts.verifyWithDirectory) return 'unknown-key';
    const cached = this.directory.cached(sender.id);
    // A cached key that differs may be stale (the ID resumed with a new key): ask again.
    return cached !== undefined && cached.equals(sender.publicKey) ? 'directory' : undefined;
  }

  /** Hands `item` on now, or after the messages still waiting for a lookup. */
  private admit(item: Item): void {
    if (this.pipeline.length === 0) {
      this.handOn(item);
      return;
    }
    this.pipeline.push({ item, giveUp: undefined });
    this.bound();
  }

  /** Hands on every settled entry at the head of the pipeline. */
  private pump(): void {
    const p = this.pipeline;
    while (p.length > 0 && p[0]!.item !== undefined) this.handOn(p.shift()!.item!);
  }

  private handOn(item: Item): void {
    if (item instanceof IncomingMessage) {
      this.sink.message(item);
      return;
    }
    this.rejectedCount++;
    this.sink.rejected(item.rejected);
  }
}
