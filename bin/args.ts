/**
 * Argument parsers for the CLI. Each throws commander's InvalidArgumentError, which the
 * CLI reports as `error: POSTERN_ERR_INVALID_ARGUMENT: …` and exit status 2.
 *
 * @module
 */
import { InvalidArgumentError } from 'commander';
import { DEFAULT_PORT } from '../src/index.js';
import { parseEndpoints } from '../src/net/address.js';

/** Where an agent dials: the first router's host and port, and every address given (PROTOCOL.md §13.1). */
export interface RouterAddress {
  host: string;
  port: number;
  /** Every address, in the order tried (`host:port` or a URL: tcp, tls, ws, wss, http, https). */
  list?: string[];
}

/** The router an agent command dials when `--router` and POSTERN_ROUTER are unset. */
export const DEFAULT_ROUTER = `127.0.0.1:${DEFAULT_PORT}`;

const INTEGER_RE = /^(?:0|[1-9][0-9]*)$/;
const HEX_RE = /^0x[0-9a-f]+$/i;

/**
 * A parser for a decimal integer in `min..max` (also `0x…` hex when `hex` is set), for
 * commander's `.argParser()`. Rejects signs, fractions, exponents and blanks, so a typo
 * never turns into a different number.
 */
export function integerIn(min: number, max: number, hex = false): (value: string) => number {
  return (value: string): number => {
    const text = value.trim();
    let n = Number.NaN;
    if (INTEGER_RE.test(text)) n = Number(text);
    else if (hex && HEX_RE.test(text)) n = Number.parseInt(text.slice(2), 16);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`Expected an integer in ${min}..${max}${hex ? ' (decimal or 0x hex)' : ''}.`);
    }
    return n;
  };
}

/** TCP port for the router to listen on; 0 asks the OS for a free one. */
export const parseListenPort = integerIn(0, 65535);

/**
 * Parses `host:port`, `host` (port 7447) or `[v6]:port` with the library's own parser, so
 * the CLI and `connect({ router })` accept exactly the same strings.
 */
export function parseRouter(value: string): RouterAddress {
  try {
    const items = value.split(',').map((t) => t.trim());
    const list = parseEndpoints(items);
    const first = { host: list[0]!.host, port: list[0]!.port };
    // One plain host:port stays what it always was; URLs and lists travel as given.
    return items.length === 1 && list[0]!.scheme === 'tcp' && !items[0]!.includes('://') ? first : { ...first, list: items };
  } catch {
    throw new InvalidArgumentError(`Expected host:port or a URL (tls://host, wss://host/path, ...), or a comma-separated list of them, e.g. ${DEFAULT_ROUTER} or [::1]:${DEFAULT_PORT}.`);
  }
}


/** `host:port` for messages, with brackets around IPv6 addresses. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
