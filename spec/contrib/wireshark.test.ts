/**
 * The Wireshark dissector (contrib/wireshark/postern.lua) read by tshark from a pcap of real
 * traffic: the bytes a real router and two raw agents exchanged over loopback, written
 * into a pcap with synthetic IPv4/TCP headers. The test chooses the segmentation, so the
 * capture holds a frame split across two segments and several frames in one segment, and
 * one connection on port 7447 and one on another port (found by the heuristic).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router } from '../../src/router/router.js';
import { encodePreamble, encodeSend } from '../../src/protocol/encoder.js';
import { FrameType } from '../../src/protocol/frame.js';
import { createLogger } from '../../src/net/log.js';
import { RawClient } from '../helpers/raw.js';

const T = suite('wireshark dissector');
const SCRIPT = fileURLToPath(new URL('../../../contrib/wireshark/postern.lua', import.meta.url));
const TSHARK = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0 ? 'tshark' : null;

/** One TCP connection's payload, as the segments to put in the capture. */
interface Conn {
  clientPort: number;
  serverPort: number;
  /** [fromClient, bytes] in capture order. */
  segments: [boolean, Buffer][];
}

function checksum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** A pcap (LINKTYPE_RAW, IPv4) of the connections, with a handshake each. */
function pcap(conns: Conn[]): Buffer {
  const out: Buffer[] = [];
  const g = Buffer.alloc(24);
  g.writeUInt32LE(0xa1b2c3d4, 0);
  g.writeUInt16LE(2, 4);
  g.writeUInt16LE(4, 6);
  g.writeUInt32LE(262144, 16);
  g.writeUInt32LE(101, 20); // LINKTYPE_RAW
  out.push(g);
  let usec = 0;
  const packet = (c: Conn, fromClient: boolean, seq: number, ack: number, flags: number, payload: Buffer): void => {
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(40 + payload.length, 2);
    ip[8] = 64;
    ip[9] = 6;
    Buffer.from(fromClient ? [127, 0, 0, 1] : [127, 0, 0, 2]).copy(ip, 12);
    Buffer.from(fromClient ? [127, 0, 0, 2] : [127, 0, 0, 1]).copy(ip, 16);
    ip.writeUInt16BE(checksum(ip), 10);
    const tcp = Buffer.alloc(20);
    tcp.writeUInt16BE(fromClient ? c.clientPort : c.serverPort, 0);
    tcp.writeUInt16BE(fromClient ? c.serverPort : c.clientPort, 2);
    tcp.writeUInt32BE(seq >>> 0, 4);
    tcp.writeUInt32BE(ack >>> 0, 8);
    tcp[12] = 0x50;
    tcp[13] = flags;
    tcp.writeUInt16BE(65535, 14);
    const rec = Buffer.alloc(16);
    usec += 1000;
    rec.writeUInt32LE(1_700_000_000 + Math.floor(usec / 1e6), 0);
    rec.writeUInt32LE(usec % 1e6, 4);
    rec.writeUInt32LE(40 + payload.length, 8);
    rec.writeUInt32LE(40 + payload.length, 12);
    out.push(rec, ip, tcp, payload);
  };
  for (const c of conns) {
    let cs = 1000;
    let ss = 5000;
    packet(c, true, cs, 0, 0x02, Buffer.alloc(0));
    packet(c, false, ss, cs + 1, 0x12, Buffer.alloc(0));
    cs++;
    ss++;
    packet(c, true, cs, ss, 0x10, Buffer.alloc(0));
    for (const [fromClient, bytes] of c.segments) {
      if (fromClient) {
        packet(c, true, cs, ss, 0x18, bytes);
        cs += bytes.length;
      } else {
        packet(c, false, ss, cs, 0x18, bytes);
        ss += bytes.length;
      }
    }
  }
  return Buffer.concat(out);
}

/** A real exchange: A and B register, A sends to B and to an unknown ID, B gets a DELIVER, A an ERROR. */
async function exchange(): Promise<{ a: Conn; b: Conn }> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 7, logger: createLogger({ level: 'error', format: 'json', write: () => {} }) });
  await r.listen();
  const port = r.address()!.port;
  const a = await RawClient.tcp(port);
  const b = await RawClient.tcp(port);
  const aOut: Buffer[] = [];
  const bOut: Buffer[] = [];
  const hello = (c: RawClient, o: Buffer[], body: Record<string, unknown>): void => {
    const bytes = Buffer.concat([encodePreamble(1), ...c.codec.encodeRegister(body)]);
    o.push(bytes);
    c.write(bytes);
  };
  hello(a, aOut, { anonymous: false });
  hello(b, bOut, { key: Buffer.alloc(32, 0x5b) });
  await a.until(() => a.frames.length >= 1);
  await b.until(() => b.frames.length >= 1);
  const idB = b.codec.decodeRegistered(b.frames[0]!.bytes, 0, b.frames[0]!.bytes.length).id;
  const unknown = Buffer.from('00000007' + 'cc'.repeat(12), 'hex');
  const sends = Buffer.concat([
    ...encodeSend(idB, 1, Buffer.from('hello through postern')),
    ...encodeSend(idB, 2, Buffer.from('second'), 0x04),
    ...encodeSend(unknown, 3, Buffer.from('to nobody')),
  ]);
  aOut.push(sends);
  a.write(sends);
  await b.until(() => b.frames.filter((f) => f.type === FrameType.DELIVER).length === 2);
  await a.until(() => a.frames.some((f) => f.type === FrameType.ERROR));
  a.destroy();
  b.destroy();
  await r.close();
  const aIn = Buffer.concat(a.raw);
  const bIn = Buffer.concat(b.raw);
  // A: its preamble+REGISTER in one segment, the router's preamble+REGISTERED split in
  // the middle of REGISTERED, the three SENDs in one segment, the ERROR as it came.
  const aSplit = 8 + 20;
  let connA: Conn;
  // Keep the order: REGISTERED rest, then our SENDs, then the ERROR.
  const regEnd = 8 + 4 + aIn.readUInt32BE(8);
  connA = { clientPort: 40001, serverPort: 7447, segments: [] };
  connA.segments = [
    [true, aOut[0]!],
    [false, aIn.subarray(0, aSplit)],
    [false, aIn.subarray(aSplit, regEnd)],
    [true, aOut[1]!],
    [false, aIn.subarray(regEnd)],
  ];
  // B, on port 23456 (heuristic): the first DELIVER split across two segments, the second
  // sent with the end of the first.
  const regEndB = 8 + 4 + bIn.readUInt32BE(8);
  const cut = regEndB + 30;
  const connB: Conn = {
    clientPort: 40002,
    serverPort: 23456,
    segments: [
      [true, bOut[0]!],
      [false, bIn.subarray(0, regEndB)],
      [false, bIn.subarray(regEndB, cut)],
      [false, bIn.subarray(cut)],
    ],
  };
  return { a: connA, b: connB };
}

T('tshark with the dissector shows a registration, a relayed message and an ERROR', async () => {
  if (TSHARK === null) {
    console.log('  skipped: tshark is not installed (spec/net/deps.sh installs it)');
    return;
  }
  const { a, b } = await exchange();
  const dir = mkdtempSync(join(tmpdir(), 'postern-ws-'));
  try {
    const file = join(dir, 'postern.pcap');
    writeFileSync(file, pcap([a, b]));
    const fields = ['tcp.srcport', 'postern.type_name', 'postern.body.id', 'postern.to', 'postern.from', 'postern.seq', 'postern.code_name', 'postern.flags.names', 'postern.payload', 'postern.version'];
    const text = execFileSync(
      TSHARK,
      ['-n', '-X', `lua_script:${SCRIPT}`, '-r', file, '-Y', 'postern', '-T', 'fields', '-E', 'separator=|', '-E', 'aggregator=;', ...fields.flatMap((x) => ['-e', x])],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const rows = text.trim().split('\n').map((l) => l.split('|'));
    const col = (name: string): number => fields.indexOf(name);
    const all = (name: string): string[] => rows.flatMap((r) => (r[col(name)] ?? '').split(';')).filter((x) => x.length > 0);
    const types = all('postern.type_name');
    for (const t of ['REGISTER', 'REGISTERED', 'SEND', 'DELIVER', 'ERROR']) assert.ok(types.includes(t), `no ${t} in:\n${text}`);
    assert.is(types.filter((t) => t === 'REGISTER').length, 2, 'both REGISTERs (one per connection, the second found by the heuristic)');
    assert.is(types.filter((t) => t === 'REGISTERED').length, 2, 'both REGISTEREDs, one of them reassembled from two segments');
    assert.is(types.filter((t) => t === 'SEND').length, 3, 'three SENDs packed in one segment');
    assert.is(types.filter((t) => t === 'DELIVER').length, 2, 'two DELIVERs, the first split across segments');
    // the registration: REGISTERED's id is the MessagePack bin shown as hex
    const ids = all('postern.body.id');
    assert.ok(ids.some((x) => /^00000007[0-9a-f]{24}$/.test(x)), `REGISTERED id: ${ids.join(',')}`);
    // the relayed message: DELIVER payload "hello through postern", flags by name
    assert.ok(all('postern.payload').includes(Buffer.from('hello through postern').toString('hex')) || text.includes(Buffer.from('hello through postern').toString('hex').replace(/(..)/g, '$1:').slice(0, -1)));
    assert.ok(all('postern.flags.names').includes('SEALED'), 'the SEALED flag by name');
    // the ERROR: UNKNOWN_DESTINATION for seq 3
    assert.ok(all('postern.code_name').includes('UNKNOWN_DESTINATION'), `codes: ${all('postern.code_name').join(',')}`);
    assert.ok(all('postern.version').includes('1'));
  } finally {
    if (process.env.KEEP_PCAP === undefined) rmSync(dir, { recursive: true, force: true });
    else console.log(dir);
  }
});

T.run();
