/**
 * `postern forward --listen host:port <id>`: a local TCP port whose every connection becomes
 * a stream to an agent that exposes a service.
 *
 * @module
 */
import type { Command } from 'commander';
import { createServer } from 'node:net';
import { ErrorCode, PosternError } from '../../src/index.js';
import { parseRouter, type RouterAddress } from '../args.js';
import { out } from '../common.js';
import { formatError } from '../output.js';
import { addTunnelOptions, dialWaiting, holdOpen, splice, type TunnelOptions } from './tunnel.js';
import { bindServer } from '../../src/net/listen.js';

interface ForwardOptions extends TunnelOptions {
  listen: RouterAddress;
}

/** Adds `forward` to `program`. */
export function addForwardCommand(program: Command): void {
  const cmd = program
    .command('forward')
    .description('listen on a local TCP port and carry each connection as a stream to an agent (postern expose)')
    .argument('<id>', 'the exposing agent\'s ID (32 hex digits)')
    .requiredOption('--listen <host:port>', 'local address to listen on, e.g. 127.0.0.1:2222 (port 0: any free port)', parseRouterOrZero);
  addTunnelOptions(cmd, 'key file: seal each OPEN with a proof of this key (for expose --allow-key)').addHelpText(
    'after',
    `
Prints "listening <host>:<port>", then one line on stderr per failed stream.

Example:
  postern forward --listen 127.0.0.1:2222 <id>
  ssh -p 2222 user@127.0.0.1`,
  );
  cmd.action(async (id: string, opts: ForwardOptions) => runForward(id, opts));
}

function parseRouterOrZero(v: string): RouterAddress {
  const m = /^(.*):0$/.exec(v.trim());
  if (m !== null) return { ...parseRouter(`${m[1]}:1`), port: 0 };
  return parseRouter(v);
}

async function runForward(id: string, opts: ForwardOptions): Promise<void> {
  if (!/^[0-9a-fA-F]{32}$/.test(id)) throw new PosternError(ErrorCode.INVALID_ID, 'an agent ID is 32 hex digits');
  const agent = await dialWaiting(opts);
  holdOpen();
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    let s;
    try {
      s = agent.openStream(id, { service: opts.service });
    } catch (err) {
      process.stderr.write(formatError(err) + '\n');
      socket.destroy();
      return;
    }
    splice(s, socket, (err) => {
      if (err !== undefined) process.stderr.write(formatError(err) + '\n');
    });
  });
  const a = await bindServer(server, opts.listen.port, opts.listen.host, (err) => process.stderr.write(formatError(err) + '\n'));
  out(`listening ${a.address}:${a.port}`);
  await new Promise<never>(() => undefined);
}
