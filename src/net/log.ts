/**
 * Logging, injected: the library never writes to stdout by itself. The CLI passes a
 * {@link createLogger} logger; embedders pass their own or nothing.
 */

/** Structured fields of a log line. Values must be JSON-serialisable. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** A logger: one call per event. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** Log levels, lowest first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A logger that drops everything (the library default). */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** `plain`: `LEVEL msg key=value ...`; `json`: one JSON object per line. Default `plain`. */
  format?: 'plain' | 'json';
  /** Lowest level written. Default `info`. */
  level?: LogLevel;
  /** Where lines go. Default `process.stdout`. */
  write?: (line: string) => void;
  /** Clock for the `time` field. Default `Date.now`. */
  now?: () => number;
}

/** A logger writing one line per event. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const format = options.format ?? 'plain';
  const min = LOG_LEVELS.indexOf(options.level ?? 'info');
  const write = options.write ?? ((line: string) => void process.stdout.write(line));
  const now = options.now ?? Date.now;
  const make =
    (level: LogLevel) =>
    (msg: string, fields: LogFields = {}): void => {
      if (LOG_LEVELS.indexOf(level) < min) return;
      const time = new Date(now()).toISOString();
      if (format === 'json') {
        write(JSON.stringify({ time, level, msg, ...fields }) + '\n');
        return;
      }
      let line = `${time} ${level.toUpperCase().padEnd(5)} ${msg}`;
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) continue;
        const s = String(v);
        line += ` ${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
      }
      write(line + '\n');
    };
  return { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
}
