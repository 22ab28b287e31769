import net, { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { RouteErrorFrame } from '../../protocol/control.js';
import { WIRE_CODE_NAMES } from '../../protocol/frame.js';
import { formatId, routerHex, routerIdOf } from '../../protocol/id.js';
import type { Timer } from '../../net/clock.js';
import { backoffDelay } from '../../net/backoff.js';
import { parseEndpoint } from '../../net/address.js';
import { ErrorCode, PosternError } from '../../protocol/errors.js';
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
    /** PEM file of the CA that signs `tls://` peers' certificates; undefined: the system CAs. */
    readonly meshCa?: string | undefined;
  };
  readonly clock: { setTimeout(fn: () => void, ms: number): Timer };
  readonly log: { info(msg: string, f?: Record<string, unknown>): void; warn(msg: string, f?: Record<string, unknown>): void };
  readonly registry: { lookup(buf: Uint8Array, off: number): { readonly conn: { refuse(code: number, seq: number, dest: Uint8Array, src: Buffer | null): void } | null } | undefined };
  /** Wraps a connected socket to a peer router in a dialling link connection. */
  dialled(socket: net.Socket, remote: string): C;
}

/** Close codes by which a peer refuses our link because of how either side is configured, with what to check. */
const REFUSALS: ReadonlyMap<string, string> = new Map([
  ['LINK_AUTH_FAILED', 'both routers need the same mesh secret'],
  ['DUPLICATE_ROUTER_ID', 'every router in a mesh needs its own routerId'],
]);
/** Redial ceiling after a refusal: a wrong secret is not fixed in seconds. */
const REFUSED_RETRY_MAX = 60_000;

/**
 * Ms before redialling a peer after attempt `attempt` ended with `lastError` (a wire code
 * name): doubling from linkRetryMin with full jitter, up to linkRetryMax, or up to 60 s when
 * the peer refused us for configuration (REFUSALS), which retrying quickly will not fix.
 */
export function redialDelay(lastError: string, attempt: number, previous: number, o: { linkRetryMin: number; linkRetryMax: number }, random: () => number): number {
  const maxDelay = REFUSALS.has(lastError) ? Math.max(o.linkRetryMax, REFUSED_RETRY_MAX) : o.linkRetryMax;
  return backoffDelay({ initialDelay: o.linkRetryMin, maxDelay, jitter: 'full' }, attempt, previous, random);
}

/** One configured peer this router dials. */
interface Peer<C> {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Dial with TLS (a `tls://` peer, PROTOCOL.md §13.2), verified like an agent verifies its router. */
  readonly tls: boolean;
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
  private readonly ca: Buffer | undefined;
  private stopped = false;

  constructor(host: MeshHost<C>) {
    this.host = host;
    const ca = host.options.meshCa;
    try {
      this.ca = ca === undefined ? undefined : readFileSync(ca);
    } catch (err) {
      throw new PosternError(ErrorCode.CONFIG, `meshCa: cannot read ${ca}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    this.peers = host.options.peers.map((address) => ({
      address,
      ...peerAddress(address),
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
    // A refused handshake is a configuration error, not a network blip: say so at warn
    // level (first time, then every 10th attempt), and back off further (schedule()).
    if (REFUSALS.has(peer.lastError) && (peer.attempt === 1 || peer.attempt % 10 === 0)) {
      this.host.log.warn('link refused', { peer: peer.address, code: peer.lastError, attempt: peer.attempt, hint: REFUSALS.get(peer.lastError) });
    }
    this.schedule(peer);
  }

  /** [P-10.5] An error for a forwarded SEND: to its sender if local, else on toward its router. */
  routeError(e: RouteErrorFrame, frame: Buffer): void {
    const sender = this.host.registry.lookup(e.src, 0);
    if (sender !== undefined) {
      // A parked sender is told nothing: it has no connection to tell.
      sender.conn?.refuse(e.code, e.seq, e.id, null);
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
    // [P-13.2] a tls:// peer: SNI, the configured CA (or the system's), ALPN postern/1.
    const socket = peer.tls
      ? tls.connect({ host: peer.host, port: peer.port, servername: isIP(peer.host) === 0 ? peer.host : undefined, ca: this.ca, minVersion: 'TLSv1.2', ALPNProtocols: ['postern/1'] })
      : net.connect({ host: peer.host, port: peer.port, noDelay: true });
    if (peer.tls) socket.setNoDelay(true);
    const onError = (err: NodeJS.ErrnoException): void => {
      peer.lastError = err.code ?? err.message;
      socket.destroy();
      if (peer.attempt === 1 || peer.attempt % 10 === 0) this.host.log.warn('link dial failed', { peer: peer.address, attempt: peer.attempt, error: peer.lastError });
      this.schedule(peer);
    };
    socket.once('error', onError);
    socket.once(peer.tls ? 'secureConnect' : 'connect', () => {
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
    const delay = redialDelay(peer.lastError, peer.attempt, peer.previousDelay, o, Math.random);
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

/** A peer address: `host:port` (plain TCP) or `tls://host[:443]`. */
function peerAddress(address: string): { host: string; port: number; tls: boolean } {
  const e = parseEndpoint(address, 'peers');
  if (e.scheme !== 'tcp' && e.scheme !== 'tls') throw new PosternError(ErrorCode.INVALID_OPTION, `option peers entry ${JSON.stringify(address)} must be host:port or tls://host:port`);
  return { host: e.host, port: e.port, tls: e.scheme === 'tls' };
}
