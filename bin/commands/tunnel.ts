/**
 * What `postern expose`, `forward` and `connect` share: dialling with a wait for the
 * router, splicing a stream to a socket, and exit statuses for stream errors.
 *
 * @module
 */
import { Option, type Command } from 'commander';
import type { Duplex } from 'node:stream';
import { connect, ErrorCode, PosternError, type Agent } from '../../src/index.js';
import type { RouterAddress } from '../args.js';
import { formatAddress } from '../args.js';
import { addAdmissionOptions, connectTimeoutOption, identity, routerOption, type IdentityOptions } from '../common.js';
import { ExitStatus, exitStatusFor } from '../output.js';

/** Options every tunnel command takes. */
export interface TunnelOptions extends IdentityOptions {
  router: RouterAddress;
  timeout: number;
  service?: string;
}

/** Adds --router, --timeout, --key, --service and the admission options. */
export function addTunnelOptions(cmd: Command, keyHelp: string): Command {
  cmd
    .addOption(routerOption())
    .addOption(connectTimeoutOption())
    .option('-k, --key <file>', keyHelp)
    .addOption(new Option('--service <name>', 'service name carried when the stream opens (at most 255 bytes)'));
  return addAdmissionOptions(cmd);
}

/**
 * Connects, waiting for a router that is not up yet (retried with backoff, each attempt
 * bounded by --timeout); stays connected, reconnecting, afterwards.
 */
export async function dialWaiting(opts: TunnelOptions, maxAttempts = Infinity, stable = false): Promise<Agent> {
  const id = await identity(opts);
  try {
    // A stable ID (PROTOCOL.md §15) when asked and a key is there: the address survives router restarts.
    const stableId = stable && id.keyPair !== undefined;
    return await connect({ ...id, router: opts.router, connectTimeout: opts.timeout, waitForRouter: true, maxReconnectAttempts: maxAttempts, stableId });
  } catch (err) {
    if (!(err instanceof PosternError)) throw err;
    throw new PosternError(err.code, `router ${formatAddress(opts.router.host, opts.router.port)}: ${err.message}`, { cause: err.cause, wireCode: err.wireCode });
  }
}

/** Stream codes the user caused or the peer decided: the stream was refused (exit 3). */
const REFUSED = new Set<string>([ErrorCode.STREAM_REFUSED, ErrorCode.UNKNOWN_SERVICE, ErrorCode.STREAM_RESET, ErrorCode.TIMEOUT]);

/** Exit status for a tunnel error: refused streams 3, the rest as for other commands. */
export function tunnelExitStatus(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && REFUSED.has(code)) return ExitStatus.REFUSED;
  return exitStatusFor(err);
}

/**
 * Splices a stream and a socket both ways with half-close: each side's end ends the other's
 * writing; an error on either destroys both (the stream is then reset).
 */
export function splice(stream: Duplex, socket: Duplex, onDone?: (err: Error | undefined) => void): void {
  let done = false;
  let ended = 0;
  const finish = (err: Error | undefined): void => {
    if (done) return;
    done = true;
    if (err !== undefined) {
      stream.destroy(err);
      socket.destroy();
    }
    onDone?.(err);
  };
  stream.pipe(socket);
  socket.pipe(stream);
  const closed = (): void => {
    if (++ended === 2) finish(undefined);
  };
  stream.on('error', (e: Error) => finish(e));
  socket.on('error', (e: Error) => finish(e));
  stream.on('close', closed);
  socket.on('close', closed);
}

/** Holds the process open (the library's timers do not). */
export function holdOpen(): void {
  setInterval(() => undefined, 0x7fffffff);
}
