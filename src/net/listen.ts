import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * Binds `server` to `host`:`port`. Resolves with the bound address, or rejects with the
 * error that prevented binding (EADDRINUSE, EACCES, ...). Once bound, later server errors
 * go to `onError` (attached before the promise settles, so none is ever unhandled).
 */
export function bindServer(server: Server, port: number, host: string | undefined, onError: (err: NodeJS.ErrnoException) => void = () => {}): Promise<AddressInfo> {
  return new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}
