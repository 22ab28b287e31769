/**
 * `postern router`: run a router, logging one line per event on stdout.
 *
 * @module
 */
import { Option, type Command } from 'commander';
import { createLogger, DEFAULT_PORT, Router, type Logger, type LogLevel } from '../../src/index.js';
import { integerIn, parseListenPort } from '../args.js';
import { ExitStatus, formatError } from '../output.js';

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

/** Adds `router` to `program`. */
export function addRouterCommand(program: Command): void {
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
SIGINT or SIGTERM closes every connection (CLOSE GOING_AWAY) and exits 0; a second
signal exits at once with status 1.

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
