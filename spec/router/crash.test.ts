/**
 * Regression cases for crashes found against the whole router. Each case is a byte
 * sequence that once ended the process; it stays here for good.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { encodeRouteError, encodeSend, encodeSource } from '../../src/protocol/encoder.js';
import { FrameType, WireCode } from '../../src/protocol/frame.js';
import { readClose } from '../../src/protocol/control.js';
import { duplexPair, eventually, RawClient } from '../helpers/raw.js';
import { linkUp } from '../helpers/link.js';

const C = suite('router crash regressions');
const routers: Router[] = [];
const clients: RawClient[] = [];

C.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

const SECRET = 'a mesh secret of some length';

async function start(): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 0x51, meshSecret: SECRET });
  await r.listen();
  routers.push(r);
  return r;
}

/** A frame header with a declared length and type, and no body. */
function header(length: number, type: number, flags = 0): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt32BE(length, 0);
  b[4] = type;
  b[5] = flags;
  return b;
}

const violations: Array<[string, Buffer, number]> = [
  ['length below 2', Buffer.from([0, 0, 0, 1, 0x20, 0, 0, 0]), WireCode.MALFORMED],
  ['unknown critical type', header(2, 0x7e), WireCode.UNKNOWN_FRAME],
  ['oversized header', header(0xffffffff, FrameType.SEND), WireCode.FRAME_TOO_LARGE],
];

for (const [what, bad, code] of violations) {
  C(`a SEND to itself then ${what} in one write closes that agent, not the process`, async () => {
    const r = await start();
    const a = await RawClient.tcp(r.address()!.port);
    clients.push(a);
    const reg = await a.register();
    const other = await RawClient.tcp(r.address()!.port);
    clients.push(other);
    await other.register();
    a.write(Buffer.concat([...encodeSend(reg.id, 1, Buffer.from('to myself')), bad]));
    await eventually(() => a.frames.some((f) => f.type === FrameType.CLOSE), 2000, 'CLOSE');
    const close = a.frames.find((f) => f.type === FrameType.CLOSE)!;
    assert.is(readClose(close.bytes, 0, close.bytes.length).code, code);
    // the router is alive and still registers agents
    const late = await RawClient.tcp(r.address()!.port);
    clients.push(late);
    const lr = await late.register();
    assert.is(lr.id.length, 16);
  });
}

/** An ID of router 0x09 (the hand-made link peer's own router ID). */
const PEER_AGENT = Buffer.from('00000009aaaaaaaaaaaaaaaaaaaaaaaa', 'hex');

// On a link the loop went refuse -> encodeRouteError -> write -> writePending -> refuse.
const linkSequences: Array<[string, (bad: Buffer) => Buffer]> = [
  ['a SEND for its own router ID', (bad) => Buffer.concat([encodeSource(PEER_AGENT, 1), ...encodeSend(PEER_AGENT, 1, Buffer.from('back to you')), bad])],
  [
    'a SEND for its own router ID and a ROUTE_ERROR for one of its agents',
    (bad) =>
      Buffer.concat([
        encodeSource(PEER_AGENT, 1),
        ...encodeSend(PEER_AGENT, 1, Buffer.from('back to you')),
        encodeRouteError(WireCode.UNKNOWN_DESTINATION, 2, PEER_AGENT, PEER_AGENT),
        bad,
      ]),
  ],
];

for (const [seqWhat, make] of linkSequences) {
  for (const [what, bad, code] of violations) {
    C(`a link peer sends ${seqWhat} then ${what} in one write: that link closes, not the process`, async () => {
      const r = await start();
      const link = await RawClient.tcp(r.address()!.port);
      clients.push(link);
      assert.is(await linkUp(link, 0x09, SECRET), 0x51);
      await eventually(() => r.links().length === 1, 2000, 'link up');
      link.write(make(bad));
      await eventually(() => link.frames.some((f) => f.type === FrameType.CLOSE), 2000, 'CLOSE');
      const close = link.frames.find((f) => f.type === FrameType.CLOSE)!;
      assert.is(readClose(close.bytes, 0, close.bytes.length).code, code);
      await eventually(() => r.links().length === 0, 2000, 'link down');
      const late = await RawClient.tcp(r.address()!.port);
      clients.push(late);
      assert.is((await late.register()).id.length, 16);
    });
  }
}

C('a stream that throws while the router flushes to it closes that connection only; the others in the same flush get theirs', async () => {
  const r = await start();
  const [mine, theirs] = duplexPair();
  // The write of the first DELIVER to this stream throws, as a broken transport might.
  const write = theirs.write.bind(theirs) as (chunk: Buffer) => boolean;
  let armed = false;
  theirs.write = ((chunk: Buffer) => {
    if (armed && chunk[4] === FrameType.DELIVER) throw new Error('transport failure');
    return write(chunk);
  }) as typeof theirs.write;
  r.handle(theirs);
  const broken = new RawClient(mine);
  const bid = (await broken.register()).id;
  const ok = await RawClient.tcp(r.address()!.port);
  clients.push(ok);
  const oid = (await ok.register()).id;
  const sender = await RawClient.tcp(r.address()!.port);
  clients.push(sender);
  await sender.register();
  armed = true;
  // one write: both DELIVERs are written by the same flush, the broken one first
  sender.write(Buffer.concat([...encodeSend(bid, 1, Buffer.from('to broken')), ...encodeSend(oid, 2, Buffer.from('to ok'))]));
  await ok.until(() => ok.frames.length === 1, 2000, 'the DELIVER to the working agent');
  assert.is(ok.frames[0]!.type, FrameType.DELIVER);
  await eventually(() => broken.closed || broken.frames.some((f) => f.type === FrameType.CLOSE), 2000, 'the broken connection to end');
  assert.ok(r.stats.closes[WireCode.INTERNAL]! >= 1);
  const late = await RawClient.tcp(r.address()!.port);
  clients.push(late);
  assert.is((await late.register()).id.length, 16);
});

C.run();
