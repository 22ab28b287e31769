/**
 * A mutation fuzz run of the whole router, agent side and link side: captured valid
 * traffic (REGISTER, SENDs to itself, to another agent, to unknown IDs, to this router's
 * and the link peer's router IDs, with every flag, PING, LOOKUP, SOURCE, ROUTE_ERROR,
 * CLOSE, ...) is mutated (byte flips, truncation, splices, length fields) and written to a
 * real Router over in-memory duplex pairs in random splits. The only allowed outcome: no
 * exception escapes, the router still registers a fresh agent afterwards, and what it
 * holds goes back down once the fuzzed connections are gone.
 *
 * Fixed seeds in CI; POSTERN_FUZZ_CASES=n (per side) and POSTERN_FUZZ_SEED=s run longer.
 * A crash found here becomes a case in crash.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { ControlCodec } from '../../src/protocol/control.js';
import { encodeClose, encodePing, encodePong, encodePreamble, encodeRouteError, encodeSend, encodeSource } from '../../src/protocol/encoder.js';
import { Flag, FrameType, PROTOCOL_VERSION, WireCode } from '../../src/protocol/frame.js';
import { duplexPair, eventually, RawClient } from '../helpers/raw.js';
import { linkUp } from '../helpers/link.js';
import { prng } from '../helpers/random.js';

const F = suite('router fuzz');

const ROUTER_ID = 0x42;
const PEER_ROUTER = 0x09;
const SECRET = 'fuzzing mesh secret, long enough';
const CASES = Number(process.env['POSTERN_FUZZ_CASES'] ?? 150);
const SEED = Number(process.env['POSTERN_FUZZ_SEED'] ?? 0x5eed);


const codec = new ControlCodec();

function idOf(router: number, tail: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(router, 0);
  b.writeUInt32BE(tail >>> 0, 12);
  return b;
}

interface World {
  self: Buffer;
  other: Buffer;
}

/** One valid frame an agent might send, as a buffer. */
function agentFrame(r: () => number, w: World): Buffer {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const payload = Buffer.alloc(pick([0, 1, 16, 200, 3000]), Math.floor(r() * 256));
  const dest = pick([w.self, w.self, w.other, idOf(ROUTER_ID, r() * 1e9), idOf(PEER_ROUTER, r() * 1e9), idOf(0, 0), idOf(0xdead, 1)]);
  switch (Math.floor(r() * 10)) {
    case 0:
    case 1:
    case 2:
      return Buffer.concat(encodeSend(dest, Math.floor(r() * 2 ** 32), payload, pick([0, 0, 0, Flag.SEALED, Flag.ANONYMOUS, Flag.ANONYMOUS | Flag.STICKY, Flag.ANONYMOUS | Flag.SEALED, 0x80, 0x08])));
    case 3:
      return encodePing(payload.subarray(0, Math.min(payload.length, 64)));
    case 4:
      return Buffer.concat(codec.encodeLookup({ ref: Math.floor(r() * 1000), id: dest }));
    case 5:
      return Buffer.concat(codec.encodeRegister(pick([{}, { anonymous: true }, { key: Buffer.alloc(32, 1) }])));
    case 6:
      return encodeSource(dest, Math.floor(r() * 4), pick([0, Flag.ANONYMOUS]));
    case 7:
      return encodeRouteError(WireCode.UNKNOWN_DESTINATION, 1, dest, pick([w.self, w.other]));
    case 8:
      return encodePong(payload.subarray(0, 8));
    default:
      return r() < 0.5 ? encodeClose(pick([0, 66, 999])) : Buffer.concat(encodeSend(w.self, 1, payload));
  }
}

/** One valid frame a peer router might send on a link. */
function linkFrame(r: () => number, w: World): Buffer {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const payload = Buffer.alloc(pick([0, 1, 16, 200, 3000]), Math.floor(r() * 256));
  const peerAgent = idOf(PEER_ROUTER, Math.floor(r() * 4));
  const dest = pick([w.self, w.other, peerAgent, idOf(ROUTER_ID, r() * 1e9), idOf(0x77, 1), idOf(0, 0)]);
  switch (Math.floor(r() * 10)) {
    case 0:
      return encodeSource(pick([peerAgent, w.self, idOf(0x77, 5)]), Math.floor(r() * 4), pick([0, 0, Flag.ANONYMOUS]));
    case 1:
    case 2:
    case 3:
      return Buffer.concat(encodeSend(dest, Math.floor(r() * 2 ** 32), payload, pick([0, 0, Flag.SEALED, Flag.ANONYMOUS, 0x40])));
    case 4:
      return encodePing(payload.subarray(0, Math.min(payload.length, 4)));
    case 5:
      return encodeRouteError(pick([WireCode.UNKNOWN_DESTINATION, WireCode.HOP_LIMIT, 200]), Math.floor(r() * 100), dest, pick([w.self, w.other, peerAgent, idOf(0x77, 2)]));
    case 6:
      return Buffer.concat(codec.encodeLookup({ ref: Math.floor(r() * 1000), id: dest, ...(r() < 0.8 ? { from: peerAgent } : {}) }));
    case 7:
      return Buffer.concat(codec.encodeLookupResult({ ref: 1, id: dest, key: Buffer.alloc(32, 2), ...(r() < 0.8 ? { to: pick([w.self, peerAgent]) } : {}) }));
    case 8:
      return encodePong(Buffer.from([0, 0, 0, Math.floor(r() * 4)]));
    default:
      return r() < 0.3 ? encodeClose(pick([0, 66])) : Buffer.concat(codec.encodeRegister({}));
  }
}

/** Mutates a valid byte stream: flips, truncation, splices, duplicated ranges, length fields. */
function mutate(r: () => number, b: Buffer, other: Buffer): Buffer {
  let out = Buffer.from(b);
  const rounds = 1 + Math.floor(r() * 3);
  for (let i = 0; i < rounds && out.length > 0; i++) {
    const at = Math.floor(r() * out.length);
    switch (Math.floor(r() * 6)) {
      case 0: // a few byte flips
        for (let k = 0; k < 1 + r() * 4; k++) {
          const p = Math.floor(r() * out.length);
          out[p] = out[p]! ^ (1 + Math.floor(r() * 255));
        }
        break;
      case 1: // truncation
        out = out.subarray(0, at);
        break;
      case 2: {
        // splice in a slice of other traffic
        const s = Math.floor(r() * other.length);
        out = Buffer.concat([out.subarray(0, at), other.subarray(s, s + Math.floor(r() * 64)), out.subarray(at)]);
        break;
      }
      case 3: // a range twice
        out = Buffer.concat([out.subarray(0, at), out.subarray(Math.max(0, at - 40), at), out.subarray(at)]);
        break;
      case 4: {
        // a length field set to something odd
        if (out.length - at >= 4) out.writeUInt32BE([0, 1, 2, 5, 21, 0x7fffffff, 0xffffffff, Math.floor(r() * 70000)][Math.floor(r() * 8)]!, at);
        break;
      }
      default: // left valid
        break;
    }
  }
  return out;
}

/** Writes `b` in random splits, sometimes letting the router run in between. */
async function writeSplit(r: () => number, c: RawClient, b: Buffer): Promise<void> {
  let off = 0;
  while (off < b.length && !c.closed) {
    const n = 1 + Math.floor(r() * (r() < 0.3 ? 8 : 4096));
    c.stream.write(b.subarray(off, off + n));
    off += n;
    if (r() < 0.2) await new Promise((res) => setImmediate(res));
  }
}

function traffic(r: () => number, w: World, link: boolean): Buffer {
  const frames: Buffer[] = [];
  const n = 1 + Math.floor(r() * 12);
  for (let i = 0; i < n; i++) frames.push(link ? linkFrame(r, w) : agentFrame(r, w));
  return Buffer.concat(frames);
}

async function fuzz(side: 'agent' | 'link' | 'handshake', seed: number, cases: number): Promise<void> {
  const errors: unknown[] = [];
  const onUncaught = (err: unknown): void => {
    errors.push(err);
  };
  process.on('uncaughtException', onUncaught);
  const router = new Router({ routerId: ROUTER_ID, meshSecret: SECRET, maxFrame: 64 * 1024, resumeGrace: 50, keepaliveInterval: 60_000 });
  try {
    const serve = (): RawClient => {
      const [mine, theirs] = duplexPair();
      router.handle(theirs);
      return new RawClient(mine);
    };
    const other = serve();
    const otherId = Buffer.from((await other.register()).id);
    const r = prng(seed);
    let splice: Buffer = Buffer.alloc(0);
    for (let i = 0; i < cases; i++) {
      const c = serve();
      let world: World = { self: idOf(ROUTER_ID, 1), other: otherId };
      if (side === 'agent') {
        world = { self: Buffer.from((await c.register()).id), other: otherId };
      } else if (side === 'link') {
        await linkUp(c, PEER_ROUTER, SECRET, 64 * 1024);
      } else {
        // before registration: preamble (sometimes) and then anything
        if (r() < 0.8) c.stream.write(encodePreamble(r() < 0.9 ? PROTOCOL_VERSION : Math.floor(r() * 256)));
      }
      const valid = traffic(r, world, side === 'link');
      const bytes = r() < 0.15 ? valid : mutate(r, valid, splice);
      splice = valid;
      await writeSplit(r, c, bytes);
      await new Promise((res) => setImmediate(res));
      if (r() < 0.5) c.stream.end();
      else c.destroy();
      if (errors.length > 0) throw new Error(`${side} case ${i} (seed ${seed}): ${String(errors[0])}\nbytes ${bytes.toString('hex').slice(0, 2000)}`);
    }
    await new Promise((res) => setTimeout(res, 100));
    assert.is(errors.length, 0, String(errors[0]));
    // Still serving: a fresh agent registers, and the one registered first still gets its messages.
    const fresh = serve();
    const fid = Buffer.from((await fresh.register()).id);
    fresh.write(...encodeSend(otherId, 1, Buffer.from('still here')));
    await other.until(() => other.frames.some((f) => f.type === FrameType.DELIVER && f.bytes.subarray(6, 22).equals(fid)), 2000, 'a DELIVER after the fuzz run');
    fresh.destroy();
    other.destroy();
    // Bounded: the fuzzed connections are gone and left nothing queued or parked behind.
    await eventually(() => router.connections === 0, 3000, `connections to close (${router.connections} left)`);
    await eventually(() => router.queues().parked === 0, 3000, 'parked agents to expire');
    assert.is(router.queues().outboundBytes, 0);
    assert.is(router.registry.size, 0);
  } finally {
    process.off('uncaughtException', onUncaught);
    await router.close();
  }
}

F('agent side: mutated agent traffic, self-sends included, never ends the router', async () => {
  await fuzz('agent', SEED, CASES);
});

F('link side: mutated link traffic after a real handshake never ends the router', async () => {
  await fuzz('link', SEED + 1, CASES);
});

F('before registration: mutated preambles and frames never end the router', async () => {
  await fuzz('handshake', SEED + 2, Math.ceil(CASES / 3));
});

F.run();
