/**
 * What the agent commands (listen, send) share: the --router and --timeout options,
 * dialling, timeouts and stdout handling.
 *
 * @module
 */
import { Option, type Command } from 'commander';
import { readFileSync, statSync } from 'node:fs';
import { connect, ErrorCode, loadKeyFile, PosternError, type Agent, type AgentOptions, type KeyPair, type Message } from '../src/index.js';
import { DEFAULT_ROUTER, formatAddress, integerIn, parseRouter, type RouterAddress } from './args.js';
import { dialError, ExitStatus, formatError, messageJson, messagePlain } from './output.js';

/** `-r, --router <host:port>`, defaulting to POSTERN_ROUTER, then 127.0.0.1:7447. */
export function routerOption(): Option {
  return new Option('-r, --router <address>', 'router to dial: host:port ([v6]:port for IPv6; port defaults to 7447) or tls://host, wss://host/path, ...; a comma-separated list fails over in order')
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

/** What `--token`, `--token-file`, `--key` and `--anonymous` gave, for {@link dial}. */
export interface IdentityOptions {
  token?: string;
  tokenFile?: string;
  key?: string;
  anonymous?: boolean;
  /** --proxy, --ca, --pin, --insecure (PROTOCOL.md §13). */
  proxy?: string;
  ca?: string;
  pin?: string;
  insecure?: boolean;
}

/**
 * `--token`, `--token-file` (and POSTERN_TOKEN): the admission token a router may require.
 * A token on the command line is visible to every local user in `ps`; prefer the file or
 * the environment variable.
 */
export function addAdmissionOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--token <token>', 'admission token for a router that requires one (visible in ps: prefer --token-file or POSTERN_TOKEN)').env('POSTERN_TOKEN'))
    .option('--token-file <file>', 'read the admission token from the first line of this file')
    .option('--proxy <url>', 'dial through this proxy: http://[user:pass@]host:port, socks5://..., socks5h://...; "none" for no proxy (default: https_proxy / ALL_PROXY / NO_PROXY as curl reads them)')
    .option('--ca <file>', 'trust this PEM CA for tls://, wss://, https:// routers instead of the system CAs')
    .option('--pin <sha256/base64>', "also require the router certificate's public key to have this SPKI SHA-256 pin")
    .option('--insecure', 'do NOT verify the router certificate (testing only; warns every time)');
}

/**
 * Reads a small text file an option names; a missing or unreadable file is bad input
 * (POSTERN_ERR_CONFIG, exit status 2) naming the option.
 */
export function readOptionFile(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new PosternError(ErrorCode.CONFIG, `${option}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/**
 * Refuses a secret file that group or others may read or write, as a key file is refused
 * (POSTERN_ERR_KEY_FILE_INSECURE, exit 2): a mesh secret in a 0644 file lets every local user
 * join the mesh. systemd credentials (LoadCredential, %d/…) are 0400 and pass.
 */
export function checkSecretMode(path: string, option: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new PosternError(ErrorCode.CONFIG, `${option}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new PosternError(
      ErrorCode.KEY_FILE_INSECURE,
      `${option}: ${path} has mode 0${(mode & 0o777).toString(8)}; a secret file must not be accessible to group or others (chmod 600)`,
    );
  }
}

/** The first non-empty line of a secret file (mode checked), without surrounding white space. */
export function readSecretFile(path: string, option: string): string {
  checkSecretMode(path, option);
  const line = readOptionFile(path, option)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== '');
  if (line === undefined) throw new PosternError(ErrorCode.CONFIG, `${option}: ${path} is empty`);
  return line;
}

/** Agent options from `--token[-file]`, `--key` and `--anonymous`. */
export async function identity(opts: IdentityOptions): Promise<Pick<AgentOptions, 'token' | 'keyPair' | 'anonymous' | 'proxy' | 'ca' | 'pin' | 'insecure'>> {
  const token = opts.tokenFile !== undefined ? readSecretFile(opts.tokenFile, '--token-file') : opts.token;
  let keyPair: KeyPair | undefined;
  if (opts.key !== undefined) keyPair = await loadKeyFile(opts.key);
  // The flag wins over the environment; "none" turns both off.
  const proxy = opts.proxy === undefined ? 'env' : opts.proxy === 'none' ? false : opts.proxy;
  return { token, keyPair, anonymous: opts.anonymous === true, proxy, ca: opts.ca, pin: opts.pin, insecure: opts.insecure === true };
}

/** Connects (one attempt, bounded by `timeout`); errors name the router dialled. */
export async function dial(address: RouterAddress, timeout: number, reconnect: boolean, extra: AgentOptions = {}): Promise<Agent> {
  try {
    return await connect({ ...extra, router: address.list ?? address, reconnect, connectTimeout: timeout });
  } catch (err) {
    const target = address.list?.join(',') ?? formatAddress(address.host, address.port);
    const mapped = dialError(err, target);
    if (mapped !== err || !(err instanceof PosternError)) throw mapped;
    throw new PosternError(err.code, `router ${target}: ${err.message}`, { cause: err.cause, wireCode: err.wireCode });
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

/** How received messages and per-message errors are printed (listen, send --wait). */
export interface PrintOptions {
  json: boolean;
  base64: boolean;
}

/** Prints one line: stdout. */
export function out(line: string): void {
  process.stdout.write(line + '\n');
}

/**
 * Prints every message the agent receives (see `postern listen --help` for the formats),
 * envelopes that did not open (`rejected`), and refusals of what it sent (`undeliverable`).
 * `onMessage` sees each message after it is printed (listen -i remembers them to reply).
 */
export function printIncoming(agent: Agent, p: PrintOptions, onMessage?: (m: Message) => void): void {
  agent.on('message', (m) => {
    out(p.json ? messageJson(m.from, m.data, p.base64, m) : messagePlain(m.from, m.data, p.base64, m));
    onMessage?.(m);
  });
  agent.on('rejected', (r) => {
    if (p.json) out(JSON.stringify({ type: 'rejected', from: r.from, anonymous: r.anonymous, code: r.error.code }));
    else process.stderr.write(`rejected a sealed message from ${r.from}: ${r.error.code}\n`);
  });
  agent.on('undeliverable', (e) => {
    if (p.json) out(JSON.stringify({ type: 'undeliverable', to: e.to, seq: e.seq, code: e.code }));
    else process.stderr.write(`${formatError(e)}\n`);
  });
}
