import { exitWithParent, forwarderServer, portOf } from './lib/forward.js';

/**
 * The ceiling: a plain TCP forwarder with no framing at all (see lib/forward.ts). Prints
 * `READY <port>`; exits when its parent goes (stdin closes) or on SIGTERM.
 */
const server = forwarderServer();
server.listen(0, '127.0.0.1', () => process.stdout.write(`READY ${portOf(server)}\n`));
exitWithParent();
