import { ControlCodec, type RegisteredBody } from '../protocol/control.js';
import { encodeClose, encodeFrame, encodePing, encodePreamble, encodeSend } from '../protocol/encoder.js';
import { Flag, FrameType, WireCode } from '../protocol/frame.js';
import { Probe, type SeenFrame } from './probe.js';
import { describeFrame, makeReport, type CheckResult, type ConformanceReport } from './report.js';

/**
 * Conformance checks of a router, run from outside over TCP: every requirement of
 * PROTOCOL.md a client can observe, by requirement ID. Each check opens its own
 * connections, so one failure does not spoil the next. Requirements that cannot be
 * observed from outside (randomness, what a router logs, limits too large to reach in a
 * test) are reported as such, never as passes. The file is over 500 lines because it is
 * one table of some forty independent checks of a few lines each, in the order of
 * PROTOCOL.md, sharing a handful of helpers; split by section it would scatter them.
 */

/** Options of {@link checkRouter}. */
export interface RouterCheckOptions {
  host: string;
  port: number;
  /** How long to wait for an answer the router owes at once, ms. Default 2000. */
  wait?: number;
  /**
   * Longest timer check to run, ms: the keepalive checks run when the announced keepalive
   * timeout fits, the handshake check when `handshakeTimeout` does. Default 5000.
   */
  timerBudget?: number;
  /** The router's handshake timeout, when known (it is not announced on the wire). */
  handshakeTimeout?: number;
  /** Run only the checks whose ID starts with one of these. */
  only?: string[];
  /**
   * Admission token for a router that requires one (§12.7): every REGISTER carries it, and
   * P-12.7-1 is checked (a REGISTER without it must get ADMISSION_DENIED).
   */
  token?: string;
}

/** A check's failure: why, in a line. */
class Fail extends Error {}
/** A check that cannot run from outside against this router: why. */
class Untestable extends Error {}

interface Ctx {
  host: string;
  port: number;
  wait: number;
  timerBudget: number;
  handshakeTimeout: number | undefined;
  token: string | undefined;
  codec: ControlCodec;
  sent: string[];
  got: string[];
  probes: Probe[];
}

interface Check {
  id: string;
  title: string;
  run(t: Ctx): Promise<void>;
}

const ZERO = Buffer.alloc(16);
const NOT_MAP = Buffer.from([0x90]);

function fail(why: string): never {
  throw new Fail(why);
}

async function dial(t: Ctx): Promise<Probe> {
  const p = await Probe.dial(t.host, t.port, t.wait);
  t.probes.push(p);
  return p;
}

function send(t: Ctx, p: Probe, what: string, ...bufs: Buffer[]): void {
  t.sent.push(what);
  p.write(...bufs);
}

async function next(t: Ctx, p: Probe, types?: number[]): Promise<SeenFrame | null> {
  const f = types === undefined ? await p.next(t.wait) : await p.nextOf(types, t.wait);
  t.got.push(f === null ? (p.ended ? '(connection ended)' : '(nothing)') : describeFrame(f.bytes));
  return f;
}

/** A REGISTER frame with `body` (plus the admission token, when the run has one). */
function reg(body: Record<string, unknown>, t: Ctx): Buffer {
  return Buffer.concat(t.codec.encodeRegister(t.token === undefined ? body : { ...body, token: t.token }));
}

/** A REGISTER frame whose body is the fixmap `hex`, the admission token added as one more key when the run has one. */
function rawReg(hex: string, t: Ctx): Buffer {
  let body = Buffer.from(hex, 'hex');
  if (t.token !== undefined && body.length > 0 && (body[0]! & 0xf0) === 0x80 && body[0]! < 0x8f) {
    const tok = Buffer.from(t.token);
    body = Buffer.concat([Buffer.from([body[0]! + 1]), body.subarray(1), Buffer.from('a5746f6b656ed9', 'hex'), Buffer.from([tok.length]), tok]);
  }
  return frame(FrameType.REGISTER, body);
}

function frame(type: number, body: Buffer | number[], flags = 0): Buffer {
  return Buffer.concat(encodeFrame(type, Buffer.from(body), flags));
}

/** Preamble + REGISTER(body), and the REGISTERED it gets (decoded strictly). */
async function register(t: Ctx, body: Record<string, unknown> = {}): Promise<{ p: Probe; reg: RegisteredBody }> {
  const p = await dial(t);
  send(t, p, `preamble v1, REGISTER ${JSON.stringify(body, (_k, v: unknown) => (v instanceof Uint8Array || (v as { type?: string })?.type === 'Buffer' ? '<bin>' : v))}`, encodePreamble(1), reg(body, t));
  const f = await next(t, p, [FrameType.REGISTERED, FrameType.CLOSE, FrameType.ERROR]);
  if (f === null || f.type !== FrameType.REGISTERED) fail('expected REGISTERED');
  try {
    return { p, reg: t.codec.decodeRegistered(f.bytes, 0, f.bytes.length) };
  } catch (err) {
    fail(`REGISTERED body is invalid: ${(err as Error).message}`);
  }
}

/** The next CLOSE must carry `code`, and the router must then end the TCP connection. [P-9.2] */
async function expectClose(t: Ctx, p: Probe, code: number): Promise<void> {
  const f = await next(t, p, [FrameType.CLOSE]);
  if (f === null) fail(`expected CLOSE(${code}), the router sent none`);
  const got = f.bytes.length >= 8 ? f.bytes.readUInt16BE(6) : -1;
  if (got !== code) fail(`expected CLOSE code ${code}, got ${got}`);
  if (!(await p.until(() => p.ended, t.wait))) fail('the router sent CLOSE but did not end the TCP connection');
}

async function expectError(t: Ctx, p: Probe, code: number, seq: number, id: Buffer): Promise<void> {
  const f = await next(t, p, [FrameType.ERROR, FrameType.CLOSE]);
  if (f === null || f.type !== FrameType.ERROR) fail(`expected ERROR(${code})`);
  const b = f.bytes;
  if (b.length < 28) fail('ERROR shorter than 28 bytes');
  if (b.readUInt16BE(6) !== code) fail(`expected ERROR code ${code}, got ${b.readUInt16BE(6)}`);
  if (b.readUInt32BE(8) !== seq) fail(`expected ERROR seq ${seq}, got ${b.readUInt32BE(8)}`);
  if (!b.subarray(12, 28).equals(id)) fail(`expected ERROR id ${id.toString('hex')}, got ${b.subarray(12, 28).toString('hex')}`);
}

/** PING(payload) gets PONG(payload): the connection is alive and in order. */
async function expectAlive(t: Ctx, p: Probe, payload = Buffer.from('c0ffee', 'hex')): Promise<void> {
  send(t, p, `PING(${payload.toString('hex')})`, encodePing(payload));
  const f = await next(t, p, [FrameType.PONG, FrameType.CLOSE]);
  if (f === null || f.type !== FrameType.PONG) fail('expected the connection to stay open and answer PING with PONG');
  if (!f.bytes.subarray(6).equals(payload)) fail('PONG payload differs from the PING payload');
}

function idOf(routerId: number, fill: number): Buffer {
  const b = Buffer.alloc(16, fill);
  b.writeUInt32BE(routerId, 0);
  return b;
}

/** SEND to `to` from `p`; `p2` must get the DELIVER (returned). */
async function relayed(t: Ctx, p: Probe, to: Buffer, seq: number, payload: Buffer, flags: number, p2: Probe): Promise<SeenFrame> {
  send(t, p, `SEND(to=${to.toString('hex')}, seq=${seq}, flags=${flags}, ${payload.length} bytes)`, ...encodeSend(to, seq, payload, flags));
  const f = await next(t, p2, [FrameType.DELIVER, FrameType.CLOSE]);
  if (f === null || f.type !== FrameType.DELIVER) fail('expected a DELIVER at the destination');
  return f;
}

const CHECKS: Check[] = [
  {
    id: 'P-2.1-1',
    title: 'the router answers the agent preamble with its own preamble (magic, version)',
    async run(t) {
      const p = await dial(t);
      send(t, p, 'preamble v1', encodePreamble(1));
      await p.until(() => p.version !== -1 || p.ended, t.wait);
      t.got.push(p.version === -1 ? '(no preamble)' : `raw ${p.rawHex(8)}`);
      if (p.version === -2) fail('the magic of the router preamble is wrong');
      if (p.version !== 1) fail(`expected version 1, got ${p.version}`);
    },
  },
  {
    id: 'P-2.1-3',
    title: 'frames that follow the preamble in the same TCP segment are accepted',
    async run(t) {
      await register(t);
    },
  },
  {
    id: 'P-2.2-2',
    title: 'a first byte A-Z gets an HTTP 400 naming POSTERN_ERR_BAD_MAGIC, then the connection closes',
    async run(t) {
      const p = await dial(t);
      p.version = -2; // no preamble expected
      send(t, p, '"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      await p.until(() => p.ended, t.wait);
      const text = p.rawText();
      t.got.push(JSON.stringify(text.slice(0, 120)));
      if (!text.startsWith('HTTP/1.1 400 Bad Request\r\n')) fail('the status line is not "HTTP/1.1 400 Bad Request"');
      if (!text.includes('POSTERN_ERR_BAD_MAGIC')) fail('the body does not contain POSTERN_ERR_BAD_MAGIC');
      if (!/\r\nconnection: close\r\n/i.test(text)) fail('no "Connection: close" header');
      if (!p.ended) fail('the connection stayed open');
    },
  },
  {
    id: 'P-2.2-3',
    title: 'a wrong first byte that is not A-Z is rejected at once: preamble, CLOSE(BAD_MAGIC 64)',
    async run(t) {
      const p = await dial(t);
      // One byte (a TLS record's first byte): the router must not wait for more.
      send(t, p, 'one byte 16', Buffer.from([0x16]));
      await p.until(() => p.version !== -1 || p.ended, t.wait);
      if (p.version === -1) fail('no preamble before the CLOSE');
      await expectClose(t, p, WireCode.BAD_MAGIC);
    },
  },
  {
    id: 'P-2.3-1',
    title: 'the router answers a preamble with min(offered, its highest) version',
    async run(t) {
      const p = await dial(t);
      send(t, p, 'preamble v2', encodePreamble(2));
      await p.until(() => p.version !== -1 || p.ended, t.wait);
      t.got.push(`preamble version ${p.version}`);
      if (p.version < 1 || p.version > 2) fail(`offered 2, got ${p.version}`);
    },
  },
  {
    id: 'P-2.3-2',
    title: 'version 0 gets a preamble with the highest version, then CLOSE(UNSUPPORTED_VERSION 65)',
    async run(t) {
      const p = await dial(t);
      send(t, p, 'preamble v0', encodePreamble(0));
      await p.until(() => p.version !== -1 || p.ended, t.wait);
      if (p.version < 1) fail('no valid preamble before the CLOSE');
      await expectClose(t, p, WireCode.UNSUPPORTED_VERSION);
    },
  },
  {
    id: 'P-2.5-1',
    title: 'no registration within the handshake timeout: CLOSE(HANDSHAKE_TIMEOUT 71), never early, at most a sweep period late',
    async run(t) {
      const ht = t.handshakeTimeout;
      if (ht === undefined) throw new Untestable('the handshake timeout is not announced on the wire; pass --handshake-timeout <ms>');
      if (ht * 1.1 > t.timerBudget) throw new Untestable(`handshake timeout ${ht} ms exceeds the timer budget (--timer-budget)`);
      const p = await dial(t);
      const t0 = p.dialledAt; // the router cannot have accepted the connection earlier
      send(t, p, 'preamble v1 (then silence)', encodePreamble(1));
      const f = await p.nextOf([FrameType.CLOSE], ht * 1.1 + 500);
      t.got.push(f === null ? '(nothing)' : `${describeFrame(f.bytes)} after ${Math.round(f.at - t0)} ms`);
      if (f === null || f.bytes.readUInt16BE(6) !== WireCode.HANDSHAKE_TIMEOUT) fail('expected CLOSE(71)');
      if (f.at - t0 < ht - 2) fail(`closed ${Math.round(ht - (f.at - t0))} ms before the deadline`);
      if (f.at - t0 > ht * 1.1 + 250) fail('closed more than one sweep period (a tenth) after the deadline');
    },
  },
  {
    id: 'P-3.2-2',
    title: 'an unknown optional frame type (0x80-0xff) is skipped',
    async run(t) {
      const { p } = await register(t);
      send(t, p, 'frame type 0x80 with 10 body bytes, flags 0xff', frame(0x80, Buffer.alloc(10, 0xee), 0xff));
      await expectAlive(t, p);
    },
  },
  {
    id: 'P-3.2-3',
    title: 'a frame in the wrong direction (REGISTERED, ERROR, DELIVER, DRAIN from an agent) gets CLOSE(MALFORMED 66)',
    async run(t) {
      const bad: [string, Buffer][] = [
        ['REGISTERED', frame(FrameType.REGISTERED, [0x80])],
        ['ERROR', frame(FrameType.ERROR, Buffer.alloc(22))],
        ['DELIVER', frame(FrameType.DELIVER, Buffer.alloc(20))],
        ['DRAIN', frame(FrameType.DRAIN, [0x80])],
      ];
      for (const [name, f] of bad) {
        const { p } = await register(t);
        send(t, p, name, f);
        await expectClose(t, p, WireCode.MALFORMED);
      }
    },
  },
  {
    id: 'P-3.3-2',
    title: 'a frame with length < 2 gets CLOSE(MALFORMED 66)',
    async run(t) {
      const { p } = await register(t);
      send(t, p, 'length 1, type 0x05', Buffer.from([0, 0, 0, 1, 5, 0]));
      await expectClose(t, p, WireCode.MALFORMED);
    },
  },
  {
    id: 'P-3.3-3',
    title: 'a frame over the limit gets CLOSE(FRAME_TOO_LARGE 67) from its header alone, unknown optional types included',
    async run(t) {
      for (const type of [FrameType.SEND, 0x80]) {
        const { p, reg: r } = await register(t);
        const h = Buffer.alloc(6);
        h.writeUInt32BE(r.maxFrame - 3, 0); // total maxFrame + 1
        h[4] = type;
        send(t, p, `a header announcing ${r.maxFrame + 1} bytes of type 0x${type.toString(16)}, no body`, h);
        await expectClose(t, p, WireCode.FRAME_TOO_LARGE);
      }
    },
  },
  {
    id: 'P-3.3-4',
    title: 'an unknown critical frame type gets CLOSE(UNKNOWN_FRAME 68)',
    async run(t) {
      const { p } = await register(t);
      send(t, p, 'type 0x5a', frame(0x5a, []));
      await expectClose(t, p, WireCode.UNKNOWN_FRAME);
    },
  },
  {
    id: 'P-3.3-5',
    title: 'a frame outside its type\'s size bounds (PING of 71 bytes, SEND of 25) gets CLOSE(MALFORMED 66)',
    async run(t) {
      for (const [what, f] of [
        ['PING with 65 payload bytes', frame(FrameType.PING, Buffer.alloc(65))],
        ['SEND of 25 bytes', frame(FrameType.SEND, Buffer.alloc(19))],
      ] as const) {
        const { p } = await register(t);
        send(t, p, what, f);
        await expectClose(t, p, WireCode.MALFORMED);
      }
    },
  },
  {
    id: 'P-4.1-2',
    title: 'a REGISTER body that is not exactly one MessagePack map gets CLOSE(MALFORMED 66)',
    async run(t) {
      for (const [what, body] of [
        ['an array', NOT_MAP],
        ['0xc1', Buffer.from([0xc1])],
        ['a map and a trailing byte', Buffer.from([0x80, 0x00])],
      ] as const) {
        const p = await dial(t);
        send(t, p, `preamble v1, REGISTER with ${what}`, encodePreamble(1), frame(FrameType.REGISTER, body));
        await expectClose(t, p, WireCode.MALFORMED);
      }
    },
  },
  {
    id: 'P-4.1-5',
    title: 'unknown REGISTER keys are ignored whatever their value (string, extension, float, nested map)',
    async run(t) {
      for (const hex of ['a57061737461', 'd40100', 'cb3ff8000000000000', '81a178c3']) {
        const p = await dial(t);
        send(t, p, `preamble v1, REGISTER {zz: ${hex}}`, encodePreamble(1), rawReg('81a27a7a' + hex, t));
        const f = await next(t, p, [FrameType.REGISTERED, FrameType.CLOSE]);
        if (f === null || f.type !== FrameType.REGISTERED) fail(`REGISTER with an unknown key holding ${hex} was not answered with REGISTERED`);
      }
    },
  },
  {
    id: 'P-4.1-6',
    title: 'a MessagePack map with a non-string key gets CLOSE(MALFORMED 66)',
    async run(t) {
      const p = await dial(t);
      send(t, p, 'preamble v1, REGISTER {1: true}', encodePreamble(1), rawReg('8101c3', t));
      await expectClose(t, p, WireCode.MALFORMED);
    },
  },
  {
    id: 'P-4.1-8',
    title: 'before REGISTERED the limit is 4096 bytes: a 4096-byte REGISTER is accepted, 4097 gets CLOSE(FRAME_TOO_LARGE 67)',
    async run(t) {
      // {pad: bin of n}: 6 header + 1 map + 4 key + 3 bin16 header + n (+ the token pair)
      const pad = (n: number): Buffer => rawReg('81a3706164c5' + Buffer.from([n >> 8, n & 0xff]).toString('hex') + '00'.repeat(n), t);
      const extra = pad(0).length - 14;
      const ok = pad(4096 - 14 - extra);
      const p = await dial(t);
      send(t, p, `preamble v1, REGISTER of ${ok.length} bytes`, encodePreamble(1), ok);
      const f = await next(t, p, [FrameType.REGISTERED, FrameType.CLOSE]);
      if (f === null || f.type !== FrameType.REGISTERED) fail('a 4096-byte REGISTER was refused');
      const big = pad(4097 - 14 - extra);
      const q = await dial(t);
      send(t, q, `preamble v1, REGISTER of ${big.length} bytes`, encodePreamble(1), big);
      await expectClose(t, q, WireCode.FRAME_TOO_LARGE);
    },
  },
  {
    id: 'P-4.2-1',
    title: 'REGISTERED carries id, router (= the ID\'s first 4 bytes), maxFrame 1050..64 MiB, keepalive >= 1, timeout >= keepalive',
    async run(t) {
      await register(t); // decoded strictly there
    },
  },
  {
    id: 'P-4.2-6',
    title: 'after REGISTERED the router accepts frames up to the announced maxFrame',
    async run(t) {
      const { p, reg: r } = await register(t);
      const payload = Buffer.alloc(r.maxFrame - 26, 0x5a);
      await relayed(t, p, Buffer.from(r.id), 1, payload, 0, p);
    },
  },
  {
    id: 'P-4.3-2',
    title: 'a SEND before registration gets ERROR(NOT_REGISTERED 2) with its seq and destination; the connection stays open',
    async run(t) {
      const p = await dial(t);
      const to = idOf(1, 0xab);
      send(t, p, 'preamble v1, SEND(seq=77) before REGISTER', encodePreamble(1), ...encodeSend(to, 77, Buffer.from('x')));
      await expectError(t, p, WireCode.NOT_REGISTERED, 77, to);
      send(t, p, 'REGISTER {}', reg({}, t));
      const f = await next(t, p, [FrameType.REGISTERED, FrameType.CLOSE]);
      if (f === null || f.type !== FrameType.REGISTERED) fail('REGISTER after the refused SEND was not answered with REGISTERED');
    },
  },
  {
    id: 'P-4.4-1',
    title: 'a second REGISTER gets ERROR(ALREADY_REGISTERED 3), seq 0, zero ID; the ID is unchanged',
    async run(t) {
      const { p, reg: r } = await register(t);
      send(t, p, 'REGISTER {} again', reg({}, t));
      await expectError(t, p, WireCode.ALREADY_REGISTERED, 0, ZERO);
      const d = await relayed(t, p, Buffer.from(r.id), 5, Buffer.from('still me'), 0, p);
      if (!d.bytes.subarray(6, 22).equals(Buffer.from(r.id))) fail('the ID changed after the second REGISTER');
    },
  },
  {
    id: 'P-5.3-3',
    title: 'IDs handed out at the same time are distinct and start with the router ID',
    async run(t) {
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const { reg: r } = await register(t);
        const hex = Buffer.from(r.id).toString('hex');
        if (seen.has(hex)) fail(`ID ${hex} handed out twice`);
        seen.add(hex);
        if (Buffer.from(r.id).readUInt32BE(0) !== r.router) fail('ID does not start with the router ID');
      }
    },
  },
  {
    id: 'P-6.3-1',
    title: 'DELIVER carries seq 0 and the SEND\'s payload byte for byte',
    async run(t) {
      const a = await register(t);
      const b = await register(t);
      const payload = Buffer.from('0001feff' + 'ab'.repeat(40), 'hex');
      const d = await relayed(t, a.p, Buffer.from(b.reg.id), 0xfffffffe, payload, 0, b.p);
      if (d.bytes.readUInt32BE(22) !== 0) fail(`DELIVER seq is ${d.bytes.readUInt32BE(22)}, not 0`);
      if (!d.bytes.subarray(26).equals(payload)) fail('DELIVER payload differs from the SEND payload');
    },
  },
  {
    id: 'P-6.4-4',
    title: 'a SEND to an unregistered ID of this router gets ERROR(UNKNOWN_DESTINATION 1) with its seq and destination',
    async run(t) {
      const { p, reg: r } = await register(t);
      const to = idOf(r.router, 0xcd);
      send(t, p, 'SEND(seq=9) to an unknown ID of this router', ...encodeSend(to, 9, Buffer.from('x')));
      await expectError(t, p, WireCode.UNKNOWN_DESTINATION, 9, to);
      await expectAlive(t, p);
    },
  },
  {
    id: 'P-6.4-3',
    title: 'a SEND with a flag bit the router does not implement gets ERROR(UNSUPPORTED_FLAGS 4)',
    async run(t) {
      const { p, reg: r } = await register(t);
      send(t, p, 'SEND(seq=3, flags=0x80) to itself', ...encodeSend(Buffer.from(r.id), 3, Buffer.from('x'), 0x80));
      await expectError(t, p, WireCode.UNSUPPORTED_FLAGS, 3, Buffer.from(r.id));
    },
  },
  {
    id: 'P-6.4-5',
    title: 'a SEND to an ID whose router part is 0 gets ERROR(UNREACHABLE_ROUTER 18)',
    async run(t) {
      const { p } = await register(t);
      send(t, p, 'SEND(seq=4) to the zero ID', ...encodeSend(ZERO, 4, Buffer.from('x')));
      await expectError(t, p, WireCode.UNREACHABLE_ROUTER, 4, ZERO);
    },
  },
  {
    id: 'P-6.4-6',
    title: 'a SEND is delivered as DELIVER: same length, type 0x11, the sender\'s ID and nothing else about it',
    async run(t) {
      const a = await register(t);
      const b = await register(t);
      const payload = Buffer.from('hello');
      const d = await relayed(t, a.p, Buffer.from(b.reg.id), 1, payload, 0, b.p);
      const want = Buffer.concat(encodeFrame(FrameType.DELIVER, Buffer.concat([Buffer.from(a.reg.id), Buffer.alloc(4), payload])));
      if (!d.bytes.equals(want)) fail(`expected exactly ${want.toString('hex')}`);
      // to oneself too
      await relayed(t, a.p, Buffer.from(a.reg.id), 2, payload, 0, a.p);
    },
  },
  {
    id: 'P-6.5-1',
    title: 'DELIVERs from one sender to one receiver arrive in the order of the SENDs',
    async run(t) {
      const a = await register(t);
      const b = await register(t);
      const n = 200;
      const frames: Buffer[] = [];
      for (let i = 0; i < n; i++) frames.push(...encodeSend(Buffer.from(b.reg.id), i + 1, Buffer.from(String(i))));
      send(t, a.p, `${n} SENDs numbered 0..${n - 1} in one write`, ...frames);
      for (let i = 0; i < n; i++) {
        const f = await b.p.nextOf([FrameType.DELIVER], t.wait);
        if (f === null) fail(`only ${i} of ${n} DELIVERs arrived`);
        if (f.bytes.subarray(26).toString() !== String(i)) {
          t.got.push(describeFrame(f.bytes));
          fail(`DELIVER ${i} carries "${f.bytes.subarray(26).toString()}"`);
        }
      }
    },
  },
  {
    id: 'P-6.5-2',
    title: 'an ERROR caused by a SEND is written before the PONG for a PING sent after it (flush)',
    async run(t) {
      const { p, reg: r } = await register(t);
      const to = idOf(r.router, 0xce);
      send(t, p, 'SEND(seq=11) to an unknown ID, then PING(01) in one write', ...encodeSend(to, 11, Buffer.from('x')), encodePing(Buffer.from([1])));
      const f = await next(t, p, [FrameType.ERROR, FrameType.PONG]);
      if (f === null || f.type !== FrameType.ERROR) fail('the PONG came before the ERROR');
      await next(t, p, [FrameType.PONG]);
    },
  },
  {
    id: 'P-8.1-2',
    title: 'PING gets a PONG with the same payload (0, 8 and 64 bytes), before and after registration',
    async run(t) {
      const p = await dial(t);
      send(t, p, 'preamble v1', encodePreamble(1));
      await expectAlive(t, p, Buffer.alloc(0));
      await expectAlive(t, p, Buffer.from('0102030405060708', 'hex'));
      send(t, p, 'REGISTER {}', reg({}, t));
      await next(t, p, [FrameType.REGISTERED]);
      await expectAlive(t, p, Buffer.alloc(64, 0x7f));
    },
  },
  {
    id: 'P-8.2-1',
    title: 'after keepalive ms of silence the router sends one PING, never before',
    async run(t) {
      const { p, reg: r } = await register(t);
      if (r.timeout * 1.1 + 500 > t.timerBudget) throw new Untestable(`keepalive ${r.keepalive} ms / timeout ${r.timeout} ms exceed the timer budget (--timer-budget)`);
      const t0 = p.lastWrite; // REGISTER was our last byte: the router's silence began no earlier
      const f = await p.nextOf([FrameType.PING, FrameType.CLOSE], r.keepalive * 1.1 + 500);
      t.got.push(f === null ? '(nothing)' : `${describeFrame(f.bytes)} after ${Math.round(f.at - t0)} ms`);
      if (f === null || f.type !== FrameType.PING) fail('no PING after keepalive ms of silence');
      if (f.at - t0 < r.keepalive - 2) fail(`PING ${Math.round(r.keepalive - (f.at - t0))} ms before keepalive`);
      if (f.at - t0 > r.keepalive * 1.1 + 250) fail('PING more than one sweep period (a tenth of keepalive) late');
    },
  },
  {
    id: 'P-8.2-2',
    title: 'after timeout ms of silence the router sends CLOSE(KEEPALIVE_TIMEOUT 69), never before',
    async run(t) {
      const { p, reg: r } = await register(t);
      if (r.timeout * 1.1 + 500 > t.timerBudget) throw new Untestable(`timeout ${r.timeout} ms exceeds the timer budget (--timer-budget)`);
      const t0 = p.lastWrite;
      const f = await p.nextOf([FrameType.CLOSE], r.timeout * 1.1 + 500);
      t.got.push(f === null ? '(nothing)' : `${describeFrame(f.bytes)} after ${Math.round(f.at - t0)} ms`);
      if (f === null || f.bytes.readUInt16BE(6) !== WireCode.KEEPALIVE_TIMEOUT) fail('no CLOSE(69) after timeout ms of silence');
      if (f.at - t0 < r.timeout - 2) fail(`closed ${Math.round(r.timeout - (f.at - t0))} ms before the timeout`);
      if (f.at - t0 > r.timeout + r.keepalive / 10 + 250) fail('closed more than one sweep period late');
    },
  },
  {
    id: 'P-9.2-3',
    title: 'a router that receives CLOSE does not answer it and closes the TCP connection',
    async run(t) {
      const { p } = await register(t);
      send(t, p, 'CLOSE(0), PING', encodeClose(WireCode.NORMAL, 'bye'), encodePing(Buffer.from([9])));
      const ended = await p.until(() => p.ended, t.wait);
      for (const f of p.frames) t.got.push(describeFrame(f.bytes));
      if (p.frames.some((f) => f.type === FrameType.CLOSE || f.type === FrameType.PONG)) fail('the router answered after receiving CLOSE');
      if (!ended) fail('the router did not close the TCP connection');
    },
  },
  {
    id: 'P-10.1-1',
    title: 'a router-link frame (SOURCE, LINK_READY) from a registered agent gets CLOSE(MALFORMED 66)',
    async run(t) {
      for (const [what, f] of [
        ['SOURCE', frame(FrameType.SOURCE, Buffer.alloc(20))],
        ['LINK_READY {}', frame(FrameType.LINK_READY, [0x80])],
      ] as const) {
        const { p } = await register(t);
        send(t, p, what, f);
        await expectClose(t, p, WireCode.MALFORMED);
      }
    },
  },
  {
    id: 'P-11.1-1',
    title: 'a REGISTER whose anonymous is not a boolean gets CLOSE(MALFORMED 66), never a visible registration',
    async run(t) {
      for (const v of [1, 'yes']) {
        const p = await dial(t);
        send(t, p, `preamble v1, REGISTER {anonymous: ${JSON.stringify(v)}}`, encodePreamble(1), reg({ anonymous: v }, t));
        await expectClose(t, p, WireCode.MALFORMED);
      }
    },
  },
  {
    id: 'P-11.1-5',
    title: 'an anonymous REGISTER gets REGISTERED with the zero ID and anonymous: true',
    async run(t) {
      const { reg: r } = await register(t, { anonymous: true });
      if (r.anonymous !== true || !Buffer.from(r.id).equals(ZERO)) fail('REGISTERED is not anonymous with the zero ID');
    },
  },
  {
    id: 'P-11.1-3',
    title: 'REGISTER with anonymous: true and a key, or a key not 32 bytes of bin, gets CLOSE(MALFORMED 66)',
    async run(t) {
      for (const body of [{ anonymous: true, key: Buffer.alloc(32, 1) }, { key: Buffer.alloc(31, 1) }]) {
        const p = await dial(t);
        send(t, p, `preamble v1, REGISTER {${Object.keys(body).join(', ')}} (key ${body.key.length} bytes)`, encodePreamble(1), reg(body, t));
        await expectClose(t, p, WireCode.MALFORMED);
      }
    },
  },
  {
    id: 'P-11.2-2',
    title: 'an anonymous SEND is delivered under a reply handle (not the sender ID) with the ANONYMOUS bit; a reply to it reaches the sender',
    async run(t) {
      const a = await register(t);
      const b = await register(t);
      const d = await relayed(t, a.p, Buffer.from(b.reg.id), 1, Buffer.from('who?'), Flag.ANONYMOUS, b.p);
      if ((d.flags & Flag.ANONYMOUS) === 0) fail('DELIVER lacks the ANONYMOUS bit');
      const handle = d.bytes.subarray(6, 22);
      if (handle.equals(Buffer.from(a.reg.id))) fail('DELIVER carries the sender\'s own ID');
      if (handle.readUInt32BE(0) !== b.reg.router) fail('the reply handle does not start with the router ID');
      const back = await relayed(t, b.p, Buffer.from(handle), 2, Buffer.from('you'), 0, a.p);
      if (!back.bytes.subarray(6, 22).equals(Buffer.from(b.reg.id))) fail('the reply does not come from the replier\'s ID');
    },
  },
  {
    id: 'P-11.2-4',
    title: 'each non-sticky anonymous SEND gets a fresh handle; STICKY ones share one',
    async run(t) {
      const a = await register(t, { anonymous: true });
      const b = await register(t);
      const to = Buffer.from(b.reg.id);
      const h1 = (await relayed(t, a.p, to, 1, Buffer.from('1'), 0, b.p)).bytes.subarray(6, 22);
      const h2 = (await relayed(t, a.p, to, 2, Buffer.from('2'), 0, b.p)).bytes.subarray(6, 22);
      if (h1.equals(h2)) fail('two non-sticky anonymous SENDs share a handle');
      const s1 = (await relayed(t, a.p, to, 3, Buffer.from('3'), Flag.STICKY, b.p)).bytes.subarray(6, 22);
      const s2 = (await relayed(t, a.p, to, 4, Buffer.from('4'), Flag.STICKY, b.p)).bytes.subarray(6, 22);
      if (!s1.equals(s2)) fail('two STICKY SENDs got different handles');
    },
  },
  {
    id: 'P-11.4-3',
    title: 'LOOKUP answers with the key an ID registered, NO_KEY (7) or UNKNOWN_DESTINATION (1) with seq = ref',
    async run(t) {
      const key = Buffer.alloc(32, 0x5b);
      const withKey = await register(t, { key });
      const noKey = await register(t);
      const { p, reg: r } = await register(t);
      send(t, p, 'LOOKUP {ref: 1, id: agent with key}', ...t.codec.encodeLookup({ ref: 1, id: Buffer.from(withKey.reg.id) }));
      const f = await next(t, p, [FrameType.LOOKUP_RESULT, FrameType.ERROR, FrameType.CLOSE]);
      if (f === null || f.type !== FrameType.LOOKUP_RESULT) fail('expected LOOKUP_RESULT');
      const res = t.codec.decodeLookupResult(f.bytes, 0, f.bytes.length);
      if (res.ref !== 1 || !Buffer.from(res.key).equals(key)) fail('LOOKUP_RESULT has the wrong ref or key');
      send(t, p, 'LOOKUP {ref: 2, id: agent without key}', ...t.codec.encodeLookup({ ref: 2, id: Buffer.from(noKey.reg.id) }));
      await expectError(t, p, WireCode.NO_KEY, 2, Buffer.from(noKey.reg.id));
      const unknown = idOf(r.router, 0xc3);
      send(t, p, 'LOOKUP {ref: 3, id: unknown}', ...t.codec.encodeLookup({ ref: 3, id: unknown }));
      await expectError(t, p, WireCode.UNKNOWN_DESTINATION, 3, unknown);
    },
  },
  {
    id: 'P-11.4-1',
    title: 'a LOOKUP with ref 0 or ref 2^32 gets CLOSE(MALFORMED 66)',
    async run(t) {
      for (const refHex of ['00', 'cf0000000100000000']) {
        const { p, reg: r } = await register(t);
        const body = Buffer.concat([Buffer.from('82a3726566' + refHex + 'a26964c410', 'hex'), idOf(r.router, 1)]);
        send(t, p, `LOOKUP {ref: ${refHex}}`, frame(FrameType.LOOKUP, body));
        await expectClose(t, p, WireCode.MALFORMED);
      }
    },
  },
  {
    id: 'P-11.4-2',
    title: 'a LOOKUP before registration gets CLOSE(MALFORMED 66)',
    async run(t) {
      const p = await dial(t);
      send(t, p, 'preamble v1, LOOKUP {ref: 1} before REGISTER', encodePreamble(1), ...t.codec.encodeLookup({ ref: 1, id: idOf(1, 1) }));
      await expectClose(t, p, WireCode.MALFORMED);
    },
  },
];

CHECKS.push({
  id: 'P-12.7-1',
  title: 'a router that requires an admission token refuses a REGISTER without one with CLOSE(ADMISSION_DENIED 77)',
  async run(t) {
    if (t.token === undefined) throw new Untestable('whether the router requires a token is not on the wire; pass --token <token> to check it');
    const p = await dial(t);
    send(t, p, 'preamble v1, REGISTER {} (no token)', encodePreamble(1), Buffer.concat(t.codec.encodeRegister({})));
    await expectClose(t, p, WireCode.ADMISSION_DENIED);
    await register(t); // and with it, REGISTERED
  },
});

/** Requirements a client cannot check from outside, and why. */
const OUTSIDE: [string, string, string][] = [
  ['P-5.3-1', 'the 12 random bytes of an ID come from a CSPRNG, fresh per registration', 'randomness cannot be proven from samples'],
  ['P-6.6-1', 'the router does not inspect, change or log payloads', 'what a router logs or inspects is not visible on the wire (that it does not change them is P-6.3-1)'],
  ['P-9.3-3', 'a destination that does not read for slowConsumerTimeout is closed with SLOW_CONSUMER; held senders get DESTINATION_SLOW', 'needs the router\'s maxOutbound and slowConsumerTimeout, which are not announced'],
  ['P-10.2-3', 'router links authenticate with the mesh secret', 'needs the mesh secret'],
  ['P-12.5-2', 'connections over the limits are refused with TOO_MANY_CONNECTIONS', 'the limits are not announced and are large by default'],
];

/**
 * Runs every check against the router at `host:port` and returns the report. Never
 * throws for a misbehaving router: every problem is a failed check.
 */
export async function checkRouter(options: RouterCheckOptions): Promise<ConformanceReport> {
  const results: CheckResult[] = [];
  const only = options.only;
  const pick = (id: string): boolean => only === undefined || only.some((o) => id.startsWith(o));
  const checks = CHECKS.filter((c) => pick(c.id));
  // Timer checks wait the longest; run them side by side, each on its own connection.
  const timers = checks.filter((c) => c.id.startsWith('P-8.2') || c.id.startsWith('P-2.5'));
  const rest = checks.filter((c) => !timers.includes(c));
  const runOne = async (c: Check): Promise<CheckResult> => {
    const t: Ctx = {
      host: options.host,
      port: options.port,
      wait: options.wait ?? 2000,
      timerBudget: options.timerBudget ?? 5000,
      handshakeTimeout: options.handshakeTimeout,
      token: options.token,
      codec: new ControlCodec(),
      sent: [],
      got: [],
      probes: [],
    };
    const t0 = performance.now();
    const r: CheckResult = { id: c.id, title: c.title, status: 'pass', sent: t.sent, got: t.got, ms: 0 };
    try {
      await c.run(t);
    } catch (err) {
      r.status = err instanceof Untestable ? 'untestable' : 'fail';
      r.reason = err instanceof Error ? err.message : String(err);
    } finally {
      for (const p of t.probes) p.close();
    }
    r.ms = Math.round(performance.now() - t0);
    return r;
  };
  const timed = Promise.all(timers.map(runOne));
  for (const c of rest) results.push(await runOne(c));
  results.push(...(await timed));
  for (const [id, title, reason] of OUTSIDE) {
    if (pick(id)) results.push({ id, title, status: 'untestable', sent: [], got: [], reason, ms: 0 });
  }
  results.sort((a, b) => compareIds(a.id, b.id));
  return makeReport(`router ${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`, results);
}

/** Orders requirement 6.4-10 after 6.4-3 (numerically, part by part). */
export function compareIds(a: string, b: string): number {
  const pa = a.split(/[-.]/).slice(1).map(Number);
  const pb = b.split(/[-.]/).slice(1).map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** @internal The IDs the router checks cite, for the test that each exists in PROTOCOL.md. */
export const ROUTER_CHECK_IDS: readonly string[] = [...CHECKS.map((c) => c.id), ...OUTSIDE.map((o) => o[0])];
