import type { StableChallenge } from '../../protocol/stable-id.js';
import type { RouterContext } from '../context.js';
import type { KeyAsker } from '../keys.js';
import type { Registered } from '../registry.js';
import type { BarrierTokens, PongQueue } from '../mesh/barrier.js';
import type { LinkHandshake } from '../mesh/link.js';
import type { LinkSource } from '../mesh/source.js';
import type { ConnState } from '../state.js';
import type { Writer } from '../write.js';

/**
 * What the frame handlers need of a connection: its role data and role objects, which
 * handlers set, and the transitions of its state machine, which only the connection makes
 * (open, closedByPeer, close, fail). The router's connection implements it; handlers name
 * no implementation.
 */
export interface HandlerConn extends KeyAsker<HandlerConn>, Registered<HandlerConn> {
  readonly ctx: RouterContext<HandlerConn>;
  readonly state: ConnState;
  /** True when this router dialled the connection (a link it opened). */
  readonly dialled: boolean;
  /** The agent's ID, its text form for logs, and its four little-endian int32 words for the relay. */
  id: Buffer;
  idText: string;
  readonly idWords: Int32Array;
  /** True for a connection registered without an identity. */
  anonymous: boolean;
  /** The X25519 public key the agent registered, for LOOKUP. */
  publicKey: Buffer | null;
  /** The peer's IP address, for per-address limits. */
  readonly address: string;
  /** The peer's address for logs (undefined when it must not be logged). */
  remote: string | undefined;
  /** A router link's SOURCE state and peer (null for agents, and for links until they are up). */
  link: LinkSource<unknown> | null;
  /** A router link's peer instance tag, when it sent one. [P-10.3] */
  peerInstance: Buffer | null;
  /** What is gathered for this connection: a link keeps one entry per sender's run. */
  readonly out: { mergeSenders: boolean };
  /** The link handshake while it runs. */
  hs: LinkHandshake<HandlerConn> | null;
  /** Agents: the links their SENDs took since the last PING, and the PINGs waiting on them. */
  linksUsed: Set<HandlerConn> | null;
  pongs: PongQueue | null;
  /** Links: barrier tokens sent as PING payloads, awaiting PONG. */
  tokens: BarrierTokens | null;
  /** [P-15.2] The stable-ID challenge, once asked for. */
  stable: StableChallenge | null;

  /** The one writer to the connection: `write` now (in answer to its own frames), `reply` for this turn's flush. */
  readonly writer: Writer;
  /** Writes a frame given as chunks, together, now. */
  writeChunks(chunks: Buffer[]): void;
  /** Closes the connection for an exception a handler caught (a coded error closes with its code). */
  fail(err: unknown): void;
  /** HANDSHAKE -> OPEN: relaying, for an agent or as a router link, reading frames up to `maxFrame`. */
  open(kind: 'agent' | 'link', maxFrame: number): void;
  /** The peer sent CLOSE(code): the connection ends (the handler logged it). */
  closedByPeer(code: number): void;
  /** Closes this connection (also used on an old connection a resume replaces). */
  close(code: number, reason?: string): void;
}

/**
 * Where a connection is in its life, as one bit, so a handler lists where its frame is
 * allowed as a mask. Every frame reaches a handler after the preamble and before CLOSING
 * (the decoder stops there), so the connection's state adds nothing to these.
 */
export const Role = {
  /** Accepted, preamble exchanged, neither REGISTER nor LINK_HELLO yet. */
  NEW: 1,
  /** Dialled: LINK_HELLO sent, waiting for LINK_CHALLENGE. */
  DIALLING: 2,
  /** Dialled: LINK_AUTH sent, waiting for LINK_READY. */
  DIAL_AUTHED: 4,
  /** Accepted link: LINK_CHALLENGE sent, waiting for LINK_AUTH. */
  ACCEPTING: 8,
  /** A registered agent. */
  AGENT: 16,
  /** A router link that is up. */
  LINK: 32,
} as const;

/** Every role. */
export const ANY_ROLE = 63;

/** The role of `c` now. */
export function roleOf(c: HandlerConn): number {
  if (c.kind === 'agent') return Role.AGENT;
  if (c.kind === 'link') return Role.LINK;
  const hs = c.hs;
  if (hs === null) return c.dialled ? 0 : Role.NEW;
  if (!c.dialled) return Role.ACCEPTING;
  return hs.peer === null ? Role.DIALLING : Role.DIAL_AUTHED;
}

/** One frame type's handler: where it is allowed, and what it does. */
export interface FrameHandler {
  /** The roles (a mask of {@link Role}) in which the frame is allowed; elsewhere it is MALFORMED. */
  readonly roles: number;
  handle(c: HandlerConn, buf: Buffer, start: number, end: number): void;
}
