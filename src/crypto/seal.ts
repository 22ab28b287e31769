import nacl from 'tweetnacl';
import { ID_SIZE } from '../protocol/frame.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { SECRETBOX_OVERHEAD, nonceHash, secretboxInPlace, secretboxOpenInto } from './backend.js';
import { parseId, routerIdOf } from '../protocol/id.js';
import { type PadOption, paddedSize, resolveSizeClasses } from './padding.js';
import {
  type KeyPair,
  SEAL_OVERHEAD,
  staticBoxKey,
  checkKey,
  openBoxWithEphemeral,
  sealBoxFresh,
  sealBoxInPlace,
} from './sealed-box.js';
import { type Ephemeral, X25519_KEY_SIZE, fixedEphemeral, freshEphemeral, x25519Base } from './x25519.js';

/**
 * The sealed envelope: what an agent puts inside the opaque payload of SEND, and finds in
 * DELIVER. [P-D]
 *
 * ```
 * envelope = crypto_box_seal(P, recipientPk)                    see sealed-box.ts
 * P        = 0x01 || B                                          anonymous
 *          | 0x02 || senderPk (32) || crypto_box(I, n_i, recipientPk, senderSk)
 * I        = senderId (16, zeros = none) || B
 * B        = recipientId (16, zeros = not bound) || u32 BE length || content || zeros
 * n_i      = BLAKE2b-192("postern/inner/v1" || epk || recipientPk)
 * ```
 *
 * The outer sealed box hides everything from the routers, including who sent it. In the
 * 0x02 form the inner box is keyed by X25519(senderSk, recipientPk): only the holder of
 * senderSk (or of recipientSk, i.e. the recipient itself) can make one that opens, so
 * opening it proves the sender holds the key it claims. Its nonce is derived from the
 * outer ephemeral key, so an inner box cannot be lifted into another sealed box, nor the
 * envelope re-sealed to another recipient key. The recipient ID, when given, is inside the
 * encryption so an envelope replayed to another agent holding the same key is refused.
 */

/** Envelope type byte: no sender. */
export const ENVELOPE_ANONYMOUS = 0x01;
/** Envelope type byte: sender ID and key, with proof of the key. */
export const ENVELOPE_SENDER = 0x02;

/** Bytes the anonymous form adds to the content: 48 (seal) + 1 + 16 + 4. */
export const ANONYMOUS_OVERHEAD = SEAL_OVERHEAD + 1 + ID_SIZE + 4; // 69
/** Bytes the sender form adds to the content: 48 + 1 + 32 + 16 (inner MAC) + 16 + 16 + 4. */
export const SENDER_OVERHEAD = SEAL_OVERHEAD + 1 + X25519_KEY_SIZE + nacl.box.overheadLength + 2 * ID_SIZE + 4; // 133

const INNER_NONCE_LABEL = new TextEncoder().encode('postern/inner/v1'); // 16 bytes
const BODY_FIXED = ID_SIZE + 4;

/** The sender part of {@link SealOptions}. */
export interface SealSender {
  /**
   * The sender's current agent ID (16 bytes or 32 hex digits). Omit it on an anonymous
   * connection (§11.1), which has none: the envelope then proves the key alone, and the
   * recipient replies through the DELIVER's reply handle.
   */
  id?: Uint8Array | string;
  /** The sender's static X25519 key pair; the recipient learns the public half. */
  keyPair: KeyPair;
}

/** What to seal and for whom. */
export interface SealOptions {
  /** The message. A string is encoded as UTF-8. */
  content: Uint8Array | string;
  /** The recipient's X25519 public key (32 bytes). */
  recipientPublicKey: Uint8Array;
  /** Who is sending. Omit for an anonymous envelope (the recipient learns nothing of the sender). */
  sender?: SealSender;
  /**
   * The recipient's agent ID (16 bytes or 32 hex digits). When given, the recipient refuses
   * the envelope under any other ID, e.g. replayed to it after it reconnected. Default: not bound.
   */
  recipientId?: Uint8Array | string;
  /** Pad to a size class: false (default), true (DEFAULT_SIZE_CLASSES) or your own sizes. */
  pad?: PadOption;
}

/** Options of {@link open}. */
export interface OpenOptions {
  /**
   * The opener's current agent ID. When given, an envelope bound to another ID fails with
   * POSTERN_ERR_RECIPIENT_MISMATCH. An envelope that names no recipient is accepted.
   */
  recipientId?: Uint8Array | string;
}

/** A sender as claimed by an envelope. */
export interface EnvelopeSender {
  /** The agent ID the sender put in the envelope (16 bytes); undefined when it gave none. */
  id?: Uint8Array;
  /** The sender's static X25519 public key (32 bytes). */
  publicKey: Uint8Array;
}

/** An opened envelope. */
export interface OpenedEnvelope {
  /** The message (a view into a buffer that belongs to the caller). */
  content: Uint8Array;
  /** The sender, for the 0x02 form; undefined for anonymous envelopes. */
  sender?: EnvelopeSender;
  /** The recipient ID the envelope is bound to, if the sender bound one. */
  recipientId?: Uint8Array;
  /**
   * True when the envelope names a sender and the inner box proved that whoever made it
   * holds the secret key of `sender.publicKey` (or is the recipient). It says nothing about
   * whether that key belongs to `sender.id`: IDs are handed out by routers and change on
   * reconnect; bind keys to identities yourself (pinning, a directory). False for
   * anonymous envelopes. A sender that fails the proof is an error, never `verified: false`.
   */
  verified: boolean;
}

// Public keys derived from secret keys, per KeyPair object, so a key pair whose halves do
// not match is refused once, not silently turned into envelopes nobody can verify.
const checkedPairs = new WeakSet<KeyPair>();

function checkKeyPair(kp: KeyPair, what: string): void {
  if (kp === null || typeof kp !== 'object') {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, `${what} must be a key pair`);
  }
  checkKey(kp.publicKey, `${what} public key`);
  checkKey(kp.secretKey, `${what} secret key`);
  if (checkedPairs.has(kp)) return;
  if (!bytesEqual(x25519Base(kp.secretKey), kp.publicKey)) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, `${what}: public key does not belong to the secret key`);
  }
  checkedPairs.add(kp);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

function innerNonce(ephemeralPk: Uint8Array, recipientPk: Uint8Array): Uint8Array {
  return nonceHash(INNER_NONCE_LABEL, ephemeralPk, recipientPk);
}

function toBytes(content: Uint8Array | string): Uint8Array {
  if (typeof content === 'string') return new TextEncoder().encode(content);
  if (content instanceof Uint8Array) return content;
  throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'content must be a Uint8Array or a string');
}

/**
 * Seals a message into an envelope for one recipient. Each call uses a fresh ephemeral key,
 * so sealing the same message twice gives unrelated bytes.
 *
 * Length: content + 69 (anonymous) or + 133 (with sender), then up to the size class when
 * padding.
 *
 * @throws PosternError INVALID_ARGUMENT (keys of the wrong size or small order, a key pair
 *   whose halves do not match), INVALID_ID (sender or recipient ID), INVALID_OPTION (pad).
 */
export function seal(options: SealOptions): Uint8Array {
  return sealWith(options, undefined);
}

/**
 * {@link seal} with a caller-chosen ephemeral key pair, for test vectors. Never reuse an
 * ephemeral key pair for real messages. Internal.
 */
export function sealWithEphemeral(options: SealOptions, ephemeral: KeyPair): Uint8Array {
  checkKeyPair(ephemeral, 'ephemeral');
  return sealWith(options, fixedEphemeral(ephemeral.publicKey, ephemeral.secretKey));
}

function sealWith(options: SealOptions, fixed: Ephemeral | undefined): Uint8Array {
  if (options === null || typeof options !== 'object') {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'seal: options must be an object');
  }
  const { recipientPublicKey: rpk, sender } = options;
  checkKey(rpk, 'recipientPublicKey');
  const content = toBytes(options.content);
  if (content.length > 0xffffffff) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'content longer than the u32 length field allows');
  }
  const rid = options.recipientId === undefined ? undefined : parseId(options.recipientId);
  let senderId: Uint8Array | undefined;
  if (sender !== undefined) {
    if (sender === null || typeof sender !== 'object') {
      throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'seal: sender must be { id, keyPair }');
    }
    checkKeyPair(sender.keyPair, 'sender.keyPair');
    senderId = sender.id === undefined ? new Uint8Array(ID_SIZE) : parseId(sender.id);
  }
  const classes = resolveSizeClasses(options.pad);
  const overhead = sender === undefined ? ANONYMOUS_OVERHEAD : SENDER_OVERHEAD;
  const total = classes === undefined ? overhead + content.length : paddedSize(overhead + content.length, classes);
  // The envelope is built in the one array that is returned, each layer encrypted in place
  // around the one before (no copy per layer):
  //   epk (32) | tag (16) | 0x01 | B                                       anonymous
  //   epk (32) | tag (16) | 0x02 | senderPk (32) | inner tag (16) | senderId | B
  // B = recipientId || length || content || zeros (fresh memory is zero-filled).
  const env = new Uint8Array(total);
  const innerAt = SEAL_OVERHEAD + 1 + X25519_KEY_SIZE; // the inner box, when there is one
  const bodyAt = sender === undefined ? SEAL_OVERHEAD + 1 : innerAt + SECRETBOX_OVERHEAD + ID_SIZE;
  if (rid !== undefined) env.set(rid, bodyAt);
  new DataView(env.buffer).setUint32(bodyAt + ID_SIZE, content.length);
  env.set(content, bodyAt + BODY_FIXED);

  if (sender === undefined || senderId === undefined) {
    env[SEAL_OVERHEAD] = ENVELOPE_ANONYMOUS;
    if (fixed === undefined) sealBoxFresh(env, rpk);
    else sealBoxInPlace(env, rpk, fixed);
    return env;
  }
  // Generated only once the arguments are known to be good; the inner box's nonce needs
  // its public key, so the outer box is sealed with it (not with crypto_box_seal's own).
  const ephemeral = fixed ?? freshEphemeral();
  const key = staticBoxKey(rpk, sender.keyPair.secretKey);
  if (key === undefined) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'recipientPublicKey has small order: nothing sealed to it is secret');
  }
  env.set(senderId, innerAt + SECRETBOX_OVERHEAD); // I = senderId || B
  secretboxInPlace(env, innerAt, total - innerAt - SECRETBOX_OVERHEAD, innerNonce(ephemeral.publicKey, rpk), key);
  env[SEAL_OVERHEAD] = ENVELOPE_SENDER;
  env.set(sender.keyPair.publicKey, SEAL_OVERHEAD + 1);
  sealBoxInPlace(env, rpk, ephemeral);
  return env;
}

/**
 * Opens an envelope sealed to `recipientKeyPair`.
 *
 * @throws PosternError with code
 *   - SEAL_OPEN_FAILED: not for this key, altered in any byte, or truncated;
 *   - UNSUPPORTED_ENVELOPE: a type byte this version does not know;
 *   - SENDER_UNVERIFIED: it names a sender key that did not make its inner box (forged, or
 *     re-sealed by someone else, e.g. to another recipient);
 *   - BAD_ENVELOPE: well sealed, but malformed inside (lengths, non-zero padding, IDs);
 *   - RECIPIENT_MISMATCH: bound to another recipient ID than `options.recipientId`;
 *   - INVALID_ARGUMENT / INVALID_ID for bad arguments.
 */
export function open(envelope: Uint8Array, recipientKeyPair: KeyPair, options: OpenOptions = {}): OpenedEnvelope {
  // [P-D.7] The checks run in the order of the table in PROTOCOL.md, so that every
  // implementation reports the same code for the same envelope.
  if (recipientKeyPair === null || typeof recipientKeyPair !== 'object') {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'open: recipientKeyPair must be a key pair');
  }
  const { publicKey: rpk, secretKey: rsk } = recipientKeyPair;
  const expectedRid = options.recipientId === undefined ? undefined : parseId(options.recipientId);
  const { message: plain, ephemeralPk } = openBoxWithEphemeral(envelope, rpk, rsk);
  if (plain.length < 1) throw new PosternError(ErrorCode.BAD_ENVELOPE, 'envelope is empty inside');

  let body: Uint8Array;
  let sender: EnvelopeSender | undefined;
  switch (plain[0]) { // [P-D.2]
    case ENVELOPE_ANONYMOUS:
      body = plain.subarray(1);
      break;
    case ENVELOPE_SENDER: {
      const innerAt = 1 + X25519_KEY_SIZE;
      if (plain.length < innerAt + nacl.box.overheadLength + ID_SIZE + BODY_FIXED) {
        throw new PosternError(ErrorCode.BAD_ENVELOPE, 'sender envelope too short');
      }
      // [P-D.3]
      const spk = plain.subarray(1, innerAt);
      const key = staticBoxKey(spk, rsk);
      // A small-order sender key gives a shared key anyone can compute: no proof at all.
      // `plain` is this call's own array: the inner box opens in place.
      const innerLength = plain.length - innerAt - SECRETBOX_OVERHEAD;
      const ok = key !== undefined && secretboxOpenInto(plain, innerAt, innerLength, plain, innerAt + SECRETBOX_OVERHEAD, innerNonce(ephemeralPk, rpk), key);
      if (!ok) {
        throw new PosternError(ErrorCode.SENDER_UNVERIFIED, 'the sender key in this envelope did not make it');
      }
      const inner = plain.subarray(innerAt + SECRETBOX_OVERHEAD);
      const sid = inner.subarray(0, ID_SIZE);
      sender = { publicKey: Uint8Array.from(spk) };
      if (sid.some((b) => b !== 0)) {
        if (routerIdOf(sid) === 0) throw new PosternError(ErrorCode.BAD_ENVELOPE, 'sender ID has router ID 0');
        sender.id = sid;
      }
      body = inner.subarray(ID_SIZE);
      break;
    }
    default:
      throw new PosternError(ErrorCode.UNSUPPORTED_ENVELOPE, `unknown envelope type 0x${plain[0]!.toString(16).padStart(2, '0')}`);
  }

  if (body.length < BODY_FIXED) throw new PosternError(ErrorCode.BAD_ENVELOPE, 'envelope body too short');
  const ridField = body.subarray(0, ID_SIZE);
  let recipientId: Uint8Array | undefined;
  if (ridField.some((b) => b !== 0)) {
    if (routerIdOf(ridField) === 0) throw new PosternError(ErrorCode.BAD_ENVELOPE, 'recipient ID has router ID 0');
    recipientId = ridField;
    // [P-D.5]
    if (expectedRid !== undefined && !bytesEqual(ridField, expectedRid)) {
      throw new PosternError(ErrorCode.RECIPIENT_MISMATCH, 'envelope is bound to another recipient ID');
    }
  }
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(ID_SIZE);
  const end = BODY_FIXED + length;
  if (end > body.length) throw new PosternError(ErrorCode.BAD_ENVELOPE, `content length ${length} runs past the envelope`);
  // [P-D.4-1]
  for (let i = end; i < body.length; i++) {
    if (body[i] !== 0) throw new PosternError(ErrorCode.BAD_ENVELOPE, 'padding bytes are not zero');
  }
  const result: OpenedEnvelope = { content: body.subarray(BODY_FIXED, end), verified: sender !== undefined };
  if (sender !== undefined) result.sender = sender;
  if (recipientId !== undefined) result.recipientId = recipientId;
  return result;
}
