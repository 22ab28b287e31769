import { createServer } from 'node:net';
import { exitWithParent, forwarderServer, portOf } from './lib/forward.js';
import { ControlCodec } from '../src/protocol/control.js';
import { encodePreamble } from '../src/protocol/encoder.js';
import { MAGIC, PROTOCOL_VERSION } from '../src/protocol/frame.js';

/**
 * The anchor of the `abuse` section: one process with two listeners, printed as
 * `READY <forwarder port> <null port>`.
 *
 * - The forwarder (the same protocol as forwarder-process.js): the normal pair goes through
 *   it, as through the router.
 * - The null router, which the attacker hits: it does as little as lets every attack run
 *   its loop. A connection whose first bytes are a postern preamble gets one canned
 *   preamble + REGISTERED, and what it sends next is read and dropped up to 256 KiB, then
 *   left unread; any other connection is closed after its first read (as the router turns
 *   strangers away).
 *
 * The pair's slowdown here is what the attack costs on this machine (kernel, accept,
 * reading its bytes, the attacker's own CPU) with no postern work at all; the router's
 * slowdown beyond it is what the router adds. Exits when its parent goes (stdin closes) or
 * on SIGTERM.
 */

const forwarder = forwarderServer();

// One canned answer for every client: the attackers only need an ID to address.
const ROUTER = 0x0000a11c;
const id = Buffer.alloc(16);
id.writeUInt32BE(ROUTER, 0);
id[15] = 1;
const ANSWER = Buffer.concat([
  encodePreamble(PROTOCOL_VERSION),
  ...new ControlCodec().encodeRegistered({ id, router: ROUTER, maxFrame: 1 << 20, keepalive: 60_000, timeout: 90_000 }),
]);
const magic = Buffer.from(MAGIC);

const nullRouter = createServer({ noDelay: true }, (sock) => {
  sock.on('error', () => {});
  sock.once('data', (d: Buffer) => {
    if (d.length >= magic.length && d.subarray(0, magic.length).equals(magic)) {
      sock.write(ANSWER);
      // What follows is read and dropped up to a socket buffer's worth, then no more: a
      // server that does nothing leaves a flood in the kernel's buffers, as the router's
      // limits and backpressure end it, rather than reading it at full speed. Reading that
      // much still notices a peer that hangs up after its REGISTER.
      let left = 256 * 1024;
      sock.on('data', (c: Buffer) => {
        left -= c.length;
        if (left <= 0) sock.pause();
      });
    } else {
      sock.destroy();
    }
  });
});

let listening = 0;
const ready = (): void => {
  if (++listening === 2) process.stdout.write(`READY ${portOf(forwarder)} ${portOf(nullRouter)}\n`);
};
forwarder.listen(0, '127.0.0.1', ready);
nullRouter.listen(0, '127.0.0.1', ready);
exitWithParent();
