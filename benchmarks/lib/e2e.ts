import { performance } from 'node:perf_hooks';
import { connect as natsConnect, type NatsConnection } from 'nats';
import mqtt from 'mqtt';
import { connect, generateKeyPair, type Agent } from '../../src/index.js';
import { cryptoBackend, setCryptoBackend } from '../../src/crypto/backend.js';
import { cpuMsOf, sleep } from './proc.js';

/**
 * End-to-end load: program to program through one server, with each system's own client
 * library on both sides, in this process. What a user sees, as opposed to the raw load
 * generator of `load.ts` (which speaks the wire protocol itself and is the ceiling).
 *
 * K pairs; sender i sends to receiver i as fast as its library lets it (postern: until
 * `writable` goes false, then `'drain'`), with at most `windowBytes` sent and not yet
 * received (so a run drains quickly and no queue grows without bound). Payload: sender index
 * (u32 LE), sequence number (u32 LE), padding; every message is sequence-checked.
 *
 * @module
 */

/** Which client library, and how it is used. */
export type E2ESystem =
  /** postern agents, receiving with the `'message'` event. */
  | 'postern'
  /** postern agents, receiving with `for await (const m of agent)`. */
  | 'postern-iter'
  /** postern, sealed with `seal: { publicKey }`, no sender proof (anonymous envelope). */
  | 'sealed-anon'
  /** postern, sealed with the sender proof (both agents have key pairs), verified via the directory. */
  | 'sealed-proof'
  /** The two sealed forms with the portable crypto backend (tweetnacl + node:crypto), as before sodium-native. */
  | 'sealed-anon-portable'
  | 'sealed-proof-portable'
  /** nats.js through nats-server, subscription callback. */
  | 'natsjs'
  /** mqtt.js through mosquitto, QoS 0. */
  | 'mqttjs';

/** One end-to-end cell. */
export interface E2ESpec {
  system: E2ESystem;
  host: string;
  port: number;
  size: number;
  k: number;
  warmupMs: number;
  durationMs: number;
  /** Server pid for its CPU over the window. */
  serverPid?: number;
  /** Bytes one sender may have in flight. Default min(1 MiB, 16 MiB / K), at least 128 KiB. */
  windowBytes?: number;
}

/** What one end-to-end run measured. */
export interface E2EResult {
  msgsPerSec: number;
  mbPerSec: number;
  sent: number;
  received: number;
  outOfOrder: number;
  lost: number;
  inOrder: boolean;
  serverCpu: number;
  clientCpu: number;
  errors: string[];
}

/** A sender as the driver sees it. */
interface Sender {
  /** Sends one message; false when the library asks the caller to wait for `onDrain`. */
  send(payload: Buffer): boolean;
  onDrain(cb: () => void): void;
  /**
   * Resolves once everything sent so far was taken by the server or refused (postern:
   * `flush()`, whose refusals arrive as `'undeliverable'` first). Absent: nothing to wait for.
   */
  settle?(): Promise<void>;
}

interface Opened {
  senders: Sender[];
  close(): Promise<void>;
}

/**
 * How long the drain after the window waits without a single message arriving before it
 * calls the rest lost. A late message is not a lost one: on a machine shared with test
 * suites a process can be off the CPU for seconds, and a stall of 3 s was enough to fail
 * `bench --quick`. A message that is really lost never arrives, so waiting longer costs
 * time only in a run that fails anyway, and its reason (a refusal, a rejected envelope, a
 * dropped connection) is reported beside the count.
 */
const DRAIN_STALL_MS = 10_000;

/** Called with each received payload, or with an error text for a message that is wrong in itself. */
type OnMessage = (data: Uint8Array | string) => void;

/** Called with what a library reported about messages it did not deliver (a refusal, a rejected envelope, a lost connection). */
type OnProblem = (text: string, oneMessage?: boolean) => void;

/** Most messages one sender writes per event-loop turn before yielding. */
const PER_TURN = 4096;

/** Runs one cell and returns its figures; the clients are closed before it resolves. */
export async function runE2E(spec: E2ESpec): Promise<E2EResult> {
  const { k, size } = spec;
  const windowBytes = spec.windowBytes ?? Math.max(128 * 1024, Math.min(1 << 20, (16 << 20) / k));
  // Sealed messages go at a few thousand a second: a window in bytes would take minutes to drain.
  const sealed = spec.system.startsWith('sealed');
  const windowMsgs = Math.max(2, Math.min(sealed ? 256 : Infinity, Math.floor(windowBytes / Math.max(size, 64))));
  const sent = new Array<number>(k).fill(0);
  const expected = new Array<number>(k).fill(0);
  const waiting = new Array<boolean>(k).fill(false);
  const errors: string[] = [];
  let received = 0;
  let outOfOrder = 0;
  let running = true;
  let inWindow = false;
  let windowCount = 0;
  const pumpers: Array<() => void> = [];

  const onMessage = (data: Uint8Array | string): void => {
    if (typeof data === 'string') {
      outOfOrder++;
      if (errors.length < 3) errors.push(data);
      return;
    }
    if (data.length !== size) {
      outOfOrder++;
      if (errors.length < 3) errors.push(`a message of ${data.length} bytes, expected ${size}`);
      return;
    }
    // Byte reads: a DataView per message would cost more than some libraries' whole receive path.
    const idx = (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
    const seq = (data[4]! | (data[5]! << 8) | (data[6]! << 16) | (data[7]! << 24)) >>> 0;
    if (idx >= k || seq !== expected[idx]) {
      outOfOrder++;
      if (idx < k) expected[idx] = seq + 1;
    } else expected[idx] = seq + 1;
    received++;
    if (inWindow) windowCount++;
    if (idx < k && waiting[idx] && sent[idx]! - expected[idx]! <= windowMsgs / 2) {
      waiting[idx] = false;
      pumpers[idx]!();
    }
  };

  const backend = cryptoBackend();
  if (spec.system.endsWith('-portable')) setCryptoBackend('portable');
  let problems = 0;
  let accounted = 0; // messages the library said it will not deliver: no use waiting for them
  let closing = false;
  const onProblem: OnProblem = (text, oneMessage = false) => {
    if (closing) return; // our own close() is not a problem
    problems++;
    if (oneMessage) accounted++;
    if (errors.length < 3) errors.push(text);
  };
  let opened: Opened;
  try {
    opened = await open(spec, onMessage, onProblem);
  } catch (err) {
    setCryptoBackend(backend);
    throw err;
  }
  const pump = (i: number, s: Sender): void => {
    let n = 0;
    while (running) {
      if (sent[i]! - expected[i]! >= windowMsgs) {
        waiting[i] = true;
        return;
      }
      if (n++ >= PER_TURN) {
        setImmediate(pumpers[i]!);
        return;
      }
      const p = Buffer.allocUnsafe(size);
      p.writeUInt32LE(i, 0);
      p.writeUInt32LE(sent[i]!, 4);
      let ok: boolean;
      try {
        ok = s.send(p);
      } catch (err) {
        // Not sent, so not counted; the sender stops, and the run is reported with the code.
        onProblem(`send threw ${(err as { code?: string }).code ?? (err as Error).message}`);
        return;
      }
      sent[i]!++;
      if (!ok) return; // onDrain calls pump again
    }
  };
  opened.senders.forEach((s, i) => {
    pumpers[i] = () => pump(i, s);
    s.onDrain(pumpers[i]!);
  });
  for (const p of pumpers) p();
  await sleep(spec.warmupMs);
  const cpu0 = process.cpuUsage();
  const srv0 = spec.serverPid === undefined ? NaN : cpuMsOf(spec.serverPid);
  windowCount = 0;
  inWindow = true;
  const t0 = performance.now();
  await sleep(spec.durationMs);
  inWindow = false;
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const srv1 = spec.serverPid === undefined ? NaN : cpuMsOf(spec.serverPid);
  const count = windowCount;
  running = false;
  // Drain: everything sent must arrive. First every sender's SENDs are routed or refused
  // (refusals are reported through onProblem), then the receivers catch up; the wait gives
  // up only after DRAIN_STALL_MS without a message.
  const total = (): number => sent.reduce((a, b) => a + b, 0);
  let cap: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(opened.senders.map((s) => s.settle?.())),
    new Promise((resolve) => (cap = setTimeout(resolve, DRAIN_STALL_MS))),
  ]);
  clearTimeout(cap);
  let last = received;
  let stalledSince = performance.now();
  while (received + accounted < total() && performance.now() - stalledSince < DRAIN_STALL_MS) {
    await sleep(10);
    if (received !== last) {
      last = received;
      stalledSince = performance.now();
    }
  }
  closing = true;
  await opened.close();
  setCryptoBackend(backend);
  const all = total();
  return {
    msgsPerSec: count / secs,
    mbPerSec: (count * size) / secs / 1e6,
    sent: all,
    received,
    outOfOrder,
    lost: all - received,
    inOrder: outOfOrder === 0 && received === all && problems === 0,
    serverCpu: ((srv1 - srv0) / (secs * 1000)) * 100,
    clientCpu: ((cpu.user + cpu.system) / 1000 / (secs * 1000)) * 100,
    errors,
  };
}

function open(spec: E2ESpec, onMessage: OnMessage, onProblem: OnProblem): Promise<Opened> {
  switch (spec.system) {
    case 'natsjs':
      return openNats(spec, onMessage);
    case 'mqttjs':
      return openMqtt(spec, onMessage);
    default:
      return openPostern(spec, onMessage, onProblem);
  }
}

async function openPostern(spec: E2ESpec, onMessage: OnMessage, onProblem: OnProblem): Promise<Opened> {
  const router = { host: spec.host, port: spec.port };
  const sealed = spec.system.startsWith('sealed');
  const proof = spec.system.startsWith('sealed-proof');
  const agents: Agent[] = [];
  const senders: Sender[] = [];
  for (let i = 0; i < spec.k; i++) {
    const rkp = sealed ? generateKeyPair() : undefined;
    const skp = proof ? generateKeyPair() : undefined;
    const tx = await connect({ router, reconnect: false, keyPair: skp });
    // The sender's key is pinned: a flood of messages would outrun the directory lookup of
    // the first (past maxQueue waiting messages the check gives up, 'lookup-failed').
    const trustedKeys = skp === undefined ? undefined : { [tx.id]: skp.publicKey };
    const rx = await connect({ router, reconnect: false, keyPair: rkp, trustedKeys });
    agents.push(rx, tx);
    // Whatever the library says about a message it did not deliver is part of the result.
    tx.on('undeliverable', (e) => onProblem(`undeliverable: ${e.code}`, true));
    rx.on('rejected', (r) => onProblem(`rejected envelope: ${r.error.code}`, true));
    for (const a of [tx, rx]) {
      a.on('status', (st) => {
        if (st.type === 'disconnected' || (st.type === 'closed' && st.error !== undefined)) onProblem(`${a === tx ? 'sender' : 'receiver'} ${st.type}: ${st.error?.code}`);
      });
    }
    if (spec.system === 'postern-iter') {
      void (async () => {
        for await (const m of rx) onMessage(m.data);
      })();
    } else {
      rx.on('message', (m) => {
        if (sealed && m.sealed !== true) onMessage('a sealed message arrived unsealed');
        else if (proof && m.verification !== 'pinned') onMessage(`sender not verified: ${m.verification}`);
        else onMessage(m.data);
      });
    }
    const to = rx.idBytes;
    const opts = sealed ? { seal: { publicKey: rkp!.publicKey }, prove: proof } : undefined;
    senders.push({
      send: (p) => {
        tx.send(to, p, opts);
        return tx.writable;
      },
      onDrain: (cb) => tx.on('drain', cb),
      settle: () => tx.flush(),
    });
  }
  return { senders, close: async () => void (await Promise.all(agents.map((a) => a.close()))) };
}

async function openNats(spec: E2ESpec, onMessage: OnMessage): Promise<Opened> {
  const conns: NatsConnection[] = [];
  const senders: Sender[] = [];
  const servers = `${spec.host}:${spec.port}`;
  for (let i = 0; i < spec.k; i++) {
    const rx = await natsConnect({ servers });
    const tx = await natsConnect({ servers });
    conns.push(rx, tx);
    const subject = `e2e.${i}`;
    rx.subscribe(subject, { callback: (_err, m) => onMessage(m.data) });
    await rx.flush();
    senders.push({
      send: (p) => {
        tx.publish(subject, p);
        return true;
      },
      onDrain: () => {},
    });
  }
  return { senders, close: async () => void (await Promise.all(conns.map((c) => c.close()))) };
}

async function openMqtt(spec: E2ESpec, onMessage: OnMessage): Promise<Opened> {
  const clients: mqtt.MqttClient[] = [];
  const senders: Sender[] = [];
  const url = `mqtt://${spec.host}:${spec.port}`;
  for (let i = 0; i < spec.k; i++) {
    const rx = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
    const tx = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
    clients.push(rx, tx);
    const topic = `e2e/${i}`;
    rx.on('message', (_t, payload) => onMessage(payload));
    await rx.subscribeAsync(topic, { qos: 0 });
    senders.push({
      send: (p) => {
        tx.publish(topic, p, { qos: 0 });
        return true;
      },
      onDrain: () => {},
    });
  }
  return { senders, close: async () => void (await Promise.all(clients.map((c) => c.endAsync(true)))) };
}

/** The speed of the sealing primitives of the active crypto backend, in this process. */
export interface PrimitiveSpeed {
  backend: string;
  /** X25519 with a variable base (opening; the agreement when sealing), per second. */
  x25519PerSec: number;
  /** X25519 with the fixed base (a fresh ephemeral key), per second. */
  x25519BasePerSec: number;
  /** XSalsa20-Poly1305 over 64 KiB, MB/s (10^6 B). */
  secretboxMBps: number;
  /**
   * Sealed messages per second that X25519 alone allows one core that both seals and opens:
   * each message costs 1 fixed-base and 2 variable-base operations (seal: the ephemeral key
   * and the agreement; open: the agreement; the sender proof's static key is cached). The
   * bound of the sealed 256 B row, which runs sender and receiver in one process.
   */
  sealedBoundPerSec: number;
}

/**
 * Measures {@link PrimitiveSpeed} for each backend, in short windows that alternate between
 * the backends (medians over `rounds`), so a busy machine's swings hit them alike.
 */
export async function primitiveSpeeds(backends: ReadonlyArray<'native' | 'portable'>, windowMs: number, rounds: number): Promise<PrimitiveSpeed[]> {
  const { x25519, x25519Base } = await import('../../src/crypto/x25519.js');
  const { secretbox } = await import('../../src/crypto/backend.js');
  const before = cryptoBackend();
  const rate = (fn: () => unknown): number => {
    let n = 0;
    const t0 = performance.now();
    let now = t0;
    while (now - t0 < windowMs) {
      fn();
      n++;
      now = performance.now();
    }
    return n / ((now - t0) / 1000);
  };
  const sk = generateKeyPair().secretKey;
  const pk = generateKeyPair().publicKey;
  const m = new Uint8Array(65536);
  const nonce = new Uint8Array(24);
  const key = new Uint8Array(32).fill(1);
  const samples = backends.map(() => ({ x: [] as number[], b: [] as number[], s: [] as number[] }));
  const used: string[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      backends.forEach((b, i) => {
        used[i] = setCryptoBackend(b);
        samples[i]!.x.push(rate(() => x25519(sk, pk, true)));
        samples[i]!.b.push(rate(() => x25519Base(sk)));
        samples[i]!.s.push((rate(() => secretbox(m, nonce, key)) * 65536) / 1e6);
      });
    }
  } finally {
    setCryptoBackend(before);
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  return samples.map((x, i) => {
    const [v, b] = [med(x.x), med(x.b)];
    return { backend: used[i]!, x25519PerSec: v, x25519BasePerSec: b, secretboxMBps: med(x.s), sealedBoundPerSec: 1 / (1 / b + 2 / v) };
  });
}
