import type { KeyPair } from '../crypto/sealed-box.js';
import { seal } from '../crypto/seal.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import type { Message, SendOptions } from './message.js';

/**
 * How the agent seals what it sends [P-D]: the one place that turns the `seal`, `prove`,
 * `bind` and `pad` options of `send()`, `sendSealed()` and `Message.reply()` into a key and
 * an envelope, so the three cannot drift apart.
 *
 * @module
 */

/** Where a send seals to: `key` (undefined: ask the key directory), and whether it binds to `to` unless told. */
export interface SealTarget {
  readonly key: Uint8Array | undefined;
  readonly bindByDefault: boolean;
}

/** Who is sealing: the agent's key pair and identity. */
export interface Sealer {
  readonly keyPair: Readonly<KeyPair> | undefined;
  /** The connection is anonymous: it has no ID to put in a sender proof. */
  readonly anonymous: boolean;
  /** The agent's current ID (16 bytes). */
  readonly id: Buffer;
}

const NOT_PINNED =
  'seal: true needs a key pinned for the destination in trustedKeys; pass seal: { publicKey } or use sendSealed() to ask the directory';

/**
 * Resolves `options.seal` for a send to `pinned` (the key pinned for the destination, if any).
 * `send()` never waits, so there `true` needs a pin; `sendSealed()` defaults to `true` and may
 * look the key up instead. Null: the message goes out plain (`send()` only).
 *
 * @throws POSTERN_ERR_INVALID_ARGUMENT for a bad `seal`, `seal: true` with nothing pinned
 *   (`send()`), `seal: false` (`sendSealed()`), and `prove`, `pad` or `bind` without `seal`.
 */
export function sealTarget(options: SendOptions | undefined, pinned: Uint8Array | undefined, caller: 'send' | 'sendSealed'): SealTarget | null {
  // sendSealed() takes null as 'not given' (its default is true); send() refuses it below.
  const s = caller === 'sendSealed' ? (options?.seal ?? true) : options?.seal;
  if (s === undefined || s === false) {
    if (caller === 'sendSealed') throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'sendSealed() always seals; use send() for plain messages');
    if (options !== undefined && (options.prove !== undefined || options.pad !== undefined || options.bind !== undefined)) {
      throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'prove, pad and bind apply only with seal');
    }
    return null;
  }
  if (s === true) {
    if (pinned === undefined && caller === 'send') throw new PosternError(ErrorCode.INVALID_ARGUMENT, NOT_PINNED);
    return { key: pinned, bindByDefault: true };
  }
  if (s === null || typeof s !== 'object') throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'seal must be a boolean or { publicKey }');
  return { key: s.publicKey, bindByDefault: false };
}

/**
 * The options of a reply to `m`: by default sealed to the key `m`'s envelope proved (bound
 * to `m.from` unless that is a reply handle), else as given. See {@link Message.reply}.
 *
 * @throws POSTERN_ERR_INVALID_ARGUMENT for `seal: true` to an anonymous sender that named no key.
 */
export function replyOptions(m: Message, options: SendOptions | undefined): SendOptions {
  const o: SendOptions = { ...options };
  if (o.seal === undefined) {
    if (m.sender !== undefined) o.seal = { publicKey: m.sender.publicKey };
  } else if (o.seal === true) {
    if (m.sender !== undefined) o.seal = { publicKey: m.sender.publicKey };
    else if (m.anonymous) throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'no key to seal a reply to: the sender is anonymous and named no key');
  }
  // A reply handle is not the recipient's agent ID: binding to it would get the reply refused.
  if (o.seal !== undefined && o.seal !== false && o.bind === undefined) o.bind = !m.anonymous;
  return o;
}

/**
 * Seals `payload` to `key` for the agent `to` (16 bytes), as `options` say: with the
 * sealer's proof unless the send or the connection is anonymous (see
 * {@link SendOptions.prove}), bound to `to` when `bind` (default `bindByDefault`).
 *
 * @throws POSTERN_ERR_INVALID_ARGUMENT for `prove` without a key pair or not a boolean, `bind`
 *   not a boolean; the codes of {@link seal} for a bad key or padding.
 */
export function sealPayload(sealer: Sealer, to: Buffer, payload: Buffer, key: Uint8Array, options: SendOptions, bindByDefault: boolean): Buffer {
  const kp = sealer.keyPair;
  let prove = options.prove;
  if (prove === undefined) {
    prove = kp !== undefined && !sealer.anonymous && options.anonymous !== true;
  } else if (prove === true) {
    if (kp === undefined) throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'prove needs the keyPair option');
  } else if (prove !== false) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'prove must be a boolean');
  }
  const bind = options.bind ?? bindByDefault;
  if (typeof bind !== 'boolean') throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'bind must be a boolean');
  const envelope = seal({
    content: payload,
    recipientPublicKey: key,
    // [P-D.3] an anonymous connection has no ID: the envelope proves the key alone.
    sender: prove ? { id: sealer.anonymous ? undefined : sealer.id, keyPair: kp! } : undefined,
    recipientId: bind ? to : undefined,
    pad: options.pad,
  });
  return Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
}
