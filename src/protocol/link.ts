import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ControlCodec } from './control.js';
import { FrameType, MAX_MAX_FRAME, MIN_MAX_FRAME } from './frame.js';
import { ErrorCode, PosternError } from './errors.js';
import { isValidRouterId } from './id.js';

/**
 * The router-link handshake (§10.2): mutual challenge and response over a shared mesh
 * secret. The secret never crosses the wire; each side proves it with HMAC-SHA256 over
 * both nonces and both router IDs, under a label that differs per direction so one side's
 * proof can never be replayed as the other's.
 *
 *   dialer   -> LINK_HELLO     {router, nonce, maxFrame}
 *   acceptor -> LINK_CHALLENGE {router, nonce, proof = HMAC(S, "postern link v1 accept" || nD || nA || idD || idA), maxFrame}
 *   dialer   -> LINK_AUTH      {proof = HMAC(S, "postern link v1 dial" || nA || nD || idA || idD)}
 *   acceptor -> LINK_READY     {}
 *
 * This file is wire format only: the bodies and the proofs. What a router does with a
 * link (whether it accepts links, duplicate router IDs, what a link may carry) is its
 * policy, in src/router/.
 */

/** Bytes of a handshake nonce. */
export const LINK_NONCE_SIZE = 32;

/** Bytes of a router's instance tag (§10.3): random per router process. */
export const LINK_INSTANCE_SIZE = 16;

const ACCEPT_LABEL = Buffer.from('postern link v1 accept');
const DIAL_LABEL = Buffer.from('postern link v1 dial');

/** A fresh random nonce. */
export function linkNonce(): Buffer {
  return randomBytes(LINK_NONCE_SIZE);
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** The acceptor's proof. [P-10.2] */
export function acceptProof(secret: Uint8Array, dialerNonce: Uint8Array, acceptorNonce: Uint8Array, dialerId: number, acceptorId: number): Buffer {
  return createHmac('sha256', secret).update(ACCEPT_LABEL).update(dialerNonce).update(acceptorNonce).update(u32(dialerId)).update(u32(acceptorId)).digest();
}

/** The dialer's proof. [P-10.2] */
export function dialProof(secret: Uint8Array, acceptorNonce: Uint8Array, dialerNonce: Uint8Array, acceptorId: number, dialerId: number): Buffer {
  return createHmac('sha256', secret).update(DIAL_LABEL).update(acceptorNonce).update(dialerNonce).update(u32(acceptorId)).update(u32(dialerId)).digest();
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(got: unknown, want: Buffer): boolean {
  return got instanceof Uint8Array && got.length === want.length && timingSafeEqual(got, want);
}

/** LINK_HELLO / LINK_CHALLENGE fields after shape checks. */
export interface LinkHello {
  router: number;
  nonce: Buffer;
  maxFrame: number;
  proof?: Buffer;
  /** The sender's instance tag, when it sent one (§10.3). */
  instance?: Buffer;
}

function malformed(what: string): never {
  throw new PosternError(ErrorCode.MALFORMED, what);
}

/** Shape-checks a LINK_HELLO or LINK_CHALLENGE body. */
export function readLinkHello(codec: ControlCodec, buf: Buffer, start: number, end: number, withProof: boolean): LinkHello {
  const what = withProof ? 'LINK_CHALLENGE' : 'LINK_HELLO';
  const m = codec.decodeMap(buf, start, end, what);
  const router = m['router'];
  if (!isValidRouterId(router)) malformed(`${what}.router must be an integer in 1..2^32-1`);
  const nonce = m['nonce'];
  if (!(nonce instanceof Uint8Array) || nonce.length !== LINK_NONCE_SIZE) malformed(`${what}.nonce must be ${LINK_NONCE_SIZE} bytes`);
  const maxFrame = m['maxFrame'];
  if (typeof maxFrame !== 'number' || !Number.isInteger(maxFrame) || maxFrame < MIN_MAX_FRAME || maxFrame > MAX_MAX_FRAME) {
    malformed(`${what}.maxFrame must be an integer in ${MIN_MAX_FRAME}..${MAX_MAX_FRAME}`);
  }
  const out: LinkHello = { router, nonce: Buffer.from(nonce), maxFrame };
  const instance = m['instance'];
  if (instance !== undefined) {
    if (!(instance instanceof Uint8Array) || instance.length !== LINK_INSTANCE_SIZE) malformed(`${what}.instance must be ${LINK_INSTANCE_SIZE} bytes`);
    out.instance = Buffer.from(instance);
  }
  if (withProof) {
    const proof = m['proof'];
    if (!(proof instanceof Uint8Array) || proof.length !== 32) malformed('LINK_CHALLENGE.proof must be 32 bytes');
    out.proof = Buffer.from(proof);
  }
  return out;
}

/** LINK_AUTH fields: the dialer's proof, or null when the body has none that is bytes. */
export interface LinkAuth {
  proof: Uint8Array | null;
}

/**
 * Reads a LINK_AUTH body. A missing or wrongly typed proof is not malformed here: it is a
 * proof that does not match, which the acceptor answers with LINK_AUTH_FAILED. [P-10.2]
 */
export function readLinkAuth(codec: ControlCodec, buf: Buffer, start: number, end: number): LinkAuth {
  const proof = codec.decodeMap(buf, start, end, 'LINK_AUTH')['proof'];
  return { proof: proof instanceof Uint8Array ? proof : null };
}

/** Frame chunks of each handshake step. */
export function encodeLinkHello(codec: ControlCodec, router: number, nonce: Buffer, maxFrame: number, instance?: Buffer): Buffer[] {
  return codec.encodeMap(FrameType.LINK_HELLO, instance === undefined ? { router, nonce, maxFrame } : { router, nonce, maxFrame, instance });
}

export function encodeLinkChallenge(codec: ControlCodec, router: number, nonce: Buffer, proof: Buffer, maxFrame: number, instance?: Buffer): Buffer[] {
  return codec.encodeMap(FrameType.LINK_CHALLENGE, instance === undefined ? { router, nonce, proof, maxFrame } : { router, nonce, proof, maxFrame, instance });
}

export function encodeLinkAuth(codec: ControlCodec, proof: Buffer): Buffer[] {
  return codec.encodeMap(FrameType.LINK_AUTH, { proof });
}

export function encodeLinkReady(codec: ControlCodec): Buffer[] {
  return codec.encodeMap(FrameType.LINK_READY, {});
}
