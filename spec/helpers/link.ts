/**
 * Test helper: a hand-made router link. Completes the link handshake of §10.2 as the
 * dialler with router ID `routerId`, over TCP or any Duplex served by a Router.
 */
import type { Duplex } from 'node:stream';
import { encodePreamble } from '../../src/protocol/encoder.js';
import { FrameType, PROTOCOL_VERSION } from '../../src/protocol/frame.js';
import { dialProof, encodeLinkAuth, encodeLinkHello, linkNonce, readLinkHello } from '../../src/protocol/link.js';
import { RawClient } from './raw.js';

/**
 * Dials as router `routerId` with `secret` over `client`; resolves once LINK_READY has
 * arrived, with the acceptor's router ID. Throws when the acceptor refuses.
 */
export async function linkUp(client: RawClient, routerId: number, secret: string, maxFrame = 1 << 20): Promise<number> {
  const nonce = linkNonce();
  client.write(encodePreamble(PROTOCOL_VERSION), ...encodeLinkHello(client.codec, routerId, nonce, maxFrame));
  const ch = await client.next();
  if (ch.type !== FrameType.LINK_CHALLENGE) throw new Error(`expected LINK_CHALLENGE, got type ${ch.type}`);
  const hello = readLinkHello(client.codec, ch.bytes, 0, ch.bytes.length, true);
  client.write(...encodeLinkAuth(client.codec, dialProof(Buffer.from(secret), hello.nonce, nonce, hello.router, routerId)));
  const ready = await client.next();
  if (ready.type !== FrameType.LINK_READY) throw new Error(`expected LINK_READY, got type ${ready.type}`);
  return hello.router;
}

/** A RawClient over a Duplex, linked as router `routerId`. */
export async function rawLink(stream: Duplex, routerId: number, secret: string): Promise<RawClient> {
  const c = new RawClient(stream);
  await linkUp(c, routerId, secret);
  return c;
}
