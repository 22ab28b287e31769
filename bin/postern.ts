#!/usr/bin/env node
/**
 * The `postern` command: run a router, listen for messages, send one. A thin layer over
 * the library: it parses arguments, calls Router / connect(), prints, and maps each
 * error's `code` to an exit status (see {@link ExitStatus}).
 *
 * @module
 */
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { Router } from '../src/router/router.js';
import { connect, type Agent } from '../src/agent/index.js';
import { createLogger, type Logger, type LogLevel } from '../src/net/log.js';
import { DEFAULT_PORT } from '../src/protocol/frame.js';
import { ErrorCode, PosternError } from '../src/protocol/errors.js';
import { formatId, parseId, routerIdOf } from '../src/protocol/id.js';
import { DEFAULT_ROUTER, formatAddress, integerIn, parseListenPort, parseRouter, type RouterAddress } from './args.js';
import { ExitStatus, exitStatusFor, formatError, messageJson, messagePlain } from './output.js';

const VERSION = readVersion();

const EXIT_STATUS_HELP = `
Exit status:
  0  success (a router or listener stopped by SIGINT/SIGTERM also exits 0)
  1  unexpected failure (a bug: please report it)
  2  bad command line: unknown option, bad value, invalid agent ID
  3  the router refused the message, e.g. POSTERN_ERR_UNKNOWN_DESTINATION
  4  network: could not reach the router, the connection was closed or lost,
     or the router could not listen (e.g. EADDRINUSE)

Errors are printed on stderr as one line: error: POSTERN_ERR_<CODE>: <message>`;

/** Builds the command tree. */
function buildProgram(): Command {
  const program = new Command('postern')
    .description(
      'Peer-to-peer messaging over raw TCP. Agents dial out to a router, get an ID, and send ' +
        'messages to other agents by ID; the router relays them without revealing addresses.',
    )
    .version(VERSION, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help for a command')
    .helpCommand('help [command]', 'show help for a command')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      // Commander's own errors ("error: unknown option '--x'") get the usage code.
      outputError: (str, write) => write(`error: ${ErrorCode.INVALID_ARGUMENT}: ${str.replace(/^error: /, '').trimEnd()}\n`),
    })
    .exitOverride((err: CommanderError) => {
      process.exit(err.exitCode === 0 ? ExitStatus.OK : ExitStatus.USAGE);
    })
    .addHelpText(
      'after',
      `
Quick start:
  postern router                      # a router on 0.0.0.0:${DEFAULT_PORT}
  postern listen                      # prints "id <32 hex digits>", then messages
  postern send <id> hello             # the listener prints "<sender id> hello"

Agents dial ${DEFAULT_ROUTER} unless --router or POSTERN_ROUTER says otherwise.
${EXIT_STATUS_HELP}`,
    );

  addRouterCommand(program);
  addListenCommand(program);
  addSendCommand(program);
  addIdCommand(program);
  return program;
}

function routerOption(): Option {
  return new Option('-r, --router <host:port>', 'router to dial ([v6]:port for IPv6; port defaults to 7447)')
    .env('POSTERN_ROUTER')
    .default(parseRouter(DEFAULT_ROUTER), DEFAULT_ROUTER)
    .argParser(parseRouter);
}

function connectTimeoutOption(): Option {
  return new Option('--timeout <ms>', 'give up when the router has not registered us (or, for send, routed the message) within this many ms')
    .default(10_000)
    .argParser(integerIn(1, 3_600_000));
}

// ---------------------------------------------------------------------------------------
// postern router

interface RouterCommandOptions {
  host: string;
  port: number;
  routerId?: number;
  maxFrame?: number;
  keepalive?: number;
  logFormat: 'plain' | 'json';
  logAddresses: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

function addRouterCommand(program: Command): void {
  program
    .command('router')
    .description('run a router: accept agents, assign IDs, relay their messages')
    .option('-H, --host <host>', 'address to listen on', '0.0.0.0')
    .addOption(
      new Option('-p, --port <port>', 'TCP port to listen on; 0 picks a free one (see the listening line)')
        .default(DEFAULT_PORT)
        .argParser(parseListenPort),
    )
    .addOption(
      new Option('--router-id <n>', 'router ID embedded in every agent ID it issues (1..4294967295 or 0x hex; default random)').argParser(
        integerIn(1, 0xffffffff, true),
      ),
    )
    .addOption(
      new Option('--max-frame <bytes>', 'largest frame accepted and announced, length field included (default 1048576)').argParser(
        integerIn(0, Number.MAX_SAFE_INTEGER),
      ),
    )
    .addOption(
      new Option('--keepalive <ms>', 'keepalive interval announced to agents; silent connections close after 1.5x (default 30000)').argParser(
        integerIn(0, Number.MAX_SAFE_INTEGER),
      ),
    )
    .addOption(new Option('--log-format <format>', 'log line format').choices(['plain', 'json']).default('plain'))
    .option('--no-log-addresses', 'keep remote IP addresses out of the log')
    .addOption(new Option('-q, --quiet', 'log only the listening line, warnings and errors').conflicts('verbose'))
    .option('-v, --verbose', 'also log debug events')
    .addHelpText(
      'after',
      `
Logs one line per event on stdout. The first is always the listening line, e.g.
  2026-01-01T00:00:00.000Z INFO  listening host=0.0.0.0 port=7447 router=3054
or with --log-format json
  {"time":"…","level":"info","msg":"listening","host":"0.0.0.0","port":7447,"router":3054}
(router is the router ID, in decimal; agent IDs start with it as 8 hex digits).
SIGINT or SIGTERM closes every connection (CLOSE GOING_AWAY) and exits 0.

Examples:
  postern router                              # 0.0.0.0:${DEFAULT_PORT}, random router ID
  postern router --host 127.0.0.1 --port 0    # local only, any free port
  postern router --router-id 7 --keepalive 10000 --log-format json
  npm start                                   # the same as "postern router"`,
    )
    .action(async (opts: RouterCommandOptions) => runRouter(opts));
}

async function runRouter(opts: RouterCommandOptions): Promise<void> {
  const level: LogLevel = opts.quiet === true ? 'warn' : opts.verbose === true ? 'debug' : 'info';
  const logger = createLogger({ format: opts.logFormat, level });
  // The listening line goes out whatever the level: it is how a caller learns the port.
  const always = createLogger({ format: opts.logFormat, level: 'debug' });
  const routerLogger: Logger = {
    ...logger,
    info: (msg, fields) => (msg === 'listening' ? always.info(msg, fields) : logger.info(msg, fields)),
  };
  const router = new Router({
    host: opts.host,
    port: opts.port,
    routerId: opts.routerId,
    maxFrame: opts.maxFrame,
    keepaliveInterval: opts.keepalive,
    logAddresses: opts.logAddresses,
    logger: routerLogger,
  });
  await router.listen();

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // A second signal: the user does not want to wait for connections to drain.
        always.warn('forced exit', { signal });
        process.exit(ExitStatus.FAILURE);
      }
      stopping = true;
      logger.info('signal received', { signal });
      router.close().then(
        () => {
          resolve();
        },
        (err: unknown) => {
          always.error('close failed', { error: formatError(err) });
          process.exit(ExitStatus.FAILURE);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

// ---------------------------------------------------------------------------------------
// postern listen

interface ListenCommandOptions {
  router: RouterAddress;
  json?: boolean;
  base64?: boolean;
  timeout: number;
  reconnect: boolean;
}

function addListenCommand(program: Command): void {
  program
    .command('listen')
    .description('register with a router, print the assigned ID, then print every message received')
    .addOption(routerOption())
    .option('--json', 'one JSON object per line (see below)')
    .option('--base64', 'always print message data as base64, even when it is valid UTF-8')
    .option('--no-reconnect', 'exit (status 4, printing the code) when the connection is lost instead of reconnecting')
    .addOption(connectTimeoutOption())
    .addHelpText(
      'after',
      `
Output, plain (default):
  id <id>                      first, and again with the new ID after a reconnect
  <sender id> <text>           one line per message; one trailing newline of the
                               payload is dropped; a payload that is not valid UTF-8
                               prints as <sender id> base64:<data>
Output, --json (one object per line):
  {"type":"registered","id":"<id>"}                       first, and after a reconnect
  {"type":"message","from":"<id>","data":"<text>"}        payload is valid UTF-8
  {"type":"message","from":"<id>","data":"<b64>","encoding":"base64"}
                                                          payload is not valid UTF-8,
                                                          or --base64 was given
  {"type":"disconnected","code":"POSTERN_ERR_…","message":"…"}
  {"type":"reconnecting","attempt":1,"delay":250,"code":"POSTERN_ERR_…"}
In plain mode disconnects and reconnects are reported on stderr.
The agent reconnects by itself after losing the router (with jittered exponential backoff)
and gets a new ID when it does; with --no-reconnect it exits 4 instead.
Stop with Ctrl-C (exits 0).

Examples:
  postern listen
  postern listen --router 10.0.0.5:7447 --json
  POSTERN_ROUTER=[::1]:7447 postern listen --json | jq -r .data`,
    )
    .action(async (opts: ListenCommandOptions) => runListen(opts));
}

async function runListen(opts: ListenCommandOptions): Promise<void> {
  const json = opts.json === true;
  const base64 = opts.base64 === true;
  const out = (line: string): void => void process.stdout.write(line + '\n');
  exitQuietlyOnBrokenPipe();

  const agent = await dial(opts.router, opts.timeout, opts.reconnect);
  // The library's timers do not hold the process open (an embedding app decides its own
  // lifetime), so while the agent waits to reconnect nothing would: this does, until exit.
  setInterval(() => undefined, 0x7fffffff);
  let currentId = agent.id;
  out(json ? JSON.stringify({ type: 'registered', id: currentId }) : `id ${currentId}`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(ExitStatus.OK);
    stopping = true;
    agent.close().then(
      () => process.exit(ExitStatus.OK),
      () => process.exit(ExitStatus.OK),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  agent.on('status', (s) => {
    switch (s.type) {
      case 'registered':
        if (s.id !== currentId) {
          currentId = s.id;
          out(json ? JSON.stringify({ type: 'registered', id: currentId }) : `id ${currentId}`);
        }
        break;
      case 'disconnected':
        if (json) out(JSON.stringify({ type: 'disconnected', code: s.error.code, message: s.error.message }));
        else process.stderr.write(`disconnected: ${formatError(s.error).replace(/^error: /, '')}\n`);
        break;
      case 'reconnecting':
        if (json) out(JSON.stringify({ type: 'reconnecting', attempt: s.attempt, delay: s.delayMs, code: s.error.code }));
        else process.stderr.write(`reconnecting in ${s.delayMs} ms (attempt ${s.attempt})\n`);
        break;
      default:
        break;
    }
  });

  for await (const m of agent) {
    out(json ? messageJson(m.from, m.data, base64) : messagePlain(m.from, m.data, base64));
  }
  // The stream ends when the agent closes: by Ctrl-C (stop() exits), or because it gave up.
  const err = await agent.closed();
  if (!stopping) throw err ?? new PosternError(ErrorCode.CLOSED, 'the agent closed');
  await new Promise<never>(() => undefined); // stop() exits the process
}

// ---------------------------------------------------------------------------------------
// postern send

interface SendCommandOptions {
  router: RouterAddress;
  timeout: number;
}

function addSendCommand(program: Command): void {
  program
    .command('send')
    .description('send one message to an agent, wait until the router has routed it, and exit')
    .argument('<id>', 'destination agent ID (32 hex digits, as printed by "postern listen")')
    .argument('[message]', 'the message as UTF-8 text; read from stdin (raw bytes, until EOF) when omitted')
    .addOption(routerOption())
    .addOption(connectTimeoutOption())
    .addHelpText(
      'after',
      `
Exits 0 once the router has routed the message (its delivery is not acknowledged:
see README.md, "Delivery"). Exits 3 and prints the code when the router refused it,
e.g. "error: POSTERN_ERR_UNKNOWN_DESTINATION: …" for an ID no agent holds.

Examples:
  postern send 00000bee6c1f9e0a4d2b7c5e81f3a9d2 hello
  echo "hello from a pipe" | postern send 00000bee6c1f9e0a4d2b7c5e81f3a9d2
  postern send --router 10.0.0.5:7447 <id> < photo.jpg`,
    )
    .action(async (id: string, message: string | undefined, opts: SendCommandOptions) => runSend(id, message, opts));
}

async function runSend(id: string, message: string | undefined, opts: SendCommandOptions): Promise<void> {
  const to = formatId(parseId(id));
  let data: Buffer;
  if (message !== undefined) {
    data = Buffer.from(message, 'utf8');
  } else {
    if (process.stdin.isTTY === true) process.stderr.write('reading the message from stdin; end it with Ctrl-D\n');
    data = await readStdin();
  }

  const agent = await dial(opts.router, opts.timeout, false);
  const refusals: PosternError[] = [];
  agent.on('undeliverable', (err: PosternError) => refusals.push(err));
  try {
    const seq = agent.send(to, data);
    // The agent drops a silent connection after the announced keepalive timeout; this bound
    // only keeps a stuck router from holding a script longer than the user asked.
    await withTimeout(agent.flush(), opts.timeout, () => new PosternError(ErrorCode.NOT_SENT, `the router did not answer within ${opts.timeout} ms`));
    const refusal = refusals.find((e) => e.seq === seq) ?? refusals[0];
    if (refusal !== undefined) {
      throw new PosternError(refusal.code, `the router refused the message to ${to}: ${refusal.message}`, { seq: refusal.seq, to: refusal.to, wireCode: refusal.wireCode });
    }
  } finally {
    await agent.close().catch(() => undefined);
  }
}

function readStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.once('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.once('error', reject);
  });
}

// ---------------------------------------------------------------------------------------
// postern id

function addIdCommand(program: Command): void {
  program
    .command('id')
    .description('check an agent ID and show which router issued it')
    .argument('<id>', 'agent ID (32 hex digits, either case)')
    .option('--json', 'print {"id":"…","routerId":N,"routerIdHex":"…"}')
    .addHelpText(
      'after',
      `
An agent ID is 16 bytes written as 32 hex digits: the first 8 are the ID of the router
that issued it, the other 24 are random. Exits 2 for anything that is not a valid ID.

Examples:
  postern id 00000bee6c1f9e0a4d2b7c5e81f3a9d2
  postern id 00000BEE6C1F9E0A4D2B7C5E81F3A9D2 --json`,
    )
    .action((id: string, opts: { json?: boolean }) => {
      const buf = parseId(id);
      const routerId = routerIdOf(buf);
      const routerIdHex = routerId.toString(16).padStart(8, '0');
      if (opts.json === true) {
        process.stdout.write(JSON.stringify({ id: formatId(buf), routerId, routerIdHex }) + '\n');
      } else {
        process.stdout.write(`id ${formatId(buf)}\nrouter ${routerId} (0x${routerIdHex})\n`);
      }
    });
}

// ---------------------------------------------------------------------------------------
// shared

/** Connects an agent to `address`; rejects with a coded error when not registered in time. */
/** Connects (one attempt, bounded by `timeout`); errors name the router dialled. */
async function dial(address: RouterAddress, timeout: number, reconnect: boolean): Promise<Agent> {
  try {
    return await connect({ router: address, reconnect, connectTimeout: timeout });
  } catch (err) {
    if (!(err instanceof PosternError)) throw err;
    throw new PosternError(err.code, `router ${formatAddress(address.host, address.port)}: ${err.message}`, { cause: err.cause, wireCode: err.wireCode });
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
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

function exitQuietlyOnBrokenPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitStatus.OK);
    throw err;
  });
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Runs the CLI with `argv` and exits with the mapped status. */
async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
    // Exit explicitly: a stray unref'd timer or half-closed socket must not keep us alive.
    process.exit(ExitStatus.OK);
  } catch (err) {
    process.stderr.write(formatError(err) + '\n');
    process.exit(exitStatusFor(err));
  }
}

await main(process.argv);
