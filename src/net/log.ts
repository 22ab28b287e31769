import { fstatSync } from 'node:fs';

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
  /**
   * Start each line with its syslog priority, `<7>` debug, `<6>` info, `<4>` warn, `<3>`
   * error (sd-daemon(3) style), so journald files it at that priority and `journalctl -p`
   * can filter; journald strips the prefix. Default false.
   */
  priorityPrefix?: boolean;
}

/** syslog priorities of the levels (sd-daemon.h: SD_DEBUG 7, SD_INFO 6, SD_WARNING 4, SD_ERR 3). */
const PRIORITY: Readonly<Record<LogLevel, string>> = Object.freeze({ debug: '<7>', info: '<6>', warn: '<4>', error: '<3>' });

/**
 * True when stdout is the journal: JOURNAL_STREAM (set by systemd for a service whose output
 * goes to journald) names stdout's device and inode, as systemd.exec(5) says to check, so a
 * redirected stdout is not mistaken for it.
 */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, stat: () => { dev: number; ino: number } = () => fstatSync(1)): boolean {
  const js = env.JOURNAL_STREAM;
  if (js === undefined || !/^\d+:\d+$/.test(js)) return false;
  try {
    const st = stat();
    return js === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** A logger writing one line per event. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const format = options.format ?? 'plain';
  const min = LOG_LEVELS.indexOf(options.level ?? 'info');
  const write = options.write ?? ((line: string) => void process.stdout.write(line));
  const now = options.now ?? Date.now;
  const prefix = options.priorityPrefix === true;
  const make =
    (level: LogLevel) =>
    (msg: string, fields: LogFields = {}): void => {
      if (LOG_LEVELS.indexOf(level) < min) return;
      const time = new Date(now()).toISOString();
      const pri = prefix ? PRIORITY[level] : '';
      if (format === 'json') {
        write(pri + JSON.stringify({ time, level, msg, ...fields }) + '\n');
        return;
      }
      let line = `${pri}${time} ${level.toUpperCase().padEnd(5)} ${msg}`;
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) continue;
        const s = String(v);
        line += ` ${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
      }
      write(line + '\n');
    };
  return { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
}
