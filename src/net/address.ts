/**
 * Router addresses as people write them, for the agent's `router` option, the router's mesh
 * `peers`, DRAIN and REGISTERED alternates: `host:port`, `host`, `[v6]:port`, or a
 * URL naming the transport (PROTOCOL.md §13): `tcp://`, `tls://`, `ws://`, `wss://`,
 * `http://` and `https://` (HTTP/1.1 Upgrade), and lists of them.
 *
 * @module
 */
import { isIP } from 'node:net';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { DEFAULT_PORT } from '../protocol/frame.js';

/** How the byte stream is carried. [P-13.1] */
export type TransportScheme = 'tcp' | 'tls' | 'ws' | 'wss' | 'http' | 'https';

/** One parsed router address. `host` and `port` as for a plain TCP address. */
export interface Endpoint {
  readonly scheme: TransportScheme;
  /** Host name or IP address, without brackets. */
  readonly host: string;
  readonly port: number;
  /** Request path for `ws`, `wss`, `http`, `https` (starts with `/`); `''` for `tcp` and `tls`. */
  readonly path: string;
  /** The canonical text form, e.g. `tls://example.com:443`. */
  readonly url: string;
}

/** The path a router's HTTP listener serves and an address without a path asks for. */
export const DEFAULT_PATH = '/postern';

const DEFAULT_PORTS: Record<TransportScheme, number> = { tcp: DEFAULT_PORT, tls: 443, ws: 80, wss: 443, http: 80, https: 443 };

/** Whether the scheme runs TLS under whatever else it does. */
export function usesTls(scheme: TransportScheme): boolean {
  return scheme === 'tls' || scheme === 'wss' || scheme === 'https';
}

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

/** `host:port` with brackets around IPv6 addresses. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function format(scheme: TransportScheme, host: string, port: number, path: string): string {
  return `${scheme}://${hostPort(host, port)}${path}`;
}

/**
 * Parses one address. Without a scheme it is plain TCP (`host`, `host:port`, `[v6]:port`,
 * port 7447 by default). With one, the port defaults to the scheme's (`tcp` 7447, `tls`
 * 443, `ws`/`http` 80, `wss`/`https` 443) and the path of `ws`/`wss`/`http`/`https` to
 * `/postern`. User info, queries and fragments are refused: they would go nowhere.
 * Throws POSTERN_ERR_INVALID_OPTION naming `option`.
 */
export function parseEndpoint(text: string, option = 'router'): Endpoint {
  if (typeof text !== 'string' || text.length === 0 || text.length > 2048) bad(option, 'must be a non-empty address');
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  if (m === null) {
    const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
    const plain = /^([^:[\]\s/]+)(?::(\d{1,5}))?$/.exec(text);
    const p = v6 ?? plain;
    if (p === null) bad(option, `is not host:port or a URL: ${JSON.stringify(text.slice(0, 100))}`);
    const port = p[2] === undefined ? DEFAULT_PORT : Number(p[2]);
    if (port < 1 || port > 65535) bad(option, 'port must be in 1..65535');
    return Object.freeze({ scheme: 'tcp', host: p[1]!, port, path: '', url: format('tcp', p[1]!, port, '') });
  }
  const scheme = m[1]!.toLowerCase();
  if (!(scheme in DEFAULT_PORTS)) bad(option, `has an unknown scheme ${JSON.stringify(scheme)} (tcp, tls, ws, wss, http, https)`);
  const s = scheme as TransportScheme;
  let url: URL;
  try {
    // URL parses the authority of non-special schemes (tcp, tls) too; give it a special
    // scheme so ports and IPv6 literals follow the same rules for every form.
    url = new URL(`http://${text.slice(m[0].length)}`);
  } catch {
    bad(option, `is not a valid URL: ${JSON.stringify(text.slice(0, 100))}`);
  }
  if (url.username !== '' || url.password !== '') bad(option, 'must not carry a user name or password');
  if (url.search !== '' || url.hash !== '') bad(option, 'must not carry a query or fragment');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') bad(option, 'has no host');
  // URL drops a port equal to http's default: read it from the text instead.
  const explicit = /^(?:\[[^\]]*\]|[^:/]*):(\d{1,5})(?:\/|$)/.exec(text.slice(m[0].length));
  const port = explicit !== null ? Number(explicit[1]) : DEFAULT_PORTS[s];
  if (port < 1 || port > 65535) bad(option, 'port must be in 1..65535');
  let path = url.pathname;
  if (s === 'tcp' || s === 'tls') {
    if (path !== '/' && path !== '') bad(option, `must not have a path for ${s}://`);
    path = '';
  } else if (path === '/' && !text.slice(m[0].length).includes('/')) {
    path = DEFAULT_PATH;
  }
  return Object.freeze({ scheme: s, host, port, path, url: format(s, host, port, path) });
}

/**
 * Parses a list of addresses: an array, or one string separated by commas.
 * `{ host, port }` is plain TCP. At most 16 entries; at least one.
 */
export function parseEndpoints(value: string | readonly string[] | { host: string; port: number }, option = 'router'): Endpoint[] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as { host: unknown; port: unknown };
    if (typeof o.host !== 'string' || o.host.length === 0) bad(option, 'host must be a non-empty string');
    if (typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) bad(option, 'port must be an integer in 1..65535');
    return [Object.freeze({ scheme: 'tcp', host: o.host, port: o.port, path: '', url: format('tcp', o.host, o.port, '') })];
  }
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
  if (!Array.isArray(items) || items.length === 0) bad(option, 'must name at least one router');
  if (items.length > 16) bad(option, 'may name at most 16 routers');
  return items.map((t: unknown) => parseEndpoint(t as string, option));
}
