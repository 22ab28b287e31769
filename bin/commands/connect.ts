/**
 * `postern connect <id>`: stdin and stdout as one stream to an agent that exposes a service,
 * e.g. `ssh -o ProxyCommand="postern connect <id>" host`.
 *
 * @module
 */
import type { Command } from 'commander';
import { ErrorCode, PosternError } from '../../src/index.js';
import { formatError } from '../output.js';
import { addTunnelOptions, dialWaiting, holdOpen, tunnelExitStatus, type TunnelOptions } from './tunnel.js';

/** Adds `connect` to `program`. */
export function addConnectCommand(program: Command): void {
  const cmd = program
    .command('connect')
    .description('open a stream to an agent (postern expose) and join it to stdin/stdout')
    .argument('<id>', 'the exposing agent\'s ID (32 hex digits)');
  addTunnelOptions(cmd, 'key file: seal the OPEN with a proof of this key (for expose --allow-key)').addHelpText(
    'after',
    `
Exits 0 when both directions have ended, 3 when the stream is refused or reset
(POSTERN_ERR_STREAM_REFUSED, POSTERN_ERR_UNKNOWN_SERVICE, POSTERN_ERR_STREAM_RESET,
POSTERN_ERR_TIMEOUT), 3 with POSTERN_ERR_UNKNOWN_DESTINATION for a peer that is gone,
4 for network errors.

Example:
  ssh -o ProxyCommand="postern connect <id>" user@host`,
  );
  cmd.action(async (id: string, opts: TunnelOptions) => runConnect(id, opts));
}

async function runConnect(id: string, opts: TunnelOptions): Promise<void> {
  if (!/^[0-9a-fA-F]{32}$/.test(id)) throw new PosternError(ErrorCode.INVALID_ID, 'an agent ID is 32 hex digits');
  const agent = await dialWaiting(opts, 8);
  holdOpen();
  const s = agent.openStream(id, { service: opts.service });
  await new Promise<void>((resolve) => {
    let fail: Error | undefined;
    s.on('error', (err: Error) => {
      fail = err;
    });
    s.on('close', () => {
      if (fail !== undefined) {
        process.stderr.write(formatError(fail) + '\n');
        process.exit(tunnelExitStatus(fail));
      }
      resolve();
    });
    process.stdin.pipe(s);
    s.pipe(process.stdout);
  });
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  await agent.close();
}
