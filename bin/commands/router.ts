/**
 * `postern router`: run a router from flags and/or a JSON config file, logging one line
 * per event on stdout; SIGTERM/SIGINT drain, SIGHUP reloads the config file's limits and
 * admission tokens; readiness is reported to systemd when NOTIFY_SOCKET is set.
 *
 * @module
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { spawn } from 'node:child_process';
import {
  createLogger,
  DEFAULT_PORT,
  describeConfig,
  loadConfig,
  RELOADABLE,
  resolveConfig,
  Router,
  startMetricsServer,
  type Logger,
  type LogLevel,
  type MetricsServer,
  type ResolvedConfig,
  type RouterConfig,
  type RouterOptions,
} from '../../src/index.js';
import { stdoutIsJournal } from '../../src/net/log.js';
import { PACKAGE_VERSION } from '../../src/router/metrics.js';
import { integerIn, parseListenPort } from '../args.js';
import { checkSecretMode, readOptionFile, readSecretFile } from '../common.js';
import { ExitStatus, formatError, listenError } from '../output.js';

interface RouterCommandOptions {
  config?: string;
  checkConfig?: string;
  host?: string;
  port?: number;
  routerId?: number;
  maxFrame?: number;
  keepalive?: number;
  peer?: string[];
  meshSecretFile?: string;
  resumeSecretFile?: string;
  tokenFile?: string;
  metrics?: string | false;
  logFormat?: 'plain' | 'json';
  logPrefix?: 'auto' | 'syslog' | 'none';
  logLevel?: LogLevel;
  logAddresses?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

const PEER_RE = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/;

function parsePeer(value: string, previous: string[] | undefined): string[] {
  const m = PEER_RE.exec(value.trim());
  if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new InvalidArgumentError('Expected host:port, e.g. 10.0.0.2:7447.');
  return [...(previous ?? []), value.trim()];
}

function parseMetrics(value: string): string {
  const m = PEER_RE.exec(value.trim());
  if (m === null || Number(m[2]) > 65535) throw new InvalidArgumentError('Expected host:port, e.g. 127.0.0.1:9447 (port 0: any free port).');
  return value.trim();
}

/** Adds `router` to `program`. */
export function addRouterCommand(program: Command): void {
  program
    .command('router')
    .description('run a router: accept agents, assign IDs, relay their messages')
    .option('-c, --config <file>', 'JSON config file (every router option, plus log, metrics, drain); flags override it')
    .option('--check-config <file>', 'validate a config file (with the other flags applied), print the effective config as JSON with secrets masked, exit')
    .option('-H, --host <host>', 'address to listen on (default 0.0.0.0)')
    .addOption(new Option('-p, --port <port>', `TCP port to listen on; 0 picks a free one (default ${DEFAULT_PORT})`).argParser(parseListenPort))
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
    .addOption(new Option('--peer <host:port>', 'link with this peer router (repeat for more; replaces "peers" of the config file)').argParser(parsePeer))
    .option('--mesh-secret-file <file>', 'file holding the mesh secret (16+ characters, first line); or POSTERN_MESH_SECRET')
    .option('--resume-secret-file <file>', 'file holding the resume secret (16+ characters, first line), so IDs survive a restart; or POSTERN_RESUME_SECRET')
    .option('--token-file <file>', 'admission tokens, one per line (# comments and blank lines skipped): agents must present one')
    .addOption(new Option('--metrics <host:port>', 'serve Prometheus /metrics and /healthz here (port 0: any free port)').argParser(parseMetrics))
    .option('--no-metrics', 'no metrics listener, even if the config file has one')
    .addOption(new Option('--log-format <format>', 'log line format (default plain)').choices(['plain', 'json']))
    .addOption(new Option('--log-level <level>', 'lowest level logged (default info)').choices(['debug', 'info', 'warn', 'error']))
    .addOption(
      new Option('--log-prefix <when>', 'start lines with their syslog priority <3>..<7> for journalctl -p: auto (when stdout is the journal), syslog, none (default auto)').choices([
        'auto',
        'syslog',
        'none',
      ]),
    )
    .option('--no-log-addresses', 'keep remote IP addresses out of the log (anonymous agents\' addresses never appear)')
    .addOption(new Option('-q, --quiet', 'same as --log-level warn (the listening lines still appear)').conflicts(['verbose', 'logLevel']))
    .addOption(new Option('-v, --verbose', 'same as --log-level debug').conflicts('logLevel'))
    .addHelpText(
      'after',
      `
Logs one line per event on stdout. The first is always the listening line, e.g.
  2026-01-01T00:00:00.000Z INFO  listening host=0.0.0.0 port=7447 router=00000bee version=0.1.0
or with --log-format json
  {"time":"…","level":"info","msg":"listening","host":"0.0.0.0","port":7447,"router":"00000bee","version":"0.1.0"}
(router is the router ID as 8 hex digits, as in every log line and at the start of its agents' IDs). With a
metrics listener a second line follows: "metrics listening" with its host and port.
Under systemd (stdout is the journal) each line starts with its syslog priority, <3>
error to <7> debug, which journald strips and files, so "journalctl -p warning" works.

Secrets: the mesh secret, resume secret and admission tokens are never taken on the
command line (any local user can read it with ps). Give them in files (--mesh-secret-file,
--resume-secret-file, --token-file), in the environment (POSTERN_MESH_SECRET,
POSTERN_RESUME_SECRET), or in the config file (meshSecret, resumeSecret, admissionTokens);
those files must be mode 0600 or stricter (else POSTERN_ERR_KEY_FILE_INSECURE, exit 2). Precedence: file flag, then environment, then config file.

Signals:
  SIGTERM, SIGINT  drain: stop accepting, tell every agent to reconnect (after drain.after
                   ms, to drain.alternates or here again), wait up to drain.grace ms for
                   them to leave, close, exit 0. A second signal exits at once, status 1.
  SIGHUP           re-read TLS certificates and keys of the listeners; re-read the
                   config file (and --token-file) and apply what can change
                   live: ${RELOADABLE.join(', ')},
                   log.level. Logs what changed; other changes need a restart (logged).
                   A bad file is logged as an error and the running settings stay.
Readiness: when NOTIFY_SOCKET is set (systemd Type=notify), runs "systemd-notify --ready"
once listening.

Examples:
  postern router                              # 0.0.0.0:${DEFAULT_PORT}, random router ID
  postern router --host 127.0.0.1 --port 0    # local only, any free port
  postern router --config /etc/postern/router.json
  postern router --check-config example.json
  POSTERN_MESH_SECRET=... postern router --port 7447 --peer 10.0.0.2:7447
  npm start                                   # the same as "postern router"`,
    )
    .action(async (opts: RouterCommandOptions, cmd: Command) => runRouter(opts, cmd));
}

/** Router options the command-line flags (and environment) set: they override the config file. */
function overridesFrom(opts: RouterCommandOptions, cmd: Command): RouterConfig {
  const given = (name: string): boolean => {
    const src = cmd.getOptionValueSource(name);
    return src !== undefined && src !== 'default';
  };
  const o: RouterConfig = {
    host: opts.host,
    port: opts.port,
    routerId: opts.routerId,
    maxFrame: opts.maxFrame,
    keepaliveInterval: opts.keepalive,
    peers: opts.peer,
  };
  if (given('logAddresses')) o.logAddresses = opts.logAddresses;
  if (opts.meshSecretFile !== undefined) o.meshSecret = readSecretFile(opts.meshSecretFile, '--mesh-secret-file');
  else if (process.env.POSTERN_MESH_SECRET !== undefined && process.env.POSTERN_MESH_SECRET !== '') o.meshSecret = process.env.POSTERN_MESH_SECRET;
  if (opts.resumeSecretFile !== undefined) o.resumeSecret = readSecretFile(opts.resumeSecretFile, '--resume-secret-file');
  else if (process.env.POSTERN_RESUME_SECRET !== undefined && process.env.POSTERN_RESUME_SECRET !== '') o.resumeSecret = process.env.POSTERN_RESUME_SECRET;
  if (opts.tokenFile !== undefined) o.admissionTokens = readTokens(opts.tokenFile);
  const level: LogLevel | undefined = opts.quiet === true ? 'warn' : opts.verbose === true ? 'debug' : opts.logLevel;
  if (opts.logFormat !== undefined || level !== undefined || opts.logPrefix !== undefined) o.log = { format: opts.logFormat, level, prefix: opts.logPrefix };
  if (opts.metrics === false) o.metrics = null;
  else if (typeof opts.metrics === 'string') {
    const { host, port } = parseRouterLoose(opts.metrics);
    o.metrics = { host, port };
  }
  return o;
}

/** `host:port` where port may be 0 (parseRouter wants 1..65535, except via this path). */
function parseRouterLoose(value: string): { host: string; port: number } {
  const m = PEER_RE.exec(value);
  if (m === null) throw new InvalidArgumentError('Expected host:port.');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** Admission tokens from a file: one per line; blank lines and lines starting with # skipped. */
function readTokens(path: string): string[] {
  checkSecretMode(path, '--token-file');
  return readOptionFile(path, '--token-file')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** Reads the config file (if any) and merges the overrides over it; throws coded errors naming the key. */
function effectiveConfig(file: string | undefined, overrides: RouterConfig): ResolvedConfig {
  const base = file === undefined ? {} : loadConfig(file);
  return resolveConfig(base, overrides);
}

async function runRouter(opts: RouterCommandOptions, cmd: Command): Promise<void> {
  // Secrets and token files are read once here; SIGHUP re-reads the token file below.
  const overrides = overridesFrom(opts, cmd);

  if (opts.checkConfig !== undefined) {
    const c = effectiveConfig(opts.checkConfig, overrides);
    const given = { ...loadConfig(opts.checkConfig), ...overrides };
    process.stdout.write(JSON.stringify(describeConfig(c, given), null, 2) + '\n');
    return;
  }

  const config = effectiveConfig(opts.config, overrides);
  const priorityPrefix = config.log.prefix === 'syslog' || (config.log.prefix === 'auto' && stdoutIsJournal());
  let logger = createLogger({ format: config.log.format, level: config.log.level, priorityPrefix });
  // The listening lines go out whatever the level: they are how a caller learns the ports.
  const always = createLogger({ format: config.log.format, level: 'debug', priorityPrefix });
  const routerLogger: Logger = {
    debug: (msg, fields) => logger.debug(msg, fields),
    // The first line says which version runs, for bug reports and rollouts.
    info: (msg, fields) => (msg === 'listening' ? always.info(msg, { ...fields, version: PACKAGE_VERSION }) : logger.info(msg, fields)),
    warn: (msg, fields) => logger.warn(msg, fields),
    error: (msg, fields) => logger.error(msg, fields),
  };
  const router = new Router({ ...(config.router as RouterOptions), logger: routerLogger });
  // The metrics port is bound first: a busy one must end the start before the router logs
  // "listening" (which tells a supervisor or a script that it is up).
  let metrics: MetricsServer | null = null;
  if (config.metrics !== null) {
    try {
      metrics = await startMetricsServer(router, config.metrics);
    } catch (err) {
      throw listenError(err, 'metrics', config.metrics.host, config.metrics.port);
    }
  }
  try {
    await router.listen();
  } catch (err) {
    await metrics?.close();
    throw listenError(err, 'router', config.router.host, config.router.port);
  }
  if (metrics !== null) always.info('metrics listening', { host: metrics.address.address, port: metrics.address.port });
  notifySystemd(['--ready'], logger);

  let current = config;
  const reload = (): void => {
    // New TLS connections get the certificate on disk now (certbot renewals). [PROTOCOL.md §13.2]
    router.reloadCertificates();
    if (opts.config === undefined) {
      logger.warn('SIGHUP ignored: no --config file to re-read');
      return;
    }
    let next: ResolvedConfig;
    let fixedId = overrides.routerId !== undefined;
    try {
      const o = { ...overrides };
      if (opts.tokenFile !== undefined) o.admissionTokens = readTokens(opts.tokenFile);
      const raw = loadConfig(opts.config);
      fixedId ||= raw.routerId !== undefined;
      next = resolveConfig(raw, o);
    } catch (err) {
      logger.error('reload failed, keeping the running settings', { error: formatError(err).replace(/^error: /, '') });
      return;
    }
    const changes: Record<string, unknown> = {};
    const live = router.options as unknown as Record<string, unknown>;
    const fresh = next.router as unknown as Record<string, unknown>;
    for (const k of RELOADABLE) {
      if (JSON.stringify(live[k]) !== JSON.stringify(fresh[k])) changes[k] = fresh[k];
    }
    const restart: string[] = [];
    for (const k of Object.keys(fresh)) {
      if ((RELOADABLE as readonly string[]).includes(k) || k === 'clock' || k === 'logger') continue;
      // routerId is random when not configured: a fresh draw is not a change.
      if (k === 'routerId' && !fixedId) continue;
      if (JSON.stringify(fresh[k]) !== JSON.stringify((current.router as unknown as Record<string, unknown>)[k])) restart.push(k);
    }
    for (const k of ['metrics', 'drain'] as const) {
      if (JSON.stringify(next[k]) !== JSON.stringify(current[k])) restart.push(k);
    }
    if (next.log.format !== current.log.format) restart.push('log.format');
    if (next.log.prefix !== current.log.prefix) restart.push('log.prefix');
    try {
      if (Object.keys(changes).length > 0) router.reload(changes as Parameters<Router['reload']>[0]);
    } catch (err) {
      logger.error('reload failed, keeping the running settings', { error: formatError(err).replace(/^error: /, '') });
      return;
    }
    const changed = Object.keys(changes);
    if (next.log.level !== current.log.level) {
      logger = createLogger({ format: current.log.format, level: next.log.level, priorityPrefix });
      changed.push('log.level');
    }
    // Drain settings are read when the signal comes, so they apply without a restart.
    current = { ...next, router: current.router, metrics: current.metrics, log: { ...current.log, level: next.log.level } };
    logger.info('config reloaded', { changed: changed.length > 0 ? changed.join(',') : 'nothing', restartNeeded: restart.length > 0 ? restart.join(',') : undefined });
  };
  process.on('SIGHUP', reload);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // A second signal: the operator does not want to wait for agents to leave.
        always.warn('forced exit', { signal });
        process.exit(ExitStatus.FAILURE);
      }
      stopping = true;
      logger.info('signal received', { signal });
      notifySystemd(['STOPPING=1'], logger);
      router.drain(current.drain).then(
        async () => {
          await metrics?.close();
          resolve();
        },
        (err: unknown) => {
          always.error('drain failed', { error: formatError(err) });
          process.exit(ExitStatus.FAILURE);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/**
 * Tells systemd (Type=notify) about our state with `systemd-notify`, which NotifyAccess=all
 * lets speak for us; a no-op unless NOTIFY_SOCKET is set. Node cannot send to a datagram
 * Unix socket itself, hence the child. A failure is logged, never fatal.
 */
function notifySystemd(args: string[], logger: Logger): void {
  if (process.env.NOTIFY_SOCKET === undefined || process.env.NOTIFY_SOCKET === '') return;
  const child = spawn('systemd-notify', [...args, `--pid=${process.pid}`], { stdio: 'ignore' });
  child.once('error', (err) => logger.error('systemd-notify failed', { error: err.message }));
  child.once('exit', (code) => {
    if (code !== 0) logger.error('systemd-notify failed', { status: code });
  });
}
