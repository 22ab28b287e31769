/**
 * Helper process for spec/net/firewall.test.ts: plain TCP, to show what the firewall does
 * to a connection that is not postern's.
 *
 * - `node-probe.js listen HOST PORT`: a TCP server; prints `{"listening":PORT}`, then
 *   `{"accepted":REMOTE_ADDRESS}` per connection. Ends when stdin ends.
 * - `node-probe.js connect HOST PORT TIMEOUT_MS`: one connection attempt; prints
 *   `{"connected":true}` or `{"connected":false,"error":CODE}` (`TIMEOUT` when nothing
 *   answered within TIMEOUT_MS) and exits.
 */
import net from 'node:net';
import { commands, describe, emit } from './io.js';

function listen(host: string, port: number): void {
  const server = net.createServer((socket) => {
    emit({ accepted: socket.remoteAddress ?? '' });
    socket.end();
  });
  server.on('error', (err) => {
    emit({ fatal: describe(err) });
    process.exit(1);
  });
  server.listen(port, host, () => {
    emit({ listening: (server.address() as net.AddressInfo).port });
    commands(
      () => undefined,
      () => new Promise<void>((resolve) => server.close(() => resolve())),
    );
  });
}

function probe(host: string, port: number, timeoutMs: number): void {
  const socket = net.connect({ host, port });
  const done = (result: Record<string, unknown>): void => {
    clearTimeout(timer);
    socket.destroy();
    emit(result);
    process.exit(0);
  };
  const timer = setTimeout(() => done({ connected: false, error: 'TIMEOUT' }), timeoutMs);
  socket.once('connect', () => done({ connected: true }));
  socket.once('error', (err: NodeJS.ErrnoException) => done({ connected: false, error: err.code ?? err.message }));
}

const [mode, host = '', port = '0', timeout = '1000'] = process.argv.slice(2);
if (mode === 'listen') listen(host, Number(port));
else if (mode === 'connect') probe(host, Number(port), Number(timeout));
else {
  emit({ fatal: 'usage: node-probe.js listen HOST PORT | connect HOST PORT TIMEOUT_MS' });
  process.exit(1);
}
