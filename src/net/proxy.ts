/**
 * Outbound proxies (PROTOCOL.md §13.6): HTTP CONNECT (Node's http module) and SOCKS5 (the
 * `socks` package), chosen by an explicit URL or by the environment as curl reads it.
 * Every tunnel attempt is bounded by a timeout, and a refusal is a coded error carrying
 * the proxy's status: never a hang.
 *
 * @module
 */
import http from 'node:http';
import { BlockList, isIP, type Socket } from 'node:net';
import { lookup } from 'node:dns/promises';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { hostPort, type Endpoint } from './address.js';

/** A parsed proxy URL. */
export interface ProxySpec {
  /** `http`: CONNECT; `socks5`: SOCKS5, names resolved here; `socks5h`: SOCKS5, names resolved by the proxy. */
  readonly kind: 'http' | 'socks5' | 'socks5h';
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** The URL without credentials, for logs and messages. */
  readonly display: string;
}

function bad(option: string, why: string): never {
  throw new PosternError(ErrorCode.INVALID_OPTION, `option ${option} ${why}`);
}

/**
 * Parses `http://[user:pass@]host[:port]` (port 80; `https://` proxies are not supported),
 * `socks5://…` or `socks5h://…` (port 1080); `socks://` means `socks5h://`. A proxy written
 * without a scheme is `http://`, as curl takes it. Throws POSTERN_ERR_INVALID_OPTION.
 */
export function parseProxy(text: string, option = 'proxy'): ProxySpec {
  if (typeof text !== 'string' || text === '') bad(option, 'must be a proxy URL');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    bad(option, `is not a valid proxy URL: ${JSON.stringify(text.slice(0, 100))}`);
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  const kind = scheme === 'http' ? 'http' : scheme === 'socks5' ? 'socks5' : scheme === 'socks5h' || scheme === 'socks' ? 'socks5h' : null;
  if (kind === null) bad(option, `has an unsupported scheme ${JSON.stringify(scheme)} (http, socks5, socks5h)`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') bad(option, 'has no host');
  const port = url.port !== '' ? Number(url.port) : kind === 'http' ? 80 : 1080;
  const username = url.username !== '' ? decodeURIComponent(url.username) : undefined;
  const password = url.password !== '' ? decodeURIComponent(url.password) : undefined;
  return Object.freeze({ kind, host, port, username, password, display: `${scheme}://${hostPort(host, port)}` });
}

/**
 * The proxy the environment asks for to reach `target`, as curl reads it: `https_proxy`
 * (then `HTTPS_PROXY`) for TLS schemes and `tcp`, `http_proxy` (lower case only: `HTTP_PROXY`
 * may be set by a CGI request header) for `ws` and `http`, then `all_proxy` / `ALL_PROXY`;
 * none when `no_proxy` / `NO_PROXY` matches the host. Empty values count as unset.
 */
export function proxyFromEnv(target: Endpoint, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const get = (...names: string[]): string | undefined => {
    for (const n of names) {
      const v = env[n];
      if (v !== undefined && v.trim() !== '') return v.trim();
    }
    return undefined;
  };
  const plainHttp = target.scheme === 'ws' || target.scheme === 'http';
  const proxy = (plainHttp ? get('http_proxy') : get('https_proxy', 'HTTPS_PROXY')) ?? get('all_proxy', 'ALL_PROXY');
  if (proxy === undefined) return undefined;
  if (noProxyMatches(target.host, get('no_proxy', 'NO_PROXY') ?? '')) return undefined;
  return proxy;
}

/**
 * Whether a `NO_PROXY` list exempts `host`: `*` matches every host; a name matches itself
 * and its subdomains (a leading dot is ignored); an IP address matches exactly; a CIDR
 * block (`10.0.0.0/8`, `fd00::/8`) matches the addresses in it. Comparison ignores case;
 * a `:port` suffix on an entry is ignored.
 */
export function noProxyMatches(host: string, list: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  const family = isIP(h);
  for (let entry of list.split(/[\s,]+/)) {
    entry = entry.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const slash = entry.indexOf('/');
    if (slash > 0) {
      const net = entry.slice(0, slash);
      const bits = Number(entry.slice(slash + 1));
      const nf = isIP(net);
      if (nf !== 0 && nf === family && Number.isInteger(bits)) {
        const bl = new BlockList();
        try {
          bl.addSubnet(net, bits, nf === 4 ? 'ipv4' : 'ipv6');
          if (bl.check(h, family === 4 ? 'ipv4' : 'ipv6')) return true;
        } catch {
          // a malformed block matches nothing
        }
      }
      continue;
    }
    entry = entry.replace(/^\[([^\]]+)\](?::\d+)?$/, '$1');
    if (isIP(entry) === 0) entry = entry.replace(/:\d+$/, '');
    if (isIP(entry) !== 0 || family !== 0) {
      if (entry === h) return true;
      continue;
    }
    const name = entry.replace(/^\*?\./, '').replace(/\.$/, '');
    if (h === name || h.endsWith(`.${name}`)) return true;
  }
  return false;
}

/** `Proxy-Authorization` value for Basic auth, or undefined without credentials. */
function basicAuth(p: ProxySpec): string | undefined {
  if (p.username === undefined) return undefined;
  return `Basic ${Buffer.from(`${p.username}:${p.password ?? ''}`).toString('base64')}`;
}

/**
 * Opens a TCP tunnel to `host`:`port` through `proxy`; resolves with the socket, whose
 * next bytes are the target's. Rejects within `timeout` ms with POSTERN_ERR_PROXY_REFUSED,
 * POSTERN_ERR_PROXY_AUTH_FAILED, POSTERN_ERR_CONNECT_TIMEOUT or POSTERN_ERR_CONNECTION_LOST.
 */
export function openTunnel(proxy: ProxySpec, host: string, port: number, timeout: number): Promise<Socket> {
  return proxy.kind === 'http' ? httpConnect(proxy, host, port, timeout) : socksConnect(proxy, host, port, timeout);
}

function httpConnect(proxy: ProxySpec, host: string, port: number, timeout: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const authority = hostPort(host, port);
    const headers: Record<string, string> = { Host: authority };
    const auth = basicAuth(proxy);
    if (auth !== undefined) headers['Proxy-Authorization'] = auth;
    const req = http.request({ host: proxy.host, port: proxy.port, method: 'CONNECT', path: authority, headers, agent: false, setHost: false });
    let settled = false;
    const fail = (err: PosternError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new PosternError(ErrorCode.CONNECT_TIMEOUT, `proxy ${proxy.display} did not open a tunnel to ${authority} within ${timeout} ms`)), timeout);
    req.on('connect', (res: http.IncomingMessage, socket: Socket, head: Buffer) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        socket.destroy();
        const code = status === 407 || status === 401 ? ErrorCode.PROXY_AUTH_FAILED : ErrorCode.PROXY_REFUSED;
        fail(new PosternError(code, `proxy ${proxy.display} answered ${status} ${res.statusMessage ?? ''} to CONNECT ${authority}`.trimEnd(), { cause: { status } }));
        return;
      }
      if (settled) {
        socket.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      // Bytes after the proxy's answer already belong to the target.
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      resolve(socket);
    });
    // A proxy that answers CONNECT as a plain response (some do on errors) ends up here.
    req.on('response', (res: http.IncomingMessage) => {
      const status = res.statusCode ?? 0;
      res.resume();
      const code = status === 407 || status === 401 ? ErrorCode.PROXY_AUTH_FAILED : ErrorCode.PROXY_REFUSED;
      fail(new PosternError(code, `proxy ${proxy.display} answered ${status} ${res.statusMessage ?? ''} to CONNECT ${authority}`.trimEnd(), { cause: { status } }));
    });
    req.on('error', (err) => fail(new PosternError(ErrorCode.CONNECTION_LOST, `proxy ${proxy.display}: ${err.message}`, { cause: err })));
    req.end();
  });
}

async function socksConnect(proxy: ProxySpec, host: string, port: number, timeout: number): Promise<Socket> {
  let destination = host;
  // socks5: names are resolved here, so the proxy sees only an address.
  if (proxy.kind === 'socks5' && isIP(host) === 0) {
    try {
      destination = (await lookup(host)).address;
    } catch (err) {
      throw new PosternError(ErrorCode.CONNECTION_LOST, `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  }
  // Loaded when first used: only SOCKS users pay for it.
  const { SocksClient } = await import('socks');
  try {
    const { socket } = await SocksClient.createConnection({
      proxy: { host: proxy.host, port: proxy.port, type: 5, userId: proxy.username, password: proxy.password },
      command: 'connect',
      destination: { host: destination, port },
      timeout,
      set_tcp_nodelay: true,
    });
    return socket;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const code = /auth/i.test(msg) ? ErrorCode.PROXY_AUTH_FAILED : /timed? ?out/i.test(msg) ? ErrorCode.CONNECT_TIMEOUT : /ECONN|EHOST|ENETUNREACH|closed/i.test(msg) ? ErrorCode.CONNECTION_LOST : ErrorCode.PROXY_REFUSED;
    throw new PosternError(code, `proxy ${proxy.display} to ${hostPort(host, port)}: ${msg}`, { cause: err });
  }
}
