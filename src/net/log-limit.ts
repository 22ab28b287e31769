/**
 * A rate limit for log lines. During a flood of hostile connections the router would write
 * a line or two per connection (hundreds to thousands a second): the writes cost more CPU
 * than rejecting the connections, and the lines bury everything else. Wrapped, the first
 * few lines of each kind per interval are written as they come; the rest are counted and
 * written as one summary line when the interval ends.
 */
import type { Clock, Timer } from './clock.js';
import type { LogFields, Logger, LogLevel } from './log.js';

/** Options of {@link limitLog}. */
export interface LogLimitOptions {
  /** Time source for the intervals. */
  clock: Clock;
  /** Length of an interval in ms. Default 10000. */
  interval?: number;
  /** Lines of one kind written as they come per interval; the rest are summarised. Default 10. */
  burst?: number;
  /**
   * Messages limited; others always pass. A kind is the message and its `code` field, so
   * e.g. handshake timeouts and slow consumers (both `closing connection`) count apart.
   * Default {@link NOISY_EVENTS}.
   */
  messages?: readonly string[];
}

/**
 * The router's per-connection events, which a flood of connections repeats. Registrations
 * are among them: a registration flood is one of the floods (their count is in the summary
 * and in the metrics); links, listening, draining and errors of the router are not.
 */
export const NOISY_EVENTS: readonly string[] = Object.freeze([
  'agent registered',
  'anonymous agent connected',
  'agent resumed',
  'not a postern client',
  'protocol violation',
  'closing connection',
  'agent disconnected',
  'agent closed',
  'stream error',
  'resume refused',
  'internal error',
  'route error for a sender that is gone',
]);

/** A {@link Logger} whose repeated events are summarised; `flush()` writes the pending summaries now. */
export interface LimitedLogger extends Logger {
  /** Writes the summaries of the current interval now and starts a new one (e.g. at shutdown). */
  flush(): void;
}

interface Kind {
  level: LogLevel;
  msg: string;
  code: LogFields[string];
  /** Lines of this kind in the current interval, written or not. */
  seen: number;
}

/** Wraps `logger` so each kind of noisy event writes at most `burst` lines per interval plus one summary. */
export function limitLog(logger: Logger, options: LogLimitOptions): LimitedLogger {
  const clock = options.clock;
  const interval = options.interval ?? 10_000;
  const burst = options.burst ?? 10;
  const limited = new Set(options.messages ?? NOISY_EVENTS);
  // Kinds seen in this interval, by level, message and code; cleared when it ends.
  const kinds = new Map<string, Kind>();
  let timer: Timer | null = null;

  const flush = (): void => {
    timer?.cancel();
    timer = null;
    const seconds = Math.round(interval / 1000);
    for (const k of kinds.values()) {
      const more = k.seen - burst;
      if (more > 0) logger[k.level](`${k.msg}: ${more} more like this in the last ${seconds} s`, { code: k.code, more });
    }
    kinds.clear();
  };

  const make =
    (level: LogLevel) =>
    (msg: string, fields?: LogFields): void => {
      if (!limited.has(msg)) {
        logger[level](msg, fields);
        return;
      }
      const code = fields?.['code'];
      const key = `${level}\u0000${msg}\u0000${String(code)}`;
      let k = kinds.get(key);
      if (k === undefined) {
        k = { level, msg, code, seen: 0 };
        kinds.set(key, k);
      }
      // The interval starts with the first limited line, so a quiet logger holds no timer.
      if (timer === null) timer = clock.setTimeout(flush, interval);
      if (++k.seen <= burst) logger[level](msg, fields);
    };

  return { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error'), flush };
}
