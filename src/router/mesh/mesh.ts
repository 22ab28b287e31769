import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { RouteErrorFrame } from '../../protocol/control.js';
import { WIRE_CODE_NAMES } from '../../protocol/frame.js';
import { formatId, routerHex, routerIdOf } from '../../protocol/id.js';
import type { Timer } from '../../net/clock.js';
import { backoffDelay } from '../../net/backoff.js';
import { parseRouterAddress } from '../../net/address.js';
import type { MeshRoutes } from '../context.js';
import { LINK_INSTANCE_SIZE } from '../../protocol/link.js';

/** What the mesh needs of a link: its peer, its traffic, and a way to write to it. */
export interface MeshLink {
  readonly peerRouterId: number;
  /** The peer's instance tag, when it sent one (§10.3). */
  readonly peerInstance: Buffer | null;
  /** True when this router dialled it. */
  readonly dialled: boolean;
  /** 'link' once the handshake is done. */
  readonly kind: string;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly framesIn: number;
  /** Queues a frame behind what is gathered for this link; never writes from an error path. */
  reply(buf: Buffer): void;
}

/** What the mesh needs from its router; `C` is the router's connection type. */
export interface MeshHost<C extends MeshLink> {
  readonly options: {
    readonly routerId: number;
    readonly peers: readonly string[];
    readonly linkRetryMin: number;
    readonly linkRetryMax: number;
  };
  readonly clock: { setTimeout(fn: () => void, ms: number): Timer };
  readonly log: { info(msg: string, f?: Record<string, unknown>): void; warn(msg: string, f?: Record<string, unknown>): void };
  readonly registry: { lookup(buf: Uint8Array, off: number): { readonly conn: { refuse(code: number, seq: number, dest: Uint8Array, src: Buffer | null): void } } | undefined };
  /** Wraps a connected socket to a peer router in a dialling link connection. */
  dialled(socket: net.Socket, remote: string): C;
}

/** One configured peer this router dials. */
interface Peer<C> {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  attempt: number;
  previousDelay: number;
  conn: C | null;
  timer: Timer | null;
  /** Wire code of the last refusal, for logs. */
  lastError: string;
}

/** A router link as reported by {@link Mesh.links}. */
export interface LinkInfo {
  /** The peer router's ID. */
  router: number;
  /** 'out' when this router dialled it. */
  direction: 'in' | 'out';
  /** The configured address, for dialled links. */
  peer: string | undefined;
  /** Bytes read from and queued to the link. */
  bytesIn: number;
  bytesOut: number;
  /** Frames read from the link. */
  framesIn: number;
}

/** Configured peers that are not linked right now. */
export interface PeerInfo {
  address: string;
  attempt: number;
  lastError: string;
}

/**
 * The router mesh: links to peer routers by router ID, dialling configured peers and
 * redialling with jittered backoff, and routing ROUTE_ERRORs back to senders. [P-10]
 */
export class Mesh<C extends MeshLink> implements MeshRoutes<C> {
  /**
   * This router process's instance tag, sent in the link handshake: two links announcing
   * one router ID with different tags come from two routers sharing an ID. [P-10.3]
   */
  readonly instance: Buffer = randomBytes(LINK_INSTANCE_SIZE);
  private readonly host: MeshHost<C>;
  private readonly byRouter = new Map<number, C[]>();
  private readonly peers: Array<Peer<C>>;
  private stopped = false;

  constructor(host: MeshHost<C>) {
    this.host = host;
    this.peers = host.options.peers.map((address) => ({
      address,
      ...parseRouterAddress(address, 'peers'),
      attempt: 0,
      previousDelay: 0,
      conn: null,
      timer: null,
      lastError: '',
    }));
  }

  /** Starts dialling every configured peer. */
  start(): void {
    for (const p of this.peers) this.dial(p);
  }

  /** Stops dialling (links are closed by the router). */
  stop(): void {
    this.stopped = true;
    for (const p of this.peers) {
      p.timer?.cancel();
      p.timer = null;
    }
  }

  /** The link to carry SENDs for agents of `routerId`, if one is up. */
  linkFor(routerId: number): C | undefined {
    return this.byRouter.get(routerId)?.[0];
  }

  /**
   * A link that is up to another router announcing `routerId` (a different instance tag),
   * or undefined. A router that sent no tag cannot be told apart and is never a duplicate.
   */
  duplicateOf(routerId: number, instance: Buffer | undefined): C | undefined {
    if (instance === undefined) return undefined;
    return this.byRouter.get(routerId)?.find((c) => c.peerInstance !== null && !c.peerInstance.equals(instance));
  }

  /** Every link that is up. */
  links(): LinkInfo[] {
    const out: LinkInfo[] = [];
    for (const list of this.byRouter.values()) {
      for (const c of list) {
        out.push({
          router: c.peerRouterId,
          direction: c.dialled ? 'out' : 'in',
          peer: this.peers.find((p) => p.conn === c)?.address,
          bytesIn: c.bytesIn,
          bytesOut: c.bytesOut,
          framesIn: c.framesIn,
        });
      }
    }
    return out;
  }

  /** Configured peers without a link right now. */
  down(): PeerInfo[] {
    return this.peers.filter((p) => p.conn === null || p.conn.kind !== 'link').map((p) => ({ address: p.address, attempt: p.attempt, lastError: p.lastError }));
  }

  onLinkUp(conn: C): void {
    const list = this.byRouter.get(conn.peerRouterId);
    if (list === undefined) this.byRouter.set(conn.peerRouterId, [conn]);
    else list.push(conn);
    const peer = this.peers.find((p) => p.conn === conn);
    if (peer !== undefined) {
      peer.attempt = 0;
      peer.previousDelay = 0;
      peer.lastError = '';
    }
    this.host.log.info('link up', { router: routerHex(conn.peerRouterId), direction: conn.dialled ? 'out' : 'in', peer: peer?.address });
  }

  onLinkDown(conn: C): void {
    const list = this.byRouter.get(conn.peerRouterId);
    if (list === undefined) return;
    const i = list.indexOf(conn);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.byRouter.delete(conn.peerRouterId);
    this.host.log.info('link down', { router: routerHex(conn.peerRouterId), direction: conn.dialled ? 'out' : 'in' });
  }

  /** A connection ended: redial it if it was one of ours. */
  onClosed(conn: C, code: number | undefined): void {
    const peer = this.peers.find((p) => p.conn === conn);
    if (peer === undefined) return;
    peer.conn = null;
    if (code !== undefined) peer.lastError = WIRE_CODE_NAMES[code] ?? String(code);
    this.schedule(peer);
  }

  /** [P-10.5] An error for a forwarded SEND: to its sender if local, else on toward its router. */
  routeError(e: RouteErrorFrame, frame: Buffer): void {
    const sender = this.host.registry.lookup(e.src, 0);
    if (sender !== undefined) {
      sender.conn.refuse(e.code, e.seq, e.id, null);
      return;
    }
    const rid = routerIdOf(e.src);
    const link = rid === this.host.options.routerId ? undefined : this.linkFor(rid);
    if (link !== undefined) link.reply(Buffer.from(frame));
    else this.host.log.info('route error for a sender that is gone', { code: WIRE_CODE_NAMES[e.code] ?? e.code, agent: formatId(e.src) });
  }

  private dial(peer: Peer<C>): void {
    if (this.stopped) return;
    peer.timer = null;
    peer.attempt++;
    const socket = net.connect({ host: peer.host, port: peer.port, noDelay: true });
    const onError = (err: NodeJS.ErrnoException): void => {
      peer.lastError = err.code ?? err.message;
      socket.destroy();
      if (peer.attempt === 1 || peer.attempt % 10 === 0) this.host.log.warn('link dial failed', { peer: peer.address, attempt: peer.attempt, error: peer.lastError });
      this.schedule(peer);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      if (this.stopped) {
        socket.destroy();
        return;
      }
      try {
        peer.conn = this.host.dialled(socket, peer.address);
      } catch (err) {
        // A link that fails while starting is one failed dial, never the process's end.
        peer.lastError = String(err);
        socket.destroy();
        this.schedule(peer);
      }
    });
  }

  private schedule(peer: Peer<C>): void {
    if (this.stopped || peer.timer !== null) return;
    const o = this.host.options;
    const delay = backoffDelay({ initialDelay: o.linkRetryMin, maxDelay: o.linkRetryMax, jitter: 'full' }, peer.attempt, peer.previousDelay, Math.random);
    peer.previousDelay = delay;
    peer.timer = this.host.clock.setTimeout(() => {
      try {
        this.dial(peer);
      } catch (err) {
        peer.lastError = String(err);
        this.host.log.warn('link dial failed', { peer: peer.address, attempt: peer.attempt, error: peer.lastError });
        this.schedule(peer);
      }
    }, Math.max(delay, o.linkRetryMin / 2));
  }
}
