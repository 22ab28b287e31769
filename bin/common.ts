/**
 * What the agent commands (listen, send) share: the --router and --timeout options,
 * dialling, timeouts and stdout handling.
 *
 * @module
 */
import { Option } from 'commander';
import { connect, PosternError, type Agent } from '../src/index.js';
import { DEFAULT_ROUTER, formatAddress, integerIn, parseRouter, type RouterAddress } from './args.js';
import { ExitStatus } from './output.js';

/** `-r, --router <host:port>`, defaulting to POSTERN_ROUTER, then 127.0.0.1:7447. */
export function routerOption(): Option {
  return new Option('-r, --router <host:port>', 'router to dial ([v6]:port for IPv6; port defaults to 7447)')
    .env('POSTERN_ROUTER')
    .default(parseRouter(DEFAULT_ROUTER), DEFAULT_ROUTER)
    .argParser(parseRouter);
}

/** `--timeout <ms>`: how long to wait for the router. */
export function connectTimeoutOption(): Option {
  return new Option('--timeout <ms>', 'give up when the router has not registered us (or, for send, routed the message) within this many ms')
    .default(10_000)
    .argParser(integerIn(1, 3_600_000));
}

/** Connects (one attempt, bounded by `timeout`); errors name the router dialled. */
export async function dial(address: RouterAddress, timeout: number, reconnect: boolean): Promise<Agent> {
  try {
    return await connect({ router: address, reconnect, connectTimeout: timeout });
  } catch (err) {
    if (!(err instanceof PosternError)) throw err;
    throw new PosternError(err.code, `router ${formatAddress(address.host, address.port)}: ${err.message}`, { cause: err.cause, wireCode: err.wireCode });
  }
}

/** `promise`, or a rejection with `error()` after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(error()), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** `postern listen | head -1`: a closed stdout ends the command quietly. */
export function exitQuietlyOnBrokenPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitStatus.OK);
    throw err;
  });
}
