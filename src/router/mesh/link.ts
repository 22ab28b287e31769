import { WIRE_CODE_NAMES, WireCode } from '../../protocol/frame.js';
import { routerHex } from '../../protocol/id.js';
import {
  acceptProof,
  dialProof,
  encodeLinkAuth,
  encodeLinkChallenge,
  encodeLinkHello,
  encodeLinkReady,
  linkNonce,
  proofMatches,
  readLinkAuth,
  readLinkHello,
  type LinkHello,
} from '../../protocol/link.js';
import type { RouterContext } from '../context.js';

/** What the handshake needs of the connection it runs on. */
export interface LinkStream {
  /** Remote address for logs. */
  readonly remote: string | undefined;
  writeChunks(chunks: Buffer[]): void;
  close(code: number, reason: string): void;
}

/**
 * [P-10.2] The link handshake of one connection between two routers, both sides: the
 * dialler sends LINK_HELLO and answers LINK_CHALLENGE with LINK_AUTH; the acceptor answers
 * LINK_HELLO with LINK_CHALLENGE and LINK_AUTH with LINK_READY. Each side proves it knows
 * the mesh secret over both nonces. Every method that refuses closes the connection and
 * returns false; the connection turns into a link when {@link auth} or {@link ready}
 * return true, with {@link peer} describing the other router.
 */
export class LinkHandshake<C extends LinkStream> {
  /** This side's nonce. */
  readonly nonce = linkNonce();
  /** The peer's LINK_HELLO or LINK_CHALLENGE, once read and checked. */
  peer: LinkHello | null = null;

  private constructor(
    private readonly ctx: RouterContext<C>,
    private readonly conn: LinkStream,
  ) {}

  /** Dialler: starts the handshake with LINK_HELLO (the caller has written the preamble). */
  static dial<C extends LinkStream>(ctx: RouterContext<C>, conn: LinkStream): LinkHandshake<C> {
    const hs = new LinkHandshake(ctx, conn);
    const o = ctx.options;
    conn.writeChunks(encodeLinkHello(ctx.codec, o.routerId, hs.nonce, o.maxFrame, ctx.mesh.instance));
    return hs;
  }

  /** Acceptor: LINK_HELLO -> LINK_CHALLENGE; the handshake, or null when refused. */
  static accept<C extends LinkStream>(ctx: RouterContext<C>, conn: LinkStream, buf: Buffer, start: number, end: number): LinkHandshake<C> | null {
    const o = ctx.options;
    const hello = readLinkHello(ctx.codec, buf, start, end, false);
    if (o.meshSecret === undefined) {
      conn.close(WireCode.LINK_AUTH_FAILED, 'this router accepts no router links (no mesh secret)');
      return null;
    }
    const hs = new LinkHandshake(ctx, conn);
    if (hs.sameId(hello)) return null;
    hs.peer = hello;
    const proof = acceptProof(ctx.meshSecret, hello.nonce, hs.nonce, hello.router, o.routerId);
    conn.writeChunks(encodeLinkChallenge(ctx.codec, o.routerId, hs.nonce, proof, o.maxFrame, ctx.mesh.instance));
    return hs;
  }

  /** Dialler: LINK_CHALLENGE -> LINK_AUTH, after checking the acceptor's proof. */
  challenge(buf: Buffer, start: number, end: number): void {
    const ctx = this.ctx;
    const o = ctx.options;
    const ch = readLinkHello(ctx.codec, buf, start, end, true);
    if (this.sameId(ch)) return;
    if (!proofMatches(ch.proof, acceptProof(ctx.meshSecret, this.nonce, ch.nonce, o.routerId, ch.router))) {
      this.conn.close(WireCode.LINK_AUTH_FAILED, 'peer router does not know the mesh secret');
      return;
    }
    if (this.refuseDuplicate(ch)) return;
    this.peer = ch;
    this.conn.writeChunks(encodeLinkAuth(ctx.codec, dialProof(ctx.meshSecret, ch.nonce, this.nonce, ch.router, o.routerId)));
  }

  /** Acceptor: LINK_AUTH -> LINK_READY, after checking the dialler's proof; true when the link is up. */
  auth(buf: Buffer, start: number, end: number): boolean {
    const ctx = this.ctx;
    const peer = this.peer!;
    const { proof } = readLinkAuth(ctx.codec, buf, start, end);
    if (!proofMatches(proof, dialProof(ctx.meshSecret, this.nonce, peer.nonce, ctx.options.routerId, peer.router))) {
      this.conn.close(WireCode.LINK_AUTH_FAILED, 'wrong mesh secret');
      return false;
    }
    if (this.refuseDuplicate(peer)) return false;
    this.conn.writeChunks(encodeLinkReady(ctx.codec));
    return true;
  }

  /** Dialler: LINK_READY; true when the link is up. */
  ready(): boolean {
    // checked again: another dialled link to that ID may have come up meanwhile
    return !this.refuseDuplicate(this.peer!);
  }

  /** [P-10.3] A peer with this router's own ID is refused. */
  private sameId(peer: LinkHello): boolean {
    const id = this.ctx.options.routerId;
    if (peer.router !== id) return false;
    this.ctx.log.error('link refused: peer has this router ID', { router: routerHex(id), remote: this.conn.remote, code: WIRE_CODE_NAMES[WireCode.DUPLICATE_ROUTER_ID] });
    this.conn.close(WireCode.DUPLICATE_ROUTER_ID, `peer router has this router's ID ${routerHex(id)}`);
    return true;
  }

  /**
   * [P-10.3] A peer (its proof checked) announcing the router ID of a router already linked
   * under another instance tag is a second router with that ID: refused on this link, which
   * the peer sees as CLOSE(DUPLICATE_ROUTER_ID). The same router linked twice, or back after
   * its old link closed, is not refused.
   */
  private refuseDuplicate(peer: LinkHello): boolean {
    const other = this.ctx.mesh.duplicateOf(peer.router, peer.instance);
    if (other === undefined) return false;
    const router = routerHex(peer.router);
    this.ctx.log.error('link refused: duplicate router ID', { router, remote: this.conn.remote, linked: other.remote, code: WIRE_CODE_NAMES[WireCode.DUPLICATE_ROUTER_ID] });
    this.conn.close(WireCode.DUPLICATE_ROUTER_ID, `another router with ID ${router} is linked here already`);
    return true;
  }
}
