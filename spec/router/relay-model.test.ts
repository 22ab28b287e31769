/**
 * The relay fast path against a reference router (spec/router/relay-model.ts).
 *
 * The fast path's invariant: it accepts exactly the frames the decoder would accept and
 * relays them to the same bytes; where it stops (another type, flags, a size the decoder
 * must judge, a frame cut by the chunk's end) the decoder path takes over at that frame,
 * and every refusal (ERROR, ROUTE_ERROR, CLOSE) is the decoder path's.
 *
 * Each seed makes one random mix: four agents (two with keys), an anonymous agent, a
 * parked agent and two router links (a real link handshake; the peers announce a smaller
 * and a larger maxFrame than ours), sending SENDs with every flag and size up to maxFrame
 * (to each other, to themselves, to reply handles, to unknown, parked, remote and
 * unreachable IDs), SOURCE runs, ROUTE_ERRORs and LOOKUP_RESULTs on the links, PINGs
 * (barriers across links, answered by the links), LOOKUPs, skippable frames and framing
 * violations, every stream cut at random points. The same
 * chunks go, one event-loop turn each, through the reference model and through the real
 * Router (in-memory streams, `Router.handle`) with its fast path on and forced off; every
 * peer must receive the same bytes in the same order, and the parked agent, on resuming,
 * the same held messages.
 *
 * CI runs fixed seeds; `RELAY_MODEL_SEEDS=200` adds that many random seeds (printed on
 * failure), `RELAY_MODEL_STEPS` sets the chunks per seed (default 250) and
 * `RELAY_MODEL_VERBOSE=1` prints the frames around a difference.
 */
import { Duplex } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { ManualClock } from '../../src/net/clock.js';
import { ControlCodec } from '../../src/protocol/control.js';
import { encodePreamble, encodeRouteError, encodeSource, writeRelayHeader } from '../../src/protocol/encoder.js';
import { Flag, FrameType, FRAME_TYPE_NAMES, PROTOCOL_VERSION, WIRE_CODE_NAMES } from '../../src/protocol/frame.js';
import { dialProof, encodeLinkAuth, encodeLinkHello, linkNonce, readLinkHello } from '../../src/protocol/link.js';
import { ModelPeer, RelayModel, type ModelOptions } from './relay-model.js';
import { prng } from '../helpers/random.js';

const T = suite('relay model');

// Few reply handles per connection, so retiring the oldest happens too.
const OPTS: ModelOptions = { routerId: 1, maxFrame: 4096, meshHopLimit: 2, holdMessages: 8, holdBytes: 6000, maxHandles: 12 };
const SECRET = 'relay model mesh secret';
const GRACE = 10_000;
const STEPS = Number(process.env['RELAY_MODEL_STEPS'] ?? 250);


// ---- the plan: peers, and the chunks each sends, made with the model in lockstep -------

interface PeerSpec {
  name: string;
  kind: 'agent' | 'anonymous' | 'link';
  id: Buffer;
  key: Buffer | null;
  peerRouter: number;
  peerMaxFrame: number;
}

interface Plan {
  peers: PeerSpec[];
  parked: Buffer;
  parkedKey: Buffer;
  steps: Array<{ peer: number; bytes: Buffer }>;
  /**
   * Where each peer's bytes name a reply handle (offset in its stream, the model's
   * placeholder): the real router's handles are random, so the replay writes in the real
   * handle, learnt from what the router sent so far.
   */
  patches: Array<Array<{ at: number; handle: Buffer }>>;
  /** What the model wrote to each peer, and the held messages the parked agent gets on resuming. */
  want: Buffer[];
  held: Buffer;
  /** SENDs the model routed through a live reply handle. */
  toHandles: number;
}

function plan(seed: number, count: number): Plan {
  const r = prng(seed);
  const r2 = prng(seed ^ 0x5a5a5a5a);
  const int = (n: number): number => Math.floor(r() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  const bytes = (n: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const idOf = (router: number): Buffer => {
    const id = bytes(16);
    id.writeUInt32BE(router, 0);
    return id;
  };
  const model = new RelayModel(OPTS);
  const peers: PeerSpec[] = [];
  const mp: ModelPeer[] = [];
  for (let i = 0; i < 4; i++) {
    const spec: PeerSpec = { name: `agent${i}`, kind: 'agent', id: idOf(1), key: i < 2 ? bytes(32) : null, peerRouter: 0, peerMaxFrame: 0 };
    peers.push(spec);
    mp.push(model.agent(spec.id, spec.key === null ? {} : { key: spec.key }));
  }
  peers.push({ name: 'anonymous', kind: 'anonymous', id: Buffer.alloc(16), key: null, peerRouter: 0, peerMaxFrame: 0 });
  mp.push(model.agent(Buffer.alloc(16), { anonymous: true }));
  for (const [router, max] of [
    [2, 2048],
    [3, 8192],
  ] as const) {
    peers.push({ name: `link${router}`, kind: 'link', id: Buffer.alloc(16), key: null, peerRouter: router, peerMaxFrame: max });
    mp.push(model.link(router, max));
  }
  const parked = idOf(1);
  const parkedKey = bytes(32);
  const parkedPeer = model.agent(parked, { parked: true, key: parkedKey });

  // Destinations: agents (the sender itself included), the parked one, IDs nobody has here,
  // agents behind each link, and a router nobody links to.
  const dests = [...peers.filter((p) => p.kind === 'agent').map((p) => p.id), parked, idOf(1), idOf(1), idOf(2), idOf(2), idOf(3), idOf(9)];
  const remote = [idOf(2), idOf(3), idOf(3), idOf(7)];
  // Now and then a reply handle some peer was sent (live, retired or dead): anonymous
  // senders get answers through them.
  const anyDest = (): Buffer => (model.revealed.length > 0 && r() < 0.15 ? pick(model.revealed) : pick(dests));
  const local = (): Buffer => (model.revealed.length > 0 && r() < 0.25 ? pick(model.revealed) : pick(dests.slice(0, 5)));
  const seqs = peers.map(() => 0);
  const answered = peers.map(() => new Set<number>());
  const queues: Buffer[][] = peers.map(() => []);
  const ended = peers.map(() => false);

  const send = (i: number, dest: Buffer, flags: number, max: number): Buffer => {
    const roll = r();
    // Sizes at the edges: the smaller link's maxFrame, ours, the larger link's; checked inline by the fast path.
    const edge = pick([2047, 2048, 2049, 4095, 4096, 4097, 8192].filter((t) => t <= max)) - 26;
    const n = roll < 0.55 ? int(41) : roll < 0.78 ? 40 + int(560) : roll < 0.9 ? int(max - 26 + 1) : edge;
    const f = Buffer.allocUnsafe(26 + n);
    writeRelayHeader(f, 0, FrameType.SEND, flags, dest, (seqs[i] = (seqs[i]! + 1) >>> 0), n);
    bytes(n).copy(f, 26);
    return f;
  };
  const agentFlags = (): number => pick([0, 0, 0, 0, 0, Flag.SEALED, Flag.SEALED, Flag.ANONYMOUS, Flag.ANONYMOUS | Flag.STICKY, Flag.ANONYMOUS | Flag.SEALED, Flag.STICKY, 0x08, 0x40]);
  const linkFlags = (): number => pick([0, 0, 0, 0, Flag.SEALED, Flag.SEALED, Flag.ANONYMOUS, 0x08]);
  const header = (length: number, type: number, extra = 0): Buffer => {
    const b = Buffer.alloc(6 + extra);
    b.writeUInt32BE(length, 0);
    b[4] = type;
    return b;
  };
  const violation = (i: number, link: boolean): Buffer =>
    pick([
      header(link ? 8192 : 4096, FrameType.SEND), // FRAME_TOO_LARGE
      header(1, FrameType.SEND), // shorter than type and flags
      header(2, 0x7e), // unknown critical type
      header(10, FrameType.SEND, 8), // shorter than a relay header
      header(2 + 65, FrameType.PING, 65), // PING payload over 64
      Buffer.concat(model.codec.encodeRegistered({ id: Buffer.alloc(16), router: 1, maxFrame: 4096, keepalive: 1, timeout: 1 })), // not allowed here
      link ? Buffer.concat(model.codec.encodeLookup({ ref: 1, id: dests[0]! })) : encodeSource(peers[i]!.id, 1), // link LOOKUP without from; SOURCE from an agent
    ]);

  // A violation ends its peer: rarer in longer runs, so they do not go quiet.
  const violations = 0.02 * Math.min(1, 250 / count);
  /** Appends a batch of frames to peer i's outgoing bytes. */
  const batch = (i: number): void => {
    const p = peers[i]!;
    const link = p.kind === 'link';
    const out = queues[i]!;
    const max = link ? 8192 : OPTS.maxFrame;
    const roll = r();
    if (roll < 0.55) {
      // A run: mostly one destination and one flag, so the fast path extends runs.
      const source = (): Buffer => encodeSource(pick(remote), int(4), r() < 0.3 ? Flag.ANONYMOUS : 0);
      if (link && r() < 0.6) out.push(source());
      // Links: local agents, or onward over a link (the same one included); agents: anyone.
      const roll2 = r();
      const dest = link && roll2 < 0.4 ? local() : link && roll2 < 0.7 ? pick(remote) : anyDest();
      const flags = link ? (r() < 0.7 ? 0 : linkFlags()) : r() < 0.6 ? 0 : agentFlags();
      const k = r() < 0.2 ? 1 + int(40) : 1 + int(8);
      for (let j = 0; j < k; j++) {
        // Now and then one SEND in the run goes elsewhere, or has other flags; on links a
        // SOURCE may change the sender in the middle of a run.
        if (link && r() < 0.05) out.push(source());
        let to = r() < 0.1 ? anyDest() : dest;
        // On a link, a run to an agent here broken by a SEND for another agent here (drawn
        // from a stream of its own, so the mixes of the main stream stay as they were).
        if (link && to === dest && r2() < 0.08) to = dests[Math.floor(r2() * 5)]!;
        out.push(send(i, to, r() < 0.1 ? (link ? linkFlags() : agentFlags()) : flags, max));
      }
    } else if (roll < 0.65) {
      const n = int(65);
      out.push(Buffer.concat([header(n + 2, FrameType.PING), bytes(n)]));
    } else if (roll < 0.72) {
      const id = r() < 0.7 ? anyDest() : pick(remote);
      out.push(Buffer.concat(model.codec.encodeLookup({ ref: int(0x10000), id, ...(link ? { from: pick(remote) } : {}) })));
    } else if (roll < 0.8 && link) {
      // The link answers the barrier PINGs it has had (and, now and then, a token twice).
      for (const t of mp[i]!.tokens.keys()) {
        if (answered[i]!.has(t) && r() < 0.9) continue;
        answered[i]!.add(t);
        const pong = header(6, FrameType.PONG, 4);
        pong.writeUInt32BE(t, 6);
        out.push(pong);
      }
    } else if (roll < 0.83 && link) {
      // Answers from the peer router: a ROUTE_ERROR for a sender (here, elsewhere, gone), a LOOKUP_RESULT for an asker.
      for (let j = 1 + int(3); j > 0; j--) {
        const src = r() < 0.7 ? local() : r() < 0.5 ? idOf(1) : pick(remote);
        if (r() < 0.6) out.push(encodeRouteError(pick([1, 5, 6, 8, 18, 20]), int(0x10000), anyDest(), src, r() < 0.5 ? '' : 'far away'));
        else out.push(Buffer.concat(model.codec.encodeLookupResult({ ref: int(0x10000), id: anyDest(), key: bytes(32), to: src })));
      }
    } else if (roll < 0.84) {
      // Optional frame types are skipped, by both paths.
      const n = int(100);
      out.push(Buffer.concat([header(n + 2, 0x80 + int(128)), bytes(n)]));
    } else if (roll < 0.84 + violations && !ended[i]) {
      // Bytes after it are never read: they only tempt a path that reads past the bad frame.
      out.push(violation(i, link), bytes(int(60)));
      ended[i] = true;
    } else {
      for (let j = 1 + int(4); j > 0; j--) out.push(send(i, anyDest(), link ? linkFlags() : agentFlags(), max));
    }
  };

  const steps: Plan['steps'] = [];
  const deliver = (i: number, chunk: Buffer): void => {
    steps.push({ peer: i, bytes: chunk });
    model.read(mp[i]!, chunk);
    model.endTurn();
  };
  /** Cuts a chunk from the front of peer i's bytes: a few bytes, a random share, or all. */
  const cut = (i: number): Buffer => {
    const all = Buffer.concat(queues[i]!);
    const roll = r();
    const n = Math.min(all.length, roll < 0.2 ? 1 + int(6) : roll < 0.7 ? 1 + int(all.length) : all.length);
    queues[i] = n < all.length ? [all.subarray(n)] : [];
    sent[i] += n;
    return all.subarray(0, n);
  };
  const pending = (i: number): number => queues[i]!.reduce((s, b) => s + b.length, 0);
  const sent = peers.map(() => 0);
  const patches: Plan['patches'] = peers.map(() => []);
  /** Peer i's batch, with where it names reply handles. */
  const more = (i: number): void => {
    const before = pending(i);
    batch(i);
    const fresh = Buffer.concat(queues[i]!).subarray(before);
    for (const at of placeholders(fresh)) patches[i]!.push({ at: sent[i]! + before + at, handle: Buffer.from(fresh.subarray(at, at + 16)) });
  };
  for (let s = 0; s < count; s++) {
    const open = mp.map((p, i) => (p.open ? i : -1)).filter((i) => i >= 0);
    if (open.length === 0) break;
    const i = pick(open);
    if (!ended[i] && (pending(i) === 0 || r() < 0.3)) more(i);
    if (pending(i) > 0) deliver(i, cut(i));
  }
  // The links answer every barrier still waiting, then everyone sends what is left.
  for (let i = 0; i < peers.length; i++) {
    if (peers[i]!.kind !== 'link' || !mp[i]!.open || ended[i]) continue;
    for (const t of mp[i]!.tokens.keys()) {
      const pong = header(6, FrameType.PONG, 4);
      pong.writeUInt32BE(t, 6);
      queues[i]!.push(pong);
    }
  }
  for (let i = 0; i < peers.length; i++) while (mp[i]!.open && pending(i) > 0) deliver(i, cut(i));
  return { peers, parked, parkedKey, steps, patches, want: mp.map((p) => Buffer.concat(p.out)), held: Buffer.concat(parkedPeer.held ?? []), toHandles: model.toHandles };
}

// ---- the real router, over in-memory streams ------------------------------------------

/** One peer's end: bytes pushed in are what the router reads; the frames it writes are kept. */
class Wire {
  /** Frames written since the last take(), after `skip` bytes (the preamble). */
  frames: Buffer[] = [];
  private rest = Buffer.alloc(0);
  private skip = 0;
  readonly stream = new Duplex({
    read() {},
    write: (chunk: Buffer, _enc, cb) => {
      // Copied: the router may write a buffer it later writes over.
      let b = Buffer.concat([this.rest, chunk]);
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length);
        this.skip -= n;
        b = b.subarray(n);
      }
      let o = 0;
      while (b.length - o >= 4 && b.length - o >= b.readUInt32BE(o) + 4) {
        const n = b.readUInt32BE(o) + 4;
        this.frames.push(Buffer.from(b.subarray(o, o + n)));
        o += n;
      }
      this.rest = Buffer.from(b.subarray(o));
      cb();
    },
  });

  /** The next `n` bytes the router writes are not frames (its preamble). */
  expectPreamble(): void {
    this.skip = 8;
  }

  send(b: Buffer): void {
    // A fresh copy: the router rewrites SENDs into DELIVERs in the chunk it reads.
    this.stream.push(Buffer.from(b));
  }

  take(): Buffer[] {
    const f = this.frames;
    this.frames = [];
    return f;
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Waits until the router has read `bytes` in all, then lets the turn's writes go out. */
async function settle(router: Router, bytes: number): Promise<void> {
  for (let i = 0; router.stats.bytesIn < bytes; i++) {
    if (i > 1000) throw new Error('the router did not read its input');
    await turn();
  }
  await turn();
}

const EE = Buffer.alloc(8, 0xee);

/** Offsets of the model's reply-handle placeholders in `b` (router 1, then 8 x 0xee). */
function placeholders(b: Buffer): number[] {
  const out: number[] = [];
  for (let q = b.indexOf(EE, 4); q >= 0; q = b.indexOf(EE, q + 1)) {
    if (b.readUInt32BE(q - 4) === OPTS.routerId) out.push(q - 4);
  }
  return out;
}

async function replay(p: Plan, relayFastPath: boolean, handles: Handles): Promise<{ got: Buffer[][]; held: Buffer[] }> {
  const clock = new ManualClock();
  const router = new Router({
    ...OPTS,
    meshSecret: SECRET,
    // IDs are the plan's: registered through resume tokens in the restart window.
    resumeSecret: 'relay model resume secret',
    resumeGrace: GRACE,
    keepaliveInterval: 3_600_000,
    handshakeTimeout: 3_600_000,
    maxOutbound: 1 << 30,
    registrationRate: 0,
    relayFastPath,
    clock,
  });
  const codec = new ControlCodec();
  const wires: Wire[] = [];
  /** Opens a stream: the first bytes, then the router's preamble and `count` frames. */
  const open = async (w: Wire, first: Buffer[], count: number): Promise<Buffer[]> => {
    router.handle(w.stream);
    w.expectPreamble();
    for (const b of first) w.send(b);
    for (let i = 0; w.frames.length < count; i++) {
      if (i > 1000) throw new Error('no answer to the handshake');
      await turn();
    }
    return w.take();
  };
  const register = (w: Wire, id: Buffer, key: Buffer | null): Promise<Buffer[]> =>
    open(w, [encodePreamble(PROTOCOL_VERSION), ...codec.encodeRegister({ resume: router.resumeToken(id), id, ...(key !== null ? { key } : {}) })], 1);
  for (const s of p.peers) {
    const w = new Wire();
    wires.push(w);
    if (s.kind === 'agent') {
      const [f] = await register(w, s.id, s.key);
      assert.equal(Buffer.from(codec.decodeRegistered(f!, 0, f!.length).id), s.id, `${s.name} has the plan's ID`);
    } else if (s.kind === 'anonymous') {
      await open(w, [encodePreamble(PROTOCOL_VERSION), ...codec.encodeRegister({ anonymous: true })], 1);
    } else {
      // The peer router dials: LINK_HELLO, LINK_CHALLENGE, LINK_AUTH, LINK_READY. [P-10.2]
      const nonce = linkNonce();
      const [ch] = await open(w, [encodePreamble(PROTOCOL_VERSION), ...encodeLinkHello(codec, s.peerRouter, nonce, s.peerMaxFrame)], 1);
      const hello = readLinkHello(codec, ch!, 0, ch!.length, true);
      w.send(Buffer.concat(encodeLinkAuth(codec, dialProof(Buffer.from(SECRET), hello.nonce, nonce, OPTS.routerId, s.peerRouter))));
      await settle(router, 0);
      assert.is(w.take()[0]?.[4], FrameType.LINK_READY, `${s.name} is up`);
    }
  }
  const parked = new Wire();
  await register(parked, p.parked, p.parkedKey);
  // Close the restart window (unknown IDs must be unknown, not held), then lose the parked agent.
  clock.advance(GRACE + 1);
  parked.stream.push(null);
  await settle(router, 0);
  assert.is(router.queues().parked, 1, 'one parked agent');
  for (const w of wires) w.take();

  const want = p.want.map((b) => frames(b));
  const got: Buffer[][] = p.peers.map(() => []);
  const offsets = p.peers.map(() => 0);
  for (const s of p.steps) {
    // The model's placeholders in this chunk become the real handles learnt so far.
    const chunk = Buffer.from(s.bytes);
    const off = offsets[s.peer]!;
    for (const { at, handle } of p.patches[s.peer]!) {
      const real = handles.real(handle);
      if (real === undefined || at + 16 <= off || at >= off + chunk.length) continue;
      real.copy(chunk, Math.max(0, at - off), Math.max(0, off - at), Math.min(16, off + chunk.length - at));
    }
    offsets[s.peer] = off + chunk.length;
    const before = router.stats.bytesIn;
    wires[s.peer]!.send(chunk);
    await settle(router, before + chunk.length);
    for (let i = 0; i < wires.length; i++) {
      for (const f of wires[i]!.take()) {
        const k = got[i]!.push(f) - 1;
        if (want[i]![k] !== undefined) handles.learn(f, want[i]![k]!);
      }
    }
  }
  const back = new Wire();
  const [, ...held] = await register(back, p.parked, p.parkedKey);
  await settle(router, 0);
  held.push(...back.take());
  for (const w of [...wires, back]) w.stream.destroy();
  await router.close();
  return { got, held };
}

/** Frames in `b`, each a view. */
function frames(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < b.length; ) {
    const n = b.readUInt32BE(o) + 4;
    out.push(b.subarray(o, o + n));
    o += n;
  }
  return out;
}

// ---- comparison ----------------------------------------------------------------------

function describe(f: Buffer | undefined): string {
  if (f === undefined) return 'nothing';
  const type = FRAME_TYPE_NAMES[f[4]!] ?? `0x${f[4]!.toString(16)}`;
  const code = f[4] === FrameType.ERROR || f[4] === FrameType.CLOSE || f[4] === FrameType.ROUTE_ERROR ? ` ${WIRE_CODE_NAMES[f.readUInt16BE(6)]}` : '';
  return `${type}${code} (${f.length} bytes) ${f.subarray(0, 48).toString('hex')}`;
}

/** Real reply handles against the model's placeholders: one to one, across a whole run, never an agent's ID. */
class Handles {
  private readonly toModel = new Map<string, string>();
  private readonly toReal = new Map<string, Buffer>();

  constructor(private readonly ids: ReadonlySet<string>) {}

  /** The real handle the model's `placeholder` stands for, once seen. */
  real(placeholder: Buffer): Buffer | undefined {
    return this.toReal.get(placeholder.toString('hex'));
  }

  /** Records the handles `got` carries where `want` has placeholders (same type and size only). */
  learn(got: Buffer, want: Buffer): void {
    if (got[4] !== want[4] || got.length !== want.length) return;
    for (const at of placeholders(want)) {
      const h = got.subarray(at, at + 16);
      const hex = h.toString('hex');
      const mh = want.subarray(at, at + 16).toString('hex');
      if (this.ids.has(hex) || h.readUInt32BE(0) !== OPTS.routerId) continue;
      if (this.toModel.has(hex) || this.toReal.has(mh)) continue;
      this.toModel.set(hex, mh);
      this.toReal.set(mh, Buffer.from(h));
    }
  }

  /** `got` with each real handle that corresponds to `want`'s placeholder replaced by it. */
  normalize(got: Buffer, want: Buffer): Buffer {
    if (got[4] !== want[4] || got.length !== want.length) return got;
    let out = got;
    for (const at of placeholders(want)) {
      const mh = want.subarray(at, at + 16).toString('hex');
      if (this.toModel.get(got.subarray(at, at + 16).toString('hex')) !== mh) continue;
      if (out === got) out = Buffer.from(got);
      want.copy(out, at, at, at + 16);
    }
    return out;
  }
}

function compare(what: string, g: Buffer[], w: Buffer[], handles: Handles): void {
  for (let i = 0; i < Math.max(g.length, w.length); i++) {
    const y = w[i];
    // Handles seen first here (held messages, say) are learnt here: still one to one.
    if (g[i] !== undefined && y !== undefined) handles.learn(g[i]!, y);
    const x = g[i] !== undefined && y !== undefined ? handles.normalize(g[i]!, y) : g[i];
    if (x === undefined || y === undefined || !x.equals(y)) {
      if (process.env['RELAY_MODEL_VERBOSE'] !== undefined) {
        for (let j = Math.max(0, i - 6); j < Math.max(g.length, w.length); j++) console.log(`${j} got  ${describe(g[j])}\n${j} want ${describe(w[j])}`);
      }
      assert.unreachable(`${what}: frame ${i} of ${w.length}: got ${describe(x)}, want ${describe(y)}`);
    }
  }
}

/** What a run's expected bytes exercise, summed over seeds, so the mix cannot quietly go thin. */
const seen = new Map<string, number>();
function tally(p: Plan): void {
  const add = (k: string): void => void seen.set(k, (seen.get(k) ?? 0) + 1);
  for (const b of p.want) {
    for (const f of frames(b)) {
      const t = FRAME_TYPE_NAMES[f[4]!]!;
      add(t);
      if (f[4] === FrameType.ERROR || f[4] === FrameType.CLOSE || f[4] === FrameType.ROUTE_ERROR) add(`${t} ${WIRE_CODE_NAMES[f.readUInt16BE(6)]}`);
      if (f[4] === FrameType.DELIVER) add(`DELIVER flags ${f[5]}`);
    }
  }
  if (p.held.length > 0) add('held');
  if (p.toHandles > 0) add('to a reply handle');
}

async function check(seed: number, steps: number): Promise<void> {
  const p = plan(seed, steps);
  tally(p);
  for (const fast of [true, false]) {
    const handles = new Handles(new Set([...p.peers.map((x) => x.id.toString('hex')), p.parked.toString('hex')]));
    const { got, held } = await replay(p, fast, handles);
    const mode = `seed ${seed}, fast path ${fast ? 'on' : 'off'}`;
    const failures: string[] = [];
    for (let i = 0; i < p.peers.length; i++) {
      try {
        compare(`${mode}, ${p.peers[i]!.name}`, got[i]!, frames(p.want[i]!), handles);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    // Every peer that differs, so one look shows cause and effect.
    if (failures.length > 0) assert.unreachable(failures.join('\n'));
    compare(`${mode}, parked agent on resuming`, held, frames(p.held), handles);
  }
}

const FIXED = Array.from({ length: 16 }, (_, i) => i + 1);

T('the real router writes what the reference model writes, fast path on and off (fixed seeds)', async () => {
  for (const seed of FIXED) await check(seed, STEPS);
  // The fixed seeds reach every outcome the model knows.
  for (const k of [
    'DELIVER flags 0',
    'DELIVER flags 1',
    'DELIVER flags 4',
    'DELIVER flags 5',
    'SEND',
    'SOURCE',
    'PING',
    'PONG',
    'LOOKUP',
    'LOOKUP_RESULT',
    'held',
    'to a reply handle',
    'ERROR DESTINATION_SLOW',
    'ERROR NOT_DELIVERED',
    'ERROR UNKNOWN_DESTINATION',
    'ERROR UNSUPPORTED_FLAGS',
    'ERROR UNREACHABLE_ROUTER',
    'ERROR MESSAGE_TOO_LARGE',
    'ERROR DESTINATION_SLOW',
    'ERROR NO_KEY',
    'ROUTE_ERROR UNKNOWN_DESTINATION',
    'ROUTE_ERROR HOP_LIMIT',
    'ROUTE_ERROR MESSAGE_TOO_LARGE',
    'ROUTE_ERROR UNSUPPORTED_FLAGS',
    'ROUTE_ERROR UNREACHABLE_ROUTER',
    'CLOSE MALFORMED',
    'CLOSE FRAME_TOO_LARGE',
    'CLOSE UNKNOWN_FRAME',
  ]) {
    assert.ok((seen.get(k) ?? 0) > 0, `the fixed seeds produce ${k}`);
  }
});

const extra = Number(process.env['RELAY_MODEL_SEEDS'] ?? 0);
if (extra > 0) {
  T(`the same for ${extra} random seeds`, async () => {
    const base = (Date.now() * 2654435761) >>> 0;
    for (let i = 0; i < extra; i++) await check((base + i) >>> 0, STEPS);
  });
}

T.run();
