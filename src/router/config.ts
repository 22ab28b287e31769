import { readFileSync } from 'node:fs';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { LOG_LEVELS, type LogLevel } from '../net/log.js';
import { isHostPort } from '../net/address.js';
import { resolveRouterOptions, ROUTER_DEFAULTS, type ResolvedRouterOptions, type RouterOptions } from './options.js';

/**
 * The router's JSON config file: every router option under its own name, plus the
 * service settings the CLI uses (log, metrics, drain). Flags given on the command line
 * override the file.
 *
 * ```json
 * { "host": "0.0.0.0", "port": 7447, "routerId": 17, "log": { "format": "json" },
 *   "metrics": { "host": "127.0.0.1", "port": 9447 }, "drain": { "after": 1000, "grace": 10000 } }
 * ```
 */
export interface RouterConfig extends Omit<RouterOptions, 'clock' | 'logger'> {
  /**
   * Log lines: `plain` or `json`, lowest level written, and `prefix`: `syslog` starts each
   * line with its priority (`<3>`..`<7>`) for journald, `none` never, `auto` (default) when
   * stdout is the journal (JOURNAL_STREAM). Default plain, info, auto.
   */
  log?: { format?: 'plain' | 'json'; level?: LogLevel; prefix?: 'auto' | 'syslog' | 'none' };
  /** Prometheus listener; omitted or null: none. Default port 9447 on 127.0.0.1. */
  metrics?: { host?: string; port?: number } | null;
  /** What SIGTERM/SIGINT do: tell agents to come back after `after` ms (to `alternates`), wait up to `grace` ms. */
  drain?: { after?: number; grace?: number; alternates?: string[] };
}

/** A config with defaults filled in. */
export interface ResolvedConfig {
  router: ResolvedRouterOptions;
  log: { format: 'plain' | 'json'; level: LogLevel; prefix: 'auto' | 'syslog' | 'none' };
  metrics: { host: string; port: number } | null;
  drain: { after: number; grace: number; alternates: string[] };
}

const SERVICE_KEYS = new Set(['log', 'metrics', 'drain']);
const ROUTER_KEYS = new Set([...Object.keys(ROUTER_DEFAULTS), 'routerId']);
ROUTER_KEYS.delete('clock');
ROUTER_KEYS.delete('logger');

/** Reads and parses a config file; POSTERN_ERR_CONFIG when unreadable or not JSON, INVALID_OPTION naming a bad key. */
export function loadConfig(path: string): RouterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PosternError(ErrorCode.CONFIG, `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PosternError(ErrorCode.CONFIG, `config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  checkShape(value);
  return value;
}

function bad(key: string, what: string): never {
  throw new PosternError(ErrorCode.INVALID_OPTION, `config key ${key} ${what}`);
}

function plainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Checks keys (unknown ones are errors naming them) and the service sections' types. */
export function checkShape(value: unknown): asserts value is RouterConfig {
  if (!plainObject(value)) throw new PosternError(ErrorCode.CONFIG, 'a config file holds one JSON object');
  for (const k of Object.keys(value)) {
    if (!ROUTER_KEYS.has(k) && !SERVICE_KEYS.has(k)) bad(k, 'is not a known key');
  }
  const sub = (name: string, keys: string[]): void => {
    const v = value[name];
    if (v === undefined || (name === 'metrics' && v === null)) return;
    if (!plainObject(v)) bad(name, 'must be an object');
    for (const k of Object.keys(v)) if (!keys.includes(k)) bad(`${name}.${k}`, 'is not a known key');
  };
  sub('log', ['format', 'level', 'prefix']);
  sub('metrics', ['host', 'port']);
  sub('drain', ['after', 'grace', 'alternates']);
}

/** Merges `overrides` (e.g. CLI flags) over `config`, validates everything, fills defaults. */
export function resolveConfig(config: RouterConfig, overrides: RouterConfig = {}): ResolvedConfig {
  const merged: RouterConfig = { ...config, ...stripUndefined(overrides) };
  for (const k of ['log', 'metrics', 'drain'] as const) {
    const a = config[k];
    const b = overrides[k];
    if (plainObject(a) && plainObject(b)) (merged as Record<string, unknown>)[k] = { ...a, ...stripUndefined(b) };
  }
  checkShape(merged);
  const { log, metrics, drain, ...routerPart } = merged;
  const router = resolveRouterOptions(routerPart);
  const format = log?.format ?? 'plain';
  if (format !== 'plain' && format !== 'json') bad('log.format', 'must be "plain" or "json"');
  const level = log?.level ?? 'info';
  if (!LOG_LEVELS.includes(level)) bad('log.level', `must be one of ${LOG_LEVELS.join(', ')}`);
  const prefix = log?.prefix ?? 'auto';
  if (prefix !== 'auto' && prefix !== 'syslog' && prefix !== 'none') bad('log.prefix', 'must be "auto", "syslog" or "none"');
  let m: ResolvedConfig['metrics'] = null;
  if (metrics !== undefined && metrics !== null) {
    m = { host: metrics.host ?? '127.0.0.1', port: metrics.port ?? 9447 };
    if (typeof m.host !== 'string' || m.host === '') bad('metrics.host', 'must be a non-empty string');
    if (!Number.isInteger(m.port) || m.port < 0 || m.port > 65535) bad('metrics.port', 'must be an integer in 0..65535');
  }
  const d = { after: drain?.after ?? 1000, grace: drain?.grace ?? 10_000, alternates: drain?.alternates ?? [] };
  if (!Number.isInteger(d.after) || d.after < 0 || d.after > 3_600_000) bad('drain.after', 'must be an integer in 0..3600000 (ms)');
  if (!Number.isInteger(d.grace) || d.grace < 0 || d.grace > 3_600_000) bad('drain.grace', 'must be an integer in 0..3600000 (ms)');
  if (!Array.isArray(d.alternates) || !d.alternates.every(isHostPort)) {
    bad('drain.alternates', 'must be an array of host:port strings');
  }
  return { router, log: { format, level, prefix }, metrics: m, drain: d };
}

/**
 * The effective config as plain JSON (secrets masked), for `--check-config`. `given` is what
 * the file and flags said before defaults: when it sets no routerId, the one in `c` is a
 * draw that the running router will not use, so `routerId` reads `"random"` instead.
 */
export function describeConfig(c: ResolvedConfig, given?: RouterConfig): Record<string, unknown> {
  const { clock: _clock, logger: _logger, ...router } = c.router;
  void _clock;
  void _logger;
  const mask = (v: unknown): unknown => (v === undefined ? undefined : '***');
  return {
    ...router,
    routerId: given !== undefined && given.routerId === undefined ? 'random' : router.routerId,
    meshSecret: mask(router.meshSecret),
    resumeSecret: mask(router.resumeSecret),
    admissionTokens: router.admissionTokens.map(() => '***'),
    log: c.log,
    metrics: c.metrics,
    drain: c.drain,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
