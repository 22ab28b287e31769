/**
 * `postern expose --to host:port`: accept streams and connect each to a local TCP service
 * (ssh, a web server), optionally only from proven sender keys.
 *
 * @module
 */
import type { Command } from 'commander';
import { connect as netConnect } from 'node:net';
import { ErrorCode, formatPublicKey, parsePublicKey, PosternError } from '../../src/index.js';
import { ResetCode } from '../../src/stream/frame.js';
import type { Stream } from '../../src/stream/stream.js';
import { parseRouter, type RouterAddress } from '../args.js';
import { out } from '../common.js';
import { formatError } from '../output.js';
import { addTunnelOptions, dialWaiting, holdOpen, splice, type TunnelOptions } from './tunnel.js';

interface ExposeOptions extends TunnelOptions {
  to: RouterAddress;
  allowKey: string[];
}

/** Adds `expose` to `program`. */
export function addExposeCommand(program: Command): void {
  const cmd = program
    .command('expose')
    .description('accept streams from other agents and connect each to a local TCP service')
    .requiredOption('--to <host:port>', 'the service each stream is connected to, e.g. 127.0.0.1:22', parseRouter)
    .option('--allow-key <base64>', 'accept streams only from an agent proving this public key (repeatable; needs --key on both sides)', collect, [] as string[]);
  addTunnelOptions(cmd, 'key file (postern keygen): a stable ID derived from its key; publish the key and open sealed OPENs (needed for --allow-key)').addHelpText(
    'after',
    `
Prints "id <id>" (and "key <base64>" with --key), then one line on stderr per stream.
With --key the ID is the stable ID of that key on the router (PROTOCOL.md §15): the same
after reconnects and router restarts, so an ssh config can name it.
Waits for the router if it is not up yet, and reconnects when the connection is lost.
Others reach the service with "postern connect <id>" or "postern forward --listen ... <id>".
With --service, streams naming another service are refused (POSTERN_ERR_UNKNOWN_SERVICE).

Example (ssh to this machine, which accepts no inbound connection):
  postern expose --to 127.0.0.1:22
  # elsewhere: ssh -o ProxyCommand="postern connect <id>" user@host`,
  );
  cmd.action(async (opts: ExposeOptions) => runExpose(opts));
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

async function runExpose(opts: ExposeOptions): Promise<void> {
  const allowed = new Set<string>();
  for (const k of opts.allowKey) {
    try {
      allowed.add(Buffer.from(parsePublicKey(k)).toString('base64'));
    } catch {
      throw new PosternError(ErrorCode.INVALID_ARGUMENT, `--allow-key: not a base64 public key: ${k.slice(0, 60)}`);
    }
  }
  if (allowed.size > 0 && opts.key === undefined) throw new PosternError(ErrorCode.INVALID_ARGUMENT, '--allow-key needs --key: the opener proves its key in a sealed OPEN');
  const agent = await dialWaiting(opts, Infinity, true);
  holdOpen();
  out(`id ${agent.id}`);
  const pk = agent.publicKey;
  if (pk !== undefined) out(`key ${formatPublicKey(pk)}`);
  agent.on('status', (s) => {
    if (s.type === 'registered') out(`id ${s.id}`);
    else if (s.type === 'disconnected') process.stderr.write(`disconnected: ${formatError(s.error).replace(/^error: /, '')}\n`);
  });
  const target = opts.to;
  agent.on('stream', (s: Stream) => {
    const who = s.sender !== undefined ? `${s.peer} (key ${formatPublicKey(s.sender.publicKey)})` : s.peer;
    if (allowed.size > 0) {
      // The sealed OPEN proves the key; the router's `from` must be the ID the envelope names.
      const ok = s.sender !== undefined && s.sender.id === s.peer && allowed.has(s.sender.publicKey.toString('base64'));
      if (!ok) {
        process.stderr.write(`refused stream from ${who}: key not allowed\n`);
        s.reset(ResetCode.REFUSED, 'key not allowed');
        return;
      }
    }
    if (opts.service !== undefined && s.service !== opts.service) {
      s.reset(ResetCode.UNKNOWN_SERVICE, `no service ${JSON.stringify(s.service.slice(0, 60))}`);
      return;
    }
    process.stderr.write(`stream from ${who}\n`);
    const socket = netConnect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    let connected = false;
    socket.once('connect', () => {
      connected = true;
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (!connected) {
        process.stderr.write(`cannot reach ${target.host}:${target.port}: ${err.code ?? err.message}\n`);
        s.reset(ResetCode.TARGET_UNREACHABLE, err.code ?? 'connect failed');
      }
    });
    splice(s, socket);
  });
  await new Promise<never>(() => undefined);
}
