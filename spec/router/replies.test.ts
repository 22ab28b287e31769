/**
 * Replies count against a connection's outbound limit (§9.3): a peer that floods requests
 * and never reads the answers is held back and then closed as a slow consumer, with the
 * router's queue for it bounded all along. Real TCP sockets on 127.0.0.1.
 */
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { encodePing, encodePreamble, encodeSend } from '../../src/protocol/encoder.js';
import { PROTOCOL_VERSION, WireCode } from '../../src/protocol/frame.js';
import { ControlCodec } from '../../src/protocol/control.js';

const R = suite('router replies under the outbound limit');

const MAX_OUTBOUND = 256 * 1024;

/** Figures of the last flood, for the report. */
export const figures: Record<string, { maxQueued: number; sentMB: number; arrayBuffersMB: number }> = {};

/**
 * Registers over TCP, stops reading, then writes `batch()` as fast as the socket takes it
 * (at most `limit` bytes, at most `ms`), sampling the router's queue for this connection.
 */
async function flood(name: string, batch: (i: number) => Buffer, limit = 256 * 1024 * 1024, ms = 4000): Promise<void> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 0x61, maxOutbound: MAX_OUTBOUND, slowConsumerTimeout: 300, keepaliveInterval: 60_000 });
  const { port } = await r.listen();
  try {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => {});
    let ended = false;
    sock.on('close', () => (ended = true));
    await new Promise<void>((res) => sock.once('connect', () => res()));
    const codec = new ControlCodec();
    sock.write(Buffer.concat([encodePreamble(PROTOCOL_VERSION), ...codec.encodeRegister({})]));
    await new Promise<void>((res) => sock.once('data', () => res()));
    sock.pause(); // never reads again
    const ab0 = process.memoryUsage().arrayBuffers;
    let maxQueued = 0;
    let maxAb = 0;
    let sent = 0;
    const deadline = Date.now() + ms;
    for (let i = 0; !ended && sent < limit && Date.now() < deadline; i++) {
      if (sock.writableLength < 1024 * 1024) {
        const b = batch(i);
        sock.write(b);
        sent += b.length;
      }
      await new Promise((res) => setImmediate(res));
      maxQueued = Math.max(maxQueued, r.queues().maxOutboundBytes);
      maxAb = Math.max(maxAb, process.memoryUsage().arrayBuffers - ab0);
    }
    figures[name] = { maxQueued, sentMB: sent / 1e6, arrayBuffersMB: maxAb / 1e6 };
    // Bounded: the limit plus what one turn's reads of a paused socket can add.
    assert.ok(maxQueued < MAX_OUTBOUND + 1024 * 1024, `${name}: router queued ${maxQueued} B for a peer that does not read`);
    assert.ok(ended, `${name}: the connection was not closed (sent ${sent} B)`);
    assert.is(r.stats.closes[WireCode.SLOW_CONSUMER], 1);
    assert.is(r.stats.slowConsumers, 1);
    sock.destroy();
    // The router still serves others.
    const other = net.connect(port, '127.0.0.1');
    await new Promise<void>((res) => other.once('connect', () => res()));
    other.write(Buffer.concat([encodePreamble(PROTOCOL_VERSION), ...codec.encodeRegister({})]));
    await new Promise<void>((res) => other.once('data', () => res()));
    other.destroy();
  } finally {
    await r.close();
  }
}

R('a PING flood whose PONGs are never read: queue bounded, connection closed as a slow consumer', async () => {
  const ping = encodePing(Buffer.alloc(64, 7));
  const b = Buffer.concat(Array.from({ length: 64 * 1024 / ping.length }, () => ping));
  await flood('ping', () => b);
});

R('SENDs to unknown IDs whose ERRORs are never read: queue bounded, connection closed as a slow consumer', async () => {
  await flood('unknown', (i) => {
    const parts: Buffer[] = [];
    for (let j = 0; j < 2000; j++) {
      const id = Buffer.alloc(16);
      id.writeUInt32BE(0x61, 0);
      id.writeUInt32BE(i * 2000 + j + 1, 12);
      parts.push(...encodeSend(id, j + 1, Buffer.alloc(4)));
    }
    return Buffer.concat(parts);
  });
});

R.after(() => {
  if (process.env['POSTERN_REPORT'] !== undefined) console.log(JSON.stringify(figures));
});

R.run();
