import { createServer, type Server, type Socket } from 'node:net';

/**
 * The ceiling: a plain TCP forwarder with no framing at all. Each client opens with a 5-byte
 * hello (`S` or `R`, then a u32 BE pair number) and gets one byte back (0x01); after that
 * every byte from sender N is piped to receiver N with `pipe()` (which honours backpressure).
 * The load generator writes exactly the bytes it would write to the router, so both see the
 * same traffic. Not listening yet: the caller listens.
 */
export function forwarderServer(): Server {
  const senders = new Map<number, Socket>();
  const receivers = new Map<number, Socket>();

  const join = (n: number): void => {
    const s = senders.get(n);
    const r = receivers.get(n);
    if (s === undefined || r === undefined) return;
    senders.delete(n);
    receivers.delete(n);
    s.pipe(r);
    s.resume();
    s.on('error', () => r.destroy());
    r.on('error', () => s.destroy());
    r.on('close', () => s.destroy());
  };

  return createServer({ noDelay: true }, (sock) => {
    let hello = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      hello = Buffer.concat([hello, d]);
      if (hello.length < 5) return;
      sock.off('data', onData);
      sock.pause();
      const role = hello[0];
      const n = hello.readUInt32BE(1);
      const rest = hello.subarray(5);
      if (rest.length > 0) sock.unshift(rest);
      sock.write(Buffer.of(1));
      if (role === 0x53) senders.set(n, sock);
      else receivers.set(n, sock);
      join(n);
    };
    sock.on('data', onData);
    sock.on('error', () => {});
  });
}

/** The port `server` listens on (0 when it does not). */
export function portOf(server: Server): number {
  const a = server.address();
  return typeof a === 'object' && a !== null ? a.port : 0;
}

/** Exits this process when its parent goes (stdin closes) or on SIGTERM. */
export function exitWithParent(): void {
  const stop = (): void => process.exit(0);
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
