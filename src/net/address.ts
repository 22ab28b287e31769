import { DEFAULT_PORT } from '../protocol/frame.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';

/**
 * Router addresses as people write them (`host:port`, `[v6]:port`), for the agent's
 * `router` option, the router's mesh `peers` and DRAIN alternates.
 *
 * @module
 */

/**
 * Parses a router address: `'host:port'`, `'[v6addr]:port'`, `'host'` (default port) or
 * `{ host, port }`. Throws POSTERN_ERR_INVALID_OPTION naming `option`.
 */
export function parseRouterAddress(
  value: string | { host: string; port: number },
  option = 'router',
): { host: string; port: number } {
  let host: string;
  let port: number;
  if (typeof value === 'string') {
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
    const plain = /^([^:[\]\s]+)(?::(\d+))?$/.exec(value);
    const m = v6 ?? plain;
    if (m === null) bad(option, `is not host:port: ${JSON.stringify(value.slice(0, 100))}`);
    host = m[1]!;
    port = m[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  } else if (value !== null && typeof value === 'object') {
    host = value.host;
    port = value.port;
    if (typeof host !== 'string' || host.length === 0) bad(option, 'host must be a non-empty string');
  } else {
    bad(option, "must be 'host:port' or { host, port }");
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) bad(option, 'port must be an integer in 1..65535');
  return { host, port };
}

/** True for `host:port` or `[v6]:port` with a port in 1..65535 (the port is required). */
export function isHostPort(v: unknown): v is string {
  const m = typeof v === 'string' ? /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(v) : null;
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}

function bad(option: string, why: string): never {
  throw new PosternError(ErrorCode.INVALID_OPTION, `option ${option} ${why}`);
}
