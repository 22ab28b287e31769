/**
 * Regression cases for crashes found against the whole router. Each case is a byte
 * sequence that once ended the process; it stays here for good.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router } from '../../src/router/router.js';
import { encodeSend } from '../../src/protocol/encoder.js';
import { FrameType, WireCode } from '../../src/protocol/frame.js';
import { readClose } from '../../src/protocol/control.js';
import { eventually, RawClient } from '../helpers/raw.js';

const C = suite('router crash regressions');
const routers: Router[] = [];
const clients: RawClient[] = [];

C.after.each(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

async function start(): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port: 0, routerId: 0x51 });
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

C.run();
