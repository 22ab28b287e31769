import type { PadOption } from '../crypto/padding.js';
import type { PosternError } from '../protocol/errors.js';

/**
 * What an agent receives and the options of what it sends: messages, sealed messages and
 * the verdict on their sender, replies, and messages refused because their envelope did not
 * open.
 *
 * @module
 */

/**
 * How the sender of a message was checked; `verified` is true for the first two only.
 *
 * - `'pinned'`: the envelope proves its maker holds `sender.publicKey`, and that is the key
 *   pinned for `sender.id` in `trustedKeys`.
 * - `'directory'`: the same proof, and `sender.publicKey` is the key the router's key
 *   directory returned for `sender.id` (LOOKUP, possibly cached). [P-11.4]
 * - `'none'`: nothing to check: a plain message, an anonymous envelope (no sender inside),
 *   or a sealed message the agent did not open (it has no `keyPair`).
 * - `'no-id'`: the envelope proves `sender.publicKey` but names no agent ID (it came from an
 *   anonymous connection, [P-D.3]): a reply sealed to that key reaches its writer, but
 *   nothing says whose key it is (compare it with keys you know yourself).
 * - `'id-mismatch'`: the router stamped the message with an agent ID (`from`) other than
 *   the one the envelope claims. [P-D.3] forbids claiming another ID, so someone lies.
 * - `'key-mismatch'`: the key pinned, or returned by the directory, for `sender.id` is not
 *   `sender.publicKey`: the envelope was made by someone else than that ID's owner.
 * - `'unknown-key'`: no key to compare with: not pinned, and the directory has none for
 *   that ID (POSTERN_ERR_NO_KEY, POSTERN_ERR_UNKNOWN_DESTINATION, e.g. the sender has
 *   left), or `verifyWithDirectory` is false.
 * - `'lookup-failed'`: the directory could not be asked (the connection was lost or the
 *   agent closed before the answer, POSTERN_ERR_UNREACHABLE_ROUTER).
 */
export type Verification =
  | 'pinned'
  | 'directory'
  | 'none'
  | 'no-id'
  | 'id-mismatch'
  | 'key-mismatch'
  | 'unknown-key'
  | 'lookup-failed';

/** The sender an envelope names, with the key whose possession it proves. */
export interface MessageSender {
  /**
   * The agent ID the sender claims, text form (32 lowercase hex digits); undefined when the
   * sender, on an anonymous connection, has none.
   */
  readonly id: string | undefined;
  /** The sender's static X25519 public key (32 bytes): the envelope was made with its secret half. */
  readonly publicKey: Buffer;
}

/**
 * A received message.
 *
 * `data` of a plain (or unopened) message is a view of the socket's read buffer, not a copy:
 * postern never writes to that memory again, so it stays valid for as long as you hold it,
 * but holding it also keeps the whole chunk it came in (up to 64 KiB for TCP) alive. Copy it
 * (`Buffer.from(m.data)`) if you keep small messages for long. With a custom
 * `createConnection` whose stream reuses its chunk buffers, copy before that happens. The
 * content of an opened envelope is in memory of its own.
 *
 * Sealed messages: when the DELIVER has the SEALED flag and the agent has a `keyPair`, the
 * agent opens the envelope before delivering it. `data` is then the content, and `sender`
 * the sender the envelope names, if any. An envelope that does not open is never delivered:
 * it goes to the `'rejected'` event with its code. Without a `keyPair` nothing is opened:
 * a sealed message arrives with `sealed` true and `data` the envelope itself.
 */
export interface Message {
  /** Sender's agent ID, text form (32 lowercase hex digits), or a reply handle when `anonymous`. */
  readonly from: string;
  /** Payload: the content of an opened envelope, else the bytes as sent. */
  readonly data: Buffer;
  /** The sender hid its ID: `from` is a reply handle; answering it reaches the sender. [P-11.2] */
  readonly anonymous: boolean;
  /**
   * The message came sealed (the SEALED flag). When the agent has a `keyPair` this also
   * means the envelope opened with it and `data` is its content.
   */
  readonly sealed: boolean;
  /**
   * The sender named inside the envelope (sealed with a sender proof), else undefined. The
   * proof always holds for a delivered message: whoever made it holds the secret half of
   * `sender.publicKey`. Whether that key belongs to `sender.id` is `verified`.
   */
  readonly sender: MessageSender | undefined;
  /**
   * True only when all of these hold: the message was sealed to this agent's key and opened;
   * the envelope names a sender and proves its maker holds `sender.publicKey`; if the message
   * is not anonymous, the router's `from` is `sender.id`; the envelope names an ID; and `sender.publicKey` is the key
   * known for `sender.id`: pinned in `trustedKeys`, or else (with `verifyWithDirectory`) the
   * one the router's key directory returns. It means "written by whoever holds the key that
   * ID is known by", no more: a directory key is as trustworthy as the router that serves
   * it, and an ID names an agent only for one registration. `verification` says which check
   * decided.
   */
  readonly verified: boolean;
  /** How `verified` was decided. */
  readonly verification: Verification;
  /**
   * Sends `data` back to `from`: an agent ID, or the reply handle of an anonymous sender,
   * which routes back while the sender's connection lives (else the reply is
   * `'undeliverable'` with POSTERN_ERR_UNKNOWN_DESTINATION). Returns the seq, like `send()`.
   *
   * Sealing: by default the reply is sealed to `sender.publicKey` when the message named a
   * sender (bound to `from` unless `from` is a reply handle), and plain otherwise, also for
   * a sealed message from an anonymous envelope: there is no key to seal it to. `seal: true`
   * seals to `sender.publicKey` or else to the key pinned for `from`; `seal: { publicKey }`
   * to that key; `seal: false` sends in the clear. The other options are those of `send()`.
   *
   * @throws like `send()`; POSTERN_ERR_INVALID_ARGUMENT for `seal: true` with no key known.
   */
  reply(data: Uint8Array | string, options?: SendOptions): number;
}

/** A sealed message whose envelope did not open, reported by the agent's `'rejected'` event. */
export interface RejectedMessage {
  /** Who the router says sent it: an agent ID, or a reply handle when `anonymous`. */
  readonly from: string;
  /** The DELIVER had the ANONYMOUS flag. */
  readonly anonymous: boolean;
  /**
   * Why: POSTERN_ERR_SEAL_OPEN_FAILED (not for this key, altered, truncated),
   * POSTERN_ERR_UNSUPPORTED_ENVELOPE, POSTERN_ERR_SENDER_UNVERIFIED (a sender key that did
   * not make the envelope), POSTERN_ERR_BAD_ENVELOPE, POSTERN_ERR_RECIPIENT_MISMATCH (bound
   * to another agent ID than ours: replayed). [P-D.7]
   */
  readonly error: PosternError;
  /** The payload as received (a view of the socket's read buffer, as for `Message.data`). */
  readonly envelope: Buffer;
}

/** Where to seal a message: the recipient's key given explicitly. */
export interface SealTo {
  /** The recipient's X25519 public key (32 bytes). */
  publicKey: Uint8Array;
}

/** Per-message options of `Agent.send()`, `Agent.sendSealed()` and `Message.reply()`. [P-11.2] */
export interface SendOptions {
  /** Send under a fresh reply handle instead of this agent's ID. Default false. */
  anonymous?: boolean;
  /** With `anonymous`: reuse this connection's one sticky handle, so replies continue a conversation. Default false. */
  sticky?: boolean;
  /**
   * Only set the SEALED flag: the payload is an envelope you sealed yourself (routers never
   * look). Default false. Use `seal` to have the agent seal it.
   */
  sealed?: boolean;
  /**
   * Seal `data` into an envelope [P-D] and set the SEALED flag. `{ publicKey }` seals to that
   * key. `true` seals to the key pinned for `to` in `trustedKeys` (`send()` never waits for
   * the key directory, so without a pin it throws POSTERN_ERR_INVALID_ARGUMENT; use
   * `sendSealed()`, which also asks the directory). Default false (`send()`), true
   * (`sendSealed()`).
   */
  seal?: boolean | SealTo;
  /**
   * With `seal`: put this agent's ID and the proof that it holds `keyPair` inside the
   * envelope, so the recipient can verify who wrote it. Default: true when the agent has a
   * `keyPair` and neither this send nor the connection is anonymous; false otherwise, so an
   * anonymous sealed message carries nothing that identifies the sender. `{ anonymous: true,
   * prove: true }` tells the recipient who you are while routers see only a reply handle.
   * True needs a `keyPair`; on an anonymous connection (no ID) the envelope then proves the
   * key alone (the recipient sees `verification: 'no-id'`).
   */
  prove?: boolean;
  /** With `seal`: pad the envelope to a size class (true: the default classes, or your own list). Default false. */
  pad?: PadOption;
  /**
   * With `seal`: bind the envelope to `to` as the recipient's agent ID, so that it is refused
   * if replayed to any other agent [P-D.5]. Must be false when `to` is a reply handle (the
   * recipient would refuse it). Default: true when the key was found under `to` (pinned or
   * directory), false with an explicit `seal: { publicKey }`.
   */
  bind?: boolean;
}

/** @internal What an {@link IncomingMessage} calls to reply. */
export interface Replier {
  _reply(m: Message, data: Uint8Array | string, options: SendOptions | undefined): number;
}

/** @internal The agent's implementation of {@link Message}. */
export class IncomingMessage implements Message {
  readonly #agent: Replier;

  constructor(
    agent: Replier,
    readonly from: string,
    readonly data: Buffer,
    readonly anonymous: boolean,
    readonly sealed: boolean,
    readonly sender: MessageSender | undefined,
    readonly verification: Verification,
  ) {
    this.#agent = agent;
  }

  get verified(): boolean {
    return this.verification === 'pinned' || this.verification === 'directory';
  }

  reply(data: Uint8Array | string, options?: SendOptions): number {
    return this.#agent._reply(this, data, options);
  }

  /** A plain-object view (for JSON): without `data` bytes and `reply`. */
  toJSON(): Record<string, unknown> {
    return {
      from: this.from,
      anonymous: this.anonymous,
      sealed: this.sealed,
      sender: this.sender === undefined ? undefined : { id: this.sender.id, publicKey: this.sender.publicKey.toString('base64') },
      verified: this.verified,
      verification: this.verification,
      size: this.data.length,
    };
  }
}
