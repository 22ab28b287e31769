/**
 * A reference router: plain, slow and obviously correct. Every frame is decoded with the
 * project's {@link Decoder} and handled one at a time, straight from PROTOCOL.md (§6
 * relay, §7 errors, §8 PING, §10 links and ROUTE_ERROR, §11 anonymity and LOOKUP, §12.4
 * held messages).
 * No fast path, no runs, no slabs: the real router must write the same bytes.
 *
 * What it models of the real router's timing: frames relayed in one event-loop turn are
 * written when the turn ends ({@link endTurn}), anything else at once, after what is
 * pending for that peer. Reply handles are placeholders (`routerId`, 8 x 0xee, a counter):
 * the real ones are random, so a comparison maps one onto the other.
 */
import { ControlCodec, readRouteError } from '../../src/protocol/control.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodeClose, encodeError, encodePing, encodePong, encodeRouteError, encodeSource } from '../../src/protocol/encoder.js';
import { PosternError } from '../../src/protocol/errors.js';
import { Flag, FrameType, ID_SIZE, MAX_MAX_FRAME, SEND_FLAGS, WireCode } from '../../src/protocol/frame.js';

/** Options the model honours, as the real router's of the same name. */
export interface ModelOptions {
  routerId: number;
  maxFrame: number;
  meshHopLimit: number;
  holdMessages: number;
  holdBytes: number;
  maxHandles: number;
}

interface Barrier {
  owner: ModelPeer;
  payload: Buffer;
  left: number;
}

/** One agent or link as the model sees it. */
export class ModelPeer {
  /** Every byte the router wrote to this peer, in order. */
  readonly out: Buffer[] = [];
  open = true;
  readonly decoder: Decoder;
  pending: Array<{ bytes: Buffer; from: ModelPeer }> = [];
  // links, as a sender: the last SOURCE; as a destination: whose SOURCE the peer holds.
  source = Buffer.alloc(ID_SIZE);
  hops = 0;
  srcFlags = 0;
  version = 0;
  named: { who: ModelPeer; version: number } | null = null;
  // parked agents: DELIVERs held for them
  held: Buffer[] | null = null;
  heldBytes = 0;
  // agents: links used since the last PING and PONGs waiting on them; links: barrier tokens
  linksUsed = new Set<ModelPeer>();
  readonly barriers: Barrier[] = [];
  readonly tokens = new Map<number, Barrier>();
  nextToken = 0;
  sticky: Buffer | null = null;
  /** Reply handles issued for this peer's anonymous messages, oldest first (the sticky one apart). */
  readonly issued: Buffer[] = [];

  constructor(
    readonly model: RelayModel,
    readonly kind: 'agent' | 'link',
    readonly id: Buffer,
    readonly anonymous: boolean,
    readonly key: Buffer | null,
    readonly peerRouter: number,
    readonly peerMaxFrame: number,
  ) {
    const maxFrame = kind === 'link' ? Math.min(MAX_MAX_FRAME, Math.max(peerMaxFrame, model.o.maxFrame)) : model.o.maxFrame;
    this.decoder = new Decoder({ frame: (b, s, e) => model.frame(this, Buffer.from(b.subarray(s, e))) }, { maxFrame });
  }
}

const EE = Buffer.alloc(8, 0xee);

export class RelayModel {
  readonly agents = new Map<string, ModelPeer>();
  readonly links = new Map<number, ModelPeer>();
  readonly codec = new ControlCodec();
  /** Every peer, in the order made. */
  private readonly all: ModelPeer[] = [];
  /** Live reply handles (placeholder, hex) and the peer each routes to. [P-11.3] */
  readonly handles = new Map<string, ModelPeer>();
  /** SENDs that reached a live reply handle (a count, so a test can see the mix has them). */
  toHandles = 0;
  /** Every placeholder issued, live or not. */
  readonly everyHandle: Buffer[] = [];
  /** Placeholders some peer has been sent (so a test can learn the real handle), in order. */
  readonly revealed: Buffer[] = [];
  private readonly seen = new Set<string>();

  constructor(readonly o: ModelOptions) {}

  agent(id: Buffer, opts: { anonymous?: boolean; key?: Buffer; parked?: boolean } = {}): ModelPeer {
    const p = new ModelPeer(this, 'agent', id, opts.anonymous === true, opts.key ?? null, 0, 0);
    this.all.push(p);
    if (!p.anonymous) this.agents.set(id.toString('hex'), p);
    if (opts.parked === true) {
      p.open = false;
      p.held = [];
    }
    return p;
  }

  link(peerRouter: number, peerMaxFrame: number): ModelPeer {
    const p = new ModelPeer(this, 'link', Buffer.alloc(ID_SIZE), false, null, peerRouter, peerMaxFrame);
    this.all.push(p);
    this.links.set(peerRouter, p);
    return p;
  }

  /** Bytes read from `p`: decoded and handled frame by frame; a violation closes `p`. */
  read(p: ModelPeer, chunk: Buffer): void {
    if (!p.open) return;
    try {
      p.decoder.push(chunk);
    } catch (err) {
      // Only the decoder's coded errors are the peer's fault; anything else is the model's.
      if (!(err instanceof PosternError) || err.wireCode === undefined) throw err;
      this.close(p, err.wireCode, err.message);
    }
  }

  /** The end of an event-loop turn: relayed frames go out. */
  endTurn(): void {
    for (const p of this.all) this.flush(p);
  }

  private flush(p: ModelPeer): void {
    for (const e of p.pending.splice(0)) {
      // Only a peer's own frames can wait for it when it closes (it closed in this turn).
      if (!p.open && e.from !== p) throw new Error(`model: frames from another peer pending for a closed one (${p.kind} ${p.id.toString('hex')} from ${e.from.kind} ${e.bytes.subarray(0, 30).toString('hex')})`);
      if (p.open) this.emit(p, e.bytes);
    }
  }

  private write(p: ModelPeer, bytes: Buffer): void {
    // A closed or parked peer's stream has ended: it gets nothing more (PONGs released later, say).
    if (!p.open) return;
    this.flush(p);
    this.emit(p, bytes);
  }

  private emit(p: ModelPeer, bytes: Buffer): void {
    p.out.push(bytes);
    for (let q = bytes.indexOf(EE, 4); q >= 0; q = bytes.indexOf(EE, q + 1)) {
      const h = bytes.subarray(q - 4, q + 12);
      if (h.length === ID_SIZE && h.readUInt32BE(0) === this.o.routerId && !this.seen.has(h.toString('hex'))) {
        this.seen.add(h.toString('hex'));
        this.revealed.push(Buffer.from(h));
      }
    }
  }

  frame(s: ModelPeer, f: Buffer): void {
    const type = f[4];
    if (type === FrameType.SEND) return this.send(s, f);
    if (type === FrameType.PING) return this.ping(s, f.subarray(6));
    if (type === FrameType.PONG) {
      const b = s.kind === 'link' && f.length === 10 ? s.tokens.get(f.readUInt32BE(6)) : undefined;
      if (b !== undefined) {
        s.tokens.delete(f.readUInt32BE(6));
        this.barrierDone(b);
      }
      return;
    }
    if (type === FrameType.LOOKUP) return this.lookup(s, f);
    if (type === FrameType.ROUTE_ERROR && s.kind === 'link') {
      // To the sender it names: an agent here gets an ERROR, another router's goes on over its link.
      const e = readRouteError(f, 0, f.length);
      const to = this.lookupId(e.src);
      if (to !== undefined) return this.refuse(to, e.code, e.seq, e.id);
      const l = e.src.readUInt32BE(0) === this.o.routerId ? undefined : this.links.get(e.src.readUInt32BE(0));
      if (l !== undefined) this.write(l, Buffer.from(f));
      return;
    }
    if (type === FrameType.LOOKUP_RESULT && s.kind === 'link') {
      const r = this.codec.decodeLookupResult(f, 0, f.length);
      const to = r.to === undefined ? undefined : this.lookupId(r.to);
      if (to !== undefined) this.write(to, Buffer.concat(this.codec.encodeLookupResult({ ref: r.ref, id: r.id, key: r.key })));
      return;
    }
    if (type === FrameType.SOURCE && s.kind === 'link') {
      s.version++;
      s.source = Buffer.from(f.subarray(6, 22));
      s.hops = f[22]!;
      s.srcFlags = f[5]! & Flag.ANONYMOUS;
      return;
    }
    this.close(s, WireCode.MALFORMED, `frame type 0x${type!.toString(16).padStart(2, '0')} is not allowed here`);
  }

  private send(s: ModelPeer, f: Buffer): void {
    const flags = f[5]!;
    const seq = f.readUInt32BE(22);
    const dest = Buffer.from(f.subarray(6, 22));
    const link = s.kind === 'link';
    if ((flags & ~(link ? Flag.SEALED : SEND_FLAGS)) !== 0) return this.refuse(s, WireCode.UNSUPPORTED_FLAGS, seq, dest);
    const anonymous = !link && (s.anonymous || (flags & Flag.ANONYMOUS) !== 0);
    let from = link ? s.source : s.id;
    if (anonymous) from = (flags & Flag.STICKY) !== 0 ? (s.sticky ??= this.handle(s, true)) : this.handle(s);
    const rid = dest.readUInt32BE(0);
    if (rid === this.o.routerId) {
      const d = this.lookupId(dest);
      if (d === undefined) return this.refuse(s, WireCode.UNKNOWN_DESTINATION, seq, dest);
      if (this.handles.has(dest.toString('hex'))) this.toHandles++;
      if (link && f.length > this.o.maxFrame) return this.refuse(s, WireCode.MESSAGE_TOO_LARGE, seq, dest);
      const out = Buffer.from(f);
      out[4] = FrameType.DELIVER;
      out[5] = link ? flags | s.srcFlags : (anonymous ? Flag.ANONYMOUS : 0) | (flags & Flag.SEALED);
      from.copy(out, 6);
      out.writeUInt32BE(0, 22);
      if (d.open) d.pending.push({ bytes: out, from: s });
      else if (d.held === null) this.refuse(s, WireCode.UNKNOWN_DESTINATION, seq, dest);
      else if (d.held.length >= this.o.holdMessages || d.heldBytes + out.length > this.o.holdBytes) this.refuse(s, WireCode.DESTINATION_SLOW, seq, dest);
      else {
        d.held.push(out);
        d.heldBytes += out.length;
      }
      return;
    }
    const l = this.links.get(rid);
    if (l === undefined) return this.refuse(s, WireCode.UNREACHABLE_ROUTER, seq, dest);
    if (link && s.hops >= this.o.meshHopLimit) return this.refuse(s, WireCode.HOP_LIMIT, seq, dest);
    if (f.length > l.peerMaxFrame) return this.refuse(s, WireCode.MESSAGE_TOO_LARGE, seq, dest);
    const out = Buffer.from(f);
    out[5] = flags & Flag.SEALED;
    if (!link) s.linksUsed.add(l);
    if (anonymous) {
      // The handle travels as an anonymous SOURCE ahead of this one SEND; the next sender names itself again.
      this.write(l, Buffer.concat([encodeSource(from, 1, Flag.ANONYMOUS), out]));
      l.named = null;
      return;
    }
    if (l.named?.who !== s || l.named.version !== s.version) {
      l.pending.push({ bytes: link ? encodeSource(s.source, s.hops + 1, s.srcFlags) : encodeSource(s.id, 1), from: s });
      l.named = { who: s, version: s.version };
    }
    l.pending.push({ bytes: out, from: s });
  }

  /** A fresh reply handle routed to `owner`; past maxHandles its oldest (not the sticky one) is retired. */
  private handle(owner: ModelPeer, sticky = false): Buffer {
    const h = Buffer.alloc(ID_SIZE, 0xee);
    h.writeUInt32BE(this.o.routerId, 0);
    h.writeUInt32BE(this.everyHandle.push(h), 12);
    this.handles.set(h.toString('hex'), owner);
    if (!sticky) {
      owner.issued.push(h);
      if (owner.issued.length > this.o.maxHandles) this.handles.delete(owner.issued.shift()!.toString('hex'));
    }
    return h;
  }

  /** The registry: an agent by its ID, or the owner of a live reply handle. */
  private lookupId(id: Uint8Array): ModelPeer | undefined {
    const hex = Buffer.from(id).toString('hex');
    return this.agents.get(hex) ?? this.handles.get(hex);
  }

  /** ERROR to an agent; ROUTE_ERROR back over a link, for `src` (default: the link's SOURCE). */
  private refuse(s: ModelPeer, code: number, seq: number, dest: Uint8Array, src?: Buffer): void {
    if (s.kind === 'link') this.write(s, encodeRouteError(code, seq, dest, src ?? s.source));
    else this.write(s, encodeError(code, seq, dest));
  }

  private ping(s: ModelPeer, payload: Buffer): void {
    if (s.linksUsed.size > 0) {
      const links = s.linksUsed;
      s.linksUsed = new Set();
      const b = { owner: s, payload, left: links.size };
      s.barriers.push(b);
      for (const l of links) {
        if (!l.open) {
          this.barrierDone(b);
          continue;
        }
        const token = ++l.nextToken;
        l.tokens.set(token, b);
        const t = Buffer.alloc(4);
        t.writeUInt32BE(token);
        this.write(l, encodePing(t));
      }
    } else if (s.barriers.length > 0) {
      s.barriers.push({ owner: s, payload, left: 0 });
      this.pump(s);
    } else {
      this.write(s, encodePong(payload));
    }
  }

  private barrierDone(b: Barrier): void {
    b.left--;
    this.pump(b.owner);
  }

  /** PONGs leave in PING order, each once every link it waited for answered. */
  private pump(p: ModelPeer): void {
    while (p.barriers.length > 0 && p.barriers[0]!.left <= 0) this.write(p, encodePong(p.barriers.shift()!.payload));
  }

  private lookup(s: ModelPeer, f: Buffer): void {
    const q = this.codec.decodeLookup(f, 0, f.length);
    const link = s.kind === 'link';
    if (link && q.from === undefined) return this.close(s, WireCode.MALFORMED, 'LOOKUP on a router link needs from');
    const from = link ? Buffer.from(q.from!) : undefined;
    const rid = Buffer.from(q.id).readUInt32BE(0);
    if (rid !== this.o.routerId) {
      const l = link ? undefined : this.links.get(rid);
      if (l === undefined) return this.refuse(s, WireCode.UNREACHABLE_ROUTER, q.ref, q.id, from);
      this.write(l, Buffer.concat(this.codec.encodeLookup({ ref: q.ref, id: q.id, from: s.anonymous ? this.handle(s) : s.id })));
      s.linksUsed.add(l);
      return;
    }
    const d = this.agents.get(Buffer.from(q.id).toString('hex'));
    if (d === undefined) return this.refuse(s, WireCode.UNKNOWN_DESTINATION, q.ref, q.id, from);
    if (d.key === null) return this.refuse(s, WireCode.NO_KEY, q.ref, q.id, from);
    this.write(s, Buffer.concat(this.codec.encodeLookupResult({ ref: q.ref, id: q.id, key: d.key, ...(from !== undefined ? { to: from } : {}) })));
  }

  /** CLOSE(code): what was queued for the peer goes out, it leaves the registry (or the mesh), then the CLOSE goes out. */
  close(p: ModelPeer, code: number, reason: string): void {
    if (!p.open) return;
    // [P-9.2] frames queued for it before the CLOSE are written before it
    this.flush(p);
    p.open = false;
    p.decoder.stop();
    if (p.kind === 'agent') {
      this.agents.delete(p.id.toString('hex'));
      // Reply handles die with their connection. [P-11.3]
      for (const [h, owner] of this.handles) if (owner === p) this.handles.delete(h);
    } else {
      const tokens = [...p.tokens.values()];
      p.tokens.clear();
      for (const b of tokens) this.barrierDone(b);
      this.links.delete(p.peerRouter);
    }
    this.flush(p);
    this.emit(p, encodeClose(code, reason));
  }
}
