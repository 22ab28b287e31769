import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { ControlCodec } from '../protocol/control.js';
import { encodeDeliver, encodeError, encodeFrame, encodePing, encodePreamble, encodeSend } from '../protocol/encoder.js';
import { FrameType, PRE_REGISTER_MAX_FRAME, WireCode } from '../protocol/frame.js';
import { Probe, type SeenFrame } from './probe.js';
import { describeFrame, makeReport, type CheckResult, type ConformanceReport } from './report.js';
import { compareIds } from './router.js';

/**
 * Conformance checks of an agent, with the runner as its router. The runner listens on
 * 127.0.0.1 (a free port), starts the agent command with the router address in the
 * environment variable `POSTERN_ROUTER` (`127.0.0.1:PORT`) and in place of `{router}` in
 * the command, and drives the connections the agent opens:
 *
 * 1. first connection: preamble and REGISTER checked; REGISTERED announces keepalive
 *    `keepalive` ms; PING, an unknown optional frame, an ERROR with an unknown code and a
 *    DELIVER are sent; then silence, to see the agent's PING and its KEEPALIVE_TIMEOUT;
 * 2. if the agent reconnects: a REGISTERED that is not valid must be closed as MALFORMED;
 * 3. if it reconnects again: a SEND (wrong direction) must be closed as MALFORMED.
 *
 * Checks that need a reconnect are "not testable" for an agent that does not reconnect.
 */

/** Options of {@link checkAgent}. */
export interface AgentCheckOptions {
  /** Shell command that starts the agent; `{router}` is replaced by `127.0.0.1:PORT`. */
  command: string;
  /** Keepalive announced to the agent, ms (timeout 1.5 x). Default 400. */
  keepalive?: number;
  /** How long to wait for what the agent owes at once, and for a (re)connect, ms. Default 5000. */
  wait?: number;
  /** Called with each line the agent prints on stdout or stderr (default: dropped). */
  onOutput?: (line: string) => void;
}

interface Result {
  status: 'pass' | 'fail' | 'untestable';
  reason?: string;
  sent: string[];
  got: string[];
}

const TITLES: Record<string, string> = {
  'P-2.1-2': 'the agent sends the preamble first: magic 89 50 53 54 4e 0d 0a, a version >= 1',
  'P-4.1-9': 'the agent\'s REGISTER is one MessagePack map with string keys, at most 4096 bytes before REGISTERED',
  'P-8.1-2': 'the agent answers PING with a PONG carrying the same payload',
  'P-3.2-2': 'the agent skips an unknown optional frame type',
  'P-7.4-1': 'an ERROR with an unknown code does not end the connection',
  'P-6.3-1': 'the agent accepts a DELIVER whatever its reserved seq field holds',
  'P-8.2-1': 'after keepalive ms of silence the agent sends one PING, never before',
  'P-8.2-2': 'after timeout ms of silence the agent sends CLOSE(KEEPALIVE_TIMEOUT 69), never before',
  'P-3.2-3': 'an agent that receives a router-only frame in the wrong direction (SEND) closes with MALFORMED (66)',
  'P-4.2-5': 'an agent that receives an invalid REGISTERED (maxFrame 10) closes with MALFORMED (66)',
};

/** Runs the agent checks; see the module doc. Never throws for a misbehaving agent. */
export async function checkAgent(options: AgentCheckOptions): Promise<ConformanceReport> {
  const wait = options.wait ?? 5000;
  const keepalive = options.keepalive ?? 400;
  const timeout = Math.floor(keepalive * 1.5);
  const codec = new ControlCodec();
  const incoming: Probe[] = [];
  let wake: (() => void) | null = null;
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    incoming.push(new Probe(s));
    wake?.();
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as net.AddressInfo).port;
  const router = `127.0.0.1:${port}`;
  const child: ChildProcess = spawn(options.command.replaceAll('{router}', router), {
    shell: true,
    env: { ...process.env, POSTERN_ROUTER: router },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so the shell and the agent it starts stop together.
    detached: true,
  });
  const out = options.onOutput;
  for (const s of [child.stdout, child.stderr]) {
    s?.setEncoding('utf8');
    s?.on('data', (d: string) => {
      if (out !== undefined) for (const l of d.split('\n')) if (l.length > 0) out(l);
    });
  }
  let exited = false;
  child.on('exit', () => {
    exited = true;
    wake?.();
  });

  /** The n-th connection the agent opens (0-based), or null after `wait` ms. */
  const conn = async (n: number): Promise<Probe | null> => {
    const deadline = performance.now() + wait;
    while (incoming.length <= n && !exited && performance.now() < deadline) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    return incoming[n] ?? null;
  };

  const results: Record<string, Result> = {};
  const res = (id: string): Result => (results[id] ??= { status: 'pass', sent: [], got: [] });
  const failed = (id: string, reason: string): void => {
    const r = res(id);
    r.status = 'fail';
    r.reason ??= reason;
  };
  const untestable = (id: string, reason: string): void => {
    const r = res(id);
    r.status = 'untestable';
    r.reason = reason;
  };
  const next = async (p: Probe, types: number[], id: string, ms = wait): Promise<SeenFrame | null> => {
    const f = await p.nextOf(types, ms);
    res(id).got.push(f === null ? (p.ended ? '(connection ended)' : '(nothing)') : describeFrame(f.bytes));
    return f;
  };
  const tell = (p: Probe, id: string, what: string, ...bufs: Buffer[]): void => {
    res(id).sent.push(what);
    p.write(...bufs);
  };
  const registered = (maxFrame: number): Buffer =>
    Buffer.concat(codec.encodeRegistered({ id: Buffer.from('00000007' + '5a'.repeat(12), 'hex'), router: 7, maxFrame, keepalive, timeout }));

  /** Reads the preamble and REGISTER of a new connection; false when they are not right. */
  const handshake = async (p: Probe, check: boolean): Promise<boolean> => {
    await p.until(() => p.version !== -1 || p.ended, wait);
    if (check) res('P-2.1-2').got.push(`preamble ${p.rawHex(8)}`);
    if (p.version < 1) {
      if (check) failed('P-2.1-2', p.version === -2 ? 'the preamble magic is wrong' : 'no valid preamble');
      return false;
    }
    p.write(encodePreamble(1));
    const f = await p.nextOf([FrameType.REGISTER], wait);
    if (check) res('P-4.1-9').got.push(f === null ? '(no REGISTER)' : describeFrame(f.bytes));
    if (f === null) {
      if (check) failed('P-4.1-9', 'no REGISTER');
      return false;
    }
    if (check) {
      if (f.bytes.length > PRE_REGISTER_MAX_FRAME) failed('P-4.1-9', `REGISTER is ${f.bytes.length} bytes`);
      try {
        codec.decodeRegister(f.bytes, 0, f.bytes.length);
      } catch (err) {
        failed('P-4.1-9', `REGISTER body: ${(err as Error).message}`);
      }
    }
    return true;
  };

  const alive = async (p: Probe, id: string, payload: Buffer): Promise<boolean> => {
    tell(p, id, `PING(${payload.toString('hex') || 'empty'})`, encodePing(payload));
    const f = await next(p, [FrameType.PONG, FrameType.CLOSE], id);
    if (f === null || f.type !== FrameType.PONG) {
      failed(id, 'no PONG: the connection did not stay open');
      return false;
    }
    if (!f.bytes.subarray(6).equals(payload)) {
      failed(id, 'PONG payload differs from the PING payload');
      return false;
    }
    return true;
  };

  try {
    const p0 = await conn(0);
    if (p0 === null) {
      failed('P-2.1-2', exited ? `the agent exited (code ${child.exitCode}) without connecting` : `the agent did not connect within ${wait} ms`);
    } else if (await handshake(p0, true)) {
      tell(p0, 'P-8.1-2', `REGISTERED (keepalive ${keepalive}, timeout ${timeout})`, registered(1 << 20));
      let ok = (await alive(p0, 'P-8.1-2', Buffer.alloc(0))) && (await alive(p0, 'P-8.1-2', Buffer.alloc(64, 0x42)));
      if (ok) {
        tell(p0, 'P-3.2-2', 'frame type 0x9f, 12 bytes of body', Buffer.concat(encodeFrame(0x9f, Buffer.alloc(12, 0xee))));
        ok = await alive(p0, 'P-3.2-2', Buffer.from([1]));
      }
      if (ok) {
        tell(p0, 'P-7.4-1', 'ERROR(code 60, seq 12345)', encodeError(60, 12345, null, 'a code from the future'));
        ok = await alive(p0, 'P-7.4-1', Buffer.from([2]));
      }
      if (ok) {
        tell(p0, 'P-6.3-1', 'DELIVER(seq 7) "conformance"', ...encodeDeliver(Buffer.from('00000007' + '11'.repeat(12), 'hex'), Buffer.from('conformance'), 0, 7));
        ok = await alive(p0, 'P-6.3-1', Buffer.from([3]));
      }
      if (ok) {
        // Silence from our last write (the PING above): the agent cannot have read it earlier.
        const t0 = p0.lastWrite;
        const ping = await next(p0, [FrameType.PING, FrameType.CLOSE], 'P-8.2-1', keepalive * 1.1 + 1000);
        if (ping === null || ping.type !== FrameType.PING) failed('P-8.2-1', 'no PING after keepalive ms of silence');
        else {
          const dt = ping.at - t0;
          res('P-8.2-1').got.push(`after ${Math.round(dt)} ms`);
          if (dt < keepalive - 2) failed('P-8.2-1', `PING ${Math.round(keepalive - dt)} ms before keepalive`);
          if (dt > keepalive * 1.1 + 250) failed('P-8.2-1', 'PING more than a tenth of keepalive late');
        }
        const close = await next(p0, [FrameType.CLOSE], 'P-8.2-2', timeout * 1.1 + 1000);
        if (close === null) failed('P-8.2-2', 'no CLOSE after timeout ms of silence');
        else {
          const dt = close.at - t0;
          res('P-8.2-2').got.push(`after ${Math.round(dt)} ms`);
          if (close.bytes.readUInt16BE(6) !== WireCode.KEEPALIVE_TIMEOUT) failed('P-8.2-2', 'CLOSE code is not 69');
          if (dt < timeout - 2) failed('P-8.2-2', `closed ${Math.round(timeout - dt)} ms before the timeout`);
          if (dt > timeout + keepalive / 10 + 250) failed('P-8.2-2', 'closed more than a tenth of keepalive late');
        }
      } else {
        for (const id of ['P-8.2-1', 'P-8.2-2']) untestable(id, 'an earlier check ended the connection');
      }
      p0.close();
    }

    // Reconnects: a bad REGISTERED, then a frame in the wrong direction.
    const later: [string, (p: Probe) => Promise<void>][] = [
      [
        'P-4.2-5',
        async (p) => {
          tell(p, 'P-4.2-5', 'REGISTERED with maxFrame 10', registered(10));
          const f = await next(p, [FrameType.CLOSE], 'P-4.2-5');
          if (f === null || f.bytes.readUInt16BE(6) !== WireCode.MALFORMED) failed('P-4.2-5', 'expected CLOSE(66)');
        },
      ],
      [
        'P-3.2-3',
        async (p) => {
          tell(p, 'P-3.2-3', 'REGISTERED, then SEND (router-only direction)', registered(1 << 20), ...encodeSend(Buffer.alloc(16), 1, Buffer.from('x')));
          const f = await next(p, [FrameType.CLOSE], 'P-3.2-3');
          if (f === null || f.bytes.readUInt16BE(6) !== WireCode.MALFORMED) failed('P-3.2-3', 'expected CLOSE(66)');
        },
      ],
    ];
    let n = 1;
    for (const [id, run] of later) {
      const p = incoming.length > 0 ? await conn(n) : null;
      if (p === null || !(await handshake(p, false))) {
        untestable(id, `needs the agent to reconnect (connection ${n + 1}); it did not within ${wait} ms`);
        continue;
      }
      await run(p);
      p.close();
      n++;
    }
  } finally {
    if (!exited && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        child.kill('SIGTERM');
      }
    }
    child.stdout?.destroy();
    child.stderr?.destroy();
    for (const p of incoming) p.close();
    await new Promise<void>((r) => server.close(() => r()));
    if (!exited) await new Promise<void>((r) => (exited ? r() : child.once('exit', () => r())));
  }

  const list: CheckResult[] = Object.keys(TITLES).map((id) => {
    const r = results[id] ?? { status: 'untestable', reason: 'not reached', sent: [], got: [] };
    return { id, title: TITLES[id]!, status: r.status, sent: r.sent, got: r.got, ...(r.reason !== undefined ? { reason: r.reason } : {}), ms: 0 };
  });
  list.sort((a, b) => compareIds(a.id, b.id));
  return makeReport(`agent ${options.command}`, list);
}

/** @internal The IDs the agent checks cite. */
export const AGENT_CHECK_IDS: readonly string[] = Object.keys(TITLES);

