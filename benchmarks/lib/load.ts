import { performance } from 'node:perf_hooks';
import type { Conn, Wire } from './wire.js';
import { Histogram, type LatencySummary } from './stats.js';
import { cpuMsOf, sleep } from './proc.js';

/**
 * The load generator. K sender and K receiver connections; senders write pre-built batches
 * of frames as fast as their sockets take them (or at a fixed offered rate), receivers
 * sequence-check every message.
 *
 * Payload layout (little-endian, at least 16 bytes):
 *   [0..4)  index of the sender
 *   [4..8)  sequence number of this message on its sender→receiver stream (0, 1, 2, ...)
 *   [8..16) send time, `performance.now()` in ms (latency runs only; sender and receiver
 *           share this process, so it is one time base)
 *   [16..)  padding
 */

/** *pairs*: sender i → receiver i. *spray*: each sender round-robin over every receiver. */
export type Pattern = 'pairs' | 'spray';

/** Smallest payload: sender index, sequence number, timestamp. */
export const MIN_PAYLOAD = 16;

/** One cell of the benchmark. */
export interface CellSpec {
  pattern: Pattern;
  /** Payload bytes per message (>= 16). */
  size: number;
  /** Senders, and as many receivers. */
  k: number;
  /** Ms of traffic before the measured window. */
  warmupMs: number;
  /** Ms of the measured window. */
  durationMs: number;
  /** Offered rate in messages/s over all senders; absent: as fast as the sockets take them. */
  rate?: number;
  /** Record one-way latency of every message sent inside the window. */
  latency?: boolean;
  /** pid of the server process, to report its CPU use over the window. */
  serverPid?: number;
  /** Added to the connection indices given to the wire (the plain forwarder pairs sender N with receiver N), so that two cells can share a server. Default 0. */
  indexBase?: number;
  /**
   * When traffic starts, as `performance.timeOrigin + performance.now()` (ms, the same clock
   * in every thread): cells run side by side in two threads start together. Default: as
   * soon as the connections are open.
   */
  startAt?: number;
  /** Local addresses to spread connections over. */
  localAddresses?: string[];
  /** Called about every 250 ms with the current delivery rate (messages/s). */
  progress?: (rate: number) => void;
  /** Bytes of one write (a batch of frames). Default 64 KiB. */
  batchBytes?: number;
  /**
   * Bytes one sender may have written and not yet seen delivered. Bounds what sits in socket
   * buffers and router queues, so a cell ends (drains) quickly. Default min(1 MiB, 16 MiB / K),
   * at least 128 KiB and two batches.
   */
  windowBytes?: number;
  /** Rate mode: least ms between two writes of one sender, so messages go out in small batches rather than one syscall each. Default 0.2. */
  minGapMs?: number;
}

/** What one run of a cell measured. */
export interface CellResult {
  /** Messages delivered per second inside the window. */
  msgsPerSec: number;
  /** Payload megabytes (10^6 bytes) delivered per second inside the window. */
  mbPerSec: number;
  /** Messages the senders wrote over the whole run (warmup and drain included). */
  sent: number;
  /** Messages the receivers got over the whole run. */
  received: number;
  /** Every message arrived, exactly once and in order on its stream. */
  inOrder: boolean;
  /** Messages that arrived out of sequence (duplicated, reordered or after a gap). */
  outOfOrder: number;
  /** Messages written but never delivered. */
  lost: number;
  /** Server CPU over the window, % of one core (NaN when unknown). */
  serverCpu: number;
  /** This generator's CPU over the window, % of one core. */
  genCpu: number;
  /** Latency over the window, µs (latency runs only). */
  latency?: LatencySummary;
  /** Anything unexpected (errors from the server, decoder failures), first few. */
  errors: string[];
}

/**
 * Batch buffers per sender: a buffer is busy until its write completes. At a fixed rate a
 * sender writes what is due at each ~1 ms tick, so it needs enough of them for a tick's
 * worth (with 4 of 16 KiB, K = 4 senders could not offer more than about 5 M msg/s).
 */
const RING = 4;
const RATE_RING = 32;

class Receiver {
  /** Next expected sequence number from each sender. */
  readonly expected: Uint32Array;
  count = 0;
  bad = 0;
  readonly hist: Histogram | null;
  windowStart = Infinity;
  windowEnd = Infinity;

  constructor(
    private readonly k: number,
    private readonly size: number,
    /** Messages delivered from each sender, over all receivers (the senders' window). */
    private readonly delivered: Float64Array,
    latency: boolean,
    private readonly onBad: (what: string) => void,
  ) {
    this.expected = new Uint32Array(k);
    this.hist = latency ? new Histogram() : null;
  }

  /**
   * The fast path: every whole frame of `type` and this cell's size from `off` on, checked
   * like {@link onMessage} with DataView reads (Buffer's read methods validate their
   * arguments on every call). Stops at the first other frame and returns its offset.
   */
  readonly bulk = (chunk: Buffer, dv: DataView, off: number, type: number, head: number): number => {
    const frame = head + this.size;
    const lenField = frame - 4;
    const end = chunk.length;
    const hist = this.hist;
    // One clock read per chunk: its frames were all read at once (a clock read per message
    // cost the generator more than the rest of its receive path).
    const now = hist !== null ? performance.now() : 0;
    let n = 0;
    while (end - off >= frame && dv.getUint32(off) === lenField && chunk[off + 4] === type) {
      const p = off + head;
      this.check(dv.getUint32(p, true), dv.getUint32(p + 4, true), true);
      n++;
      if (hist !== null) {
        const ts = dv.getFloat64(p + 8, true);
        if (ts >= this.windowStart && ts < this.windowEnd) hist.record((now - ts) * 1000);
      }
      off += frame;
    }
    this.count += n;
    return off;
  };

  /** Sequence check of one message from sender `s` with sequence number `q` (`sized`: its length is the cell's). */
  private check(s: number, q: number, sized: boolean): void {
    if (s < this.k && q === this.expected[s] && sized) {
      this.expected[s] = q + 1;
      this.delivered[s]++;
      return;
    }
    this.bad++;
    if (this.bad <= 3) this.onBad(`out of order: sender ${s} seq ${q} expected ${this.expected[s] ?? '?'}${sized ? '' : ', wrong length'}`);
    if (s < this.k) {
      this.expected[s] = q + 1;
      this.delivered[s]++;
    }
  }

  readonly onMessage = (buf: Buffer, off: number, len: number): void => {
    this.count++;
    this.check(buf.readUInt32LE(off), buf.readUInt32LE(off + 4), len === this.size);
    if (this.hist !== null) {
      const ts = buf.readDoubleLE(off + 8);
      if (ts >= this.windowStart && ts < this.windowEnd) this.hist.record((performance.now() - ts) * 1000);
    }
  };
}

class Sender {
  /** Sequence number of the next message to each receiver. */
  readonly seqTo: Uint32Array;
  sent = 0;
  running = true;
  /** Waiting for deliveries to reopen the window. */
  stalled = false;
  private readonly window: number;
  private readonly ring: Buffer[] = [];
  private readonly views: DataView[] = [];
  private readonly busy: Uint8Array;
  private readonly ringSize: number;
  private readonly done: Array<() => void> = [];
  private next = 0;
  private waitDrain = false;
  private readonly frame: number;
  private readonly head: number;
  private readonly batch: number;
  /** Destination of each slot when the template repeats every batch (else -1). */
  private readonly slotDest: Int32Array | null;
  private rr: number;
  /** Messages/ms this sender may send (rate mode), and when it started. */
  private perMs = 0;
  private t0 = 0;
  private lastWrite = -Infinity;
  private readonly minGap: number;

  constructor(
    private readonly index: number,
    private readonly conn: Conn,
    private readonly wire: Wire,
    private readonly dests: Buffer[],
    private readonly spec: CellSpec,
    private readonly delivered: Float64Array,
  ) {
    const k = dests.length;
    this.minGap = spec.minGapMs ?? 0.2;
    this.seqTo = new Uint32Array(k);
    this.head = wire.head(spec.size);
    this.frame = this.head + spec.size + wire.tail;
    let batch = Math.max(1, Math.floor((spec.batchBytes ?? 65536) / this.frame));
    this.rr = index % k;
    const spray = spec.pattern === 'spray' && k > 1;
    // A spray template can be written once when a batch covers whole rounds of receivers
    // and stays small; otherwise each message's destination is rewritten as it is sent.
    let periodic = !spray;
    if (spray) {
      const rounded = Math.ceil(batch / k) * k;
      if (rounded * this.frame <= 4 * (spec.batchBytes ?? 65536)) {
        batch = rounded;
        periodic = true;
      }
    }
    this.batch = batch;
    const wb = spec.windowBytes ?? Math.max(128 * 1024, Math.min(1 << 20, (16 << 20) / k));
    this.window = Math.max(2 * batch, Math.floor(wb / this.frame));
    this.slotDest = periodic ? new Int32Array(batch) : null;
    this.ringSize = spec.rate !== undefined ? RATE_RING : RING;
    this.busy = new Uint8Array(this.ringSize);
    for (let r = 0; r < this.ringSize; r++) {
      const b = Buffer.alloc(batch * this.frame);
      for (let j = 0; j < batch; j++) {
        const d = spray ? (index + j) % k : index;
        if (this.slotDest !== null) this.slotDest[j] = d;
        const off = j * this.frame;
        wire.writeFrame(b, off, dests[d]!, spec.size);
        b.writeUInt32LE(index, off + this.head);
      }
      this.ring.push(b);
      this.views.push(new DataView(b.buffer, b.byteOffset, b.length));
      this.done.push(() => {
        this.busy[r] = 0;
        if (!this.waitDrain) this.pump();
      });
    }
    conn.sock.on('drain', () => {
      this.waitDrain = false;
      this.pump();
    });
  }

  /** Starts rate mode: `rate` messages/s from now on. */
  startRate(rate: number, t0: number): void {
    this.perMs = rate / 1000;
    this.t0 = t0;
  }

  /** Writes batches until the socket pushes back, the ring is full or the rate is met. */
  pump(): void {
    const latency = this.spec.latency === true;
    const sock = this.conn.sock;
    // The gap is between pump calls, not between the batches of one call: one call may
    // write several batches when a rate is due.
    if (this.perMs > 0 && performance.now() - this.lastWrite < this.minGap) return;
    while (this.running && !this.waitDrain) {
      let n = this.batch;
      let now = 0;
      if (this.perMs > 0 || latency) now = performance.now();
      if (this.perMs > 0) {
        const due = Math.floor((now - this.t0) * this.perMs) - this.sent;
        if (due <= 0) return;
        if (due < n) n = due;
      }
      if (this.sent - this.delivered[this.index]! + n > this.window) {
        this.stalled = true;
        return;
      }
      const i = this.next;
      if (this.busy[i] === 1) return;
      const b = this.ring[i]!;
      const dv = this.views[i]!;
      const fs = this.frame;
      let p = this.head;
      const seqTo = this.seqTo;
      if (this.slotDest === null) {
        // Rotating destinations, rewritten per message.
        const k = this.dests.length;
        for (let j = 0; j < n; j++, p += fs) {
          const d = this.rr;
          this.rr = d + 1 === k ? 0 : d + 1;
          this.wire.setDest(b, p - this.head, this.dests[d]!);
          dv.setUint32(p + 4, seqTo[d]!++, true);
          if (latency) dv.setFloat64(p + 8, now, true);
        }
      } else if (this.spec.pattern === 'pairs') {
        let q = seqTo[this.index]!;
        for (let j = 0; j < n; j++, p += fs) {
          dv.setUint32(p + 4, q++, true);
          if (latency) dv.setFloat64(p + 8, now, true);
        }
        seqTo[this.index] = q;
      } else {
        const sd = this.slotDest;
        for (let j = 0; j < n; j++, p += fs) {
          dv.setUint32(p + 4, seqTo[sd[j]!]!++, true);
          if (latency) dv.setFloat64(p + 8, now, true);
        }
      }
      this.busy[i] = 1;
      this.lastWrite = now;
      this.next = i + 1 === this.ringSize ? 0 : i + 1;
      this.sent += n;
      const ok = sock.write(n === this.batch ? b : b.subarray(0, n * fs), this.done[i]);
      if (!ok) this.waitDrain = true;
    }
  }
}

async function mapLimit<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return out;
}

/** Runs one cell against `wire` and reports what arrived. */
export async function runCell(wire: Wire, spec: CellSpec): Promise<CellResult> {
  if (spec.size < MIN_PAYLOAD) throw new Error(`payload must be at least ${MIN_PAYLOAD} bytes`);
  if (spec.pattern === 'spray' && !wire.routes) throw new Error(`${wire.name} cannot route, so it has no spray pattern`);
  const { k } = spec;
  const errors: string[] = [];
  const onError = (what: string): void => {
    if (errors.length < 10) errors.push(what);
  };
  const la = (i: number): string | undefined => (spec.localAddresses === undefined ? undefined : spec.localAddresses[i % spec.localAddresses.length]);
  const delivered = new Float64Array(k);
  const receivers = Array.from({ length: k }, () => new Receiver(k, spec.size, delivered, spec.latency === true, onError));
  const base = spec.indexBase ?? 0;
  const rconns = await mapLimit(k, 64, (i) => wire.openReceiver(base + i, receivers[i]!.onMessage, onError, la(i), receivers[i]!.bulk));
  const dests = rconns.map((c) => c.dest);
  const sconns = await mapLimit(k, 64, (i) => wire.openSender(base + i, onError, la(k + i)));
  const senders = sconns.map((c, i) => new Sender(i, c, wire, dests, spec, delivered));
  if (spec.startAt !== undefined) {
    const wait = spec.startAt - (performance.timeOrigin + performance.now());
    if (wait > 0) await sleep(wait);
  }
  const received = (): number => {
    let n = 0;
    for (const r of receivers) n += r.count;
    return n;
  };
  const sentTotal = (): number => {
    let n = 0;
    for (const s of senders) n += s.sent;
    return n;
  };

  // Rate mode: a 1 ms timer tops every sender up to its due. Messages are stamped when
  // written, so the tick's granularity batches them without adding to their latency, and
  // the generator does not spin a core the servers may need.
  let ticking = false;
  const start = performance.now();
  if (spec.rate !== undefined) {
    ticking = true;
    for (const s of senders) s.startRate(spec.rate / k, start);
    const tick = (): void => {
      if (!ticking) return;
      for (const s of senders) s.pump();
      setTimeout(tick, 1);
    };
    setTimeout(tick, 1);
  } else {
    for (const s of senders) s.pump();
    // Senders that ran out of window resume as deliveries come in.
    ticking = true;
    const tick = (): void => {
      if (!ticking) return;
      for (const s of senders) {
        if (s.stalled) {
          s.stalled = false;
          s.pump();
        }
      }
      setTimeout(tick, 1);
    };
    setTimeout(tick, 1);
  }

  await sleep(spec.warmupMs);
  const tA = performance.now();
  for (const r of receivers) r.windowStart = tA;
  const rA = received();
  const cpuA = process.cpuUsage();
  const sA = spec.serverPid !== undefined ? cpuMsOf(spec.serverPid) : NaN;
  let last = rA;
  let lastT = tA;
  const endAt = tA + spec.durationMs;
  while (performance.now() < endAt) {
    await sleep(Math.min(250, Math.max(1, endAt - performance.now())));
    const now = performance.now();
    const r = received();
    spec.progress?.(((r - last) * 1000) / (now - lastT));
    last = r;
    lastT = now;
  }
  const tB = performance.now();
  const rB = received();
  const cpuB = process.cpuUsage(cpuA);
  const sB = spec.serverPid !== undefined ? cpuMsOf(spec.serverPid) : NaN;
  for (const r of receivers) r.windowEnd = tB;
  ticking = false;
  for (const s of senders) s.running = false;

  // Drain: everything written must arrive. Give up only when nothing moves for 5 s.
  const sent = sentTotal();
  let prev = -1;
  let still = performance.now();
  for (;;) {
    const r = received();
    if (r >= sent) break;
    if (r !== prev) {
      prev = r;
      still = performance.now();
    } else if (performance.now() - still > 5000) break;
    await sleep(5);
  }
  const got = received();

  let outOfOrder = 0;
  let lost = 0;
  for (const r of receivers) outOfOrder += r.bad;
  for (let s = 0; s < k; s++) {
    for (let r = 0; r < k; r++) {
      const want = senders[s]!.seqTo[r]!;
      const have = receivers[r]!.expected[s]!;
      if (have < want) lost += want - have;
    }
  }
  if (lost > 0) onError(`${lost} of ${sent} messages never arrived`);

  for (const c of [...sconns, ...rconns]) c.close();
  await sleep(20);
  for (const c of [...sconns, ...rconns]) c.sock.destroy();

  const secs = (tB - tA) / 1000;
  const msgsPerSec = (rB - rA) / secs;
  let latency: LatencySummary | undefined;
  if (spec.latency === true) {
    const h = new Histogram();
    for (const r of receivers) if (r.hist !== null) h.add(r.hist);
    latency = h.summary();
  }
  return {
    msgsPerSec,
    mbPerSec: (msgsPerSec * spec.size) / 1e6,
    sent,
    received: got,
    inOrder: outOfOrder === 0 && lost === 0 && got === sent,
    outOfOrder,
    lost,
    serverCpu: ((sB - sA) / (tB - tA)) * 100,
    genCpu: ((cpuB.user + cpuB.system) / 1000 / (tB - tA)) * 100,
    ...(latency !== undefined ? { latency } : {}),
    errors,
  };
}
