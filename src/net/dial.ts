/**
 * Opening the byte stream to a router (PROTOCOL.md §13): plain TCP, TLS, HTTP/1.1 Upgrade
 * or WebSocket, directly or through an HTTP CONNECT or SOCKS5 proxy. What comes back is a
 * Duplex carrying the postern stream; the framed protocol above it is the same for all.
 *
 * @module
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net, { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type PeerCertificate, type TLSSocket } from 'node:tls';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { hostPort, usesTls, type Endpoint } from './address.js';
import { openTunnel, parseProxy, proxyFromEnv, type ProxySpec } from './proxy.js';
import { clientUpgrade, UPGRADE_TOKEN } from './upgrade.js';
import { DirectReader, setDirectReader } from './reader.js';
import { MAX_WS_MESSAGE, WebSocketDuplex } from './ws-stream.js';

/** The ALPN protocol ID of a postern stream directly inside TLS. [P-13.2] */
export const ALPN = 'postern/1';

/** How to dial: TLS trust and proxy. Every field optional. */
export interface TransportOptions {
  /**
   * Proxy to dial through: `http://[user:pass@]host:port` (CONNECT), `socks5://…` (names
   * resolved locally), `socks5h://…` (names resolved by the proxy); `'env'` takes it from
   * `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` as curl does; `false` or absent: none.
   */
  proxy?: string | false;
  /** PEM CA certificate(s) (text or a file path) trusted instead of the system CAs for TLS. Default: the system CAs. */
  ca?: string | Buffer;
  /**
   * SPKI pin: `sha256/<base64>` of the server certificate's public key (the form of HPKP and
   * curl's --pinnedpubkey). Checked in addition to the CA chain (unless `insecure`). Default: none.
   */
  pin?: string;
  /** Skip certificate verification (NOT the pin, if given). Loud on purpose: every dial logs a warning. Default `false`. */
  insecure?: boolean;
  /** Environment read for `proxy: 'env'`. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Called with a line worth telling the operator (the insecure warning). Default: `console.warn`. */
  warn?: (line: string) => void;
}

/** Transport options after validation (the CA file read, the proxy parsed). */
export interface ResolvedTransport {
  readonly proxy: ProxySpec | 'env' | null;
  readonly ca: Buffer | undefined;
  readonly pin: Buffer | undefined;
  readonly insecure: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly warn: (line: string) => void;
}

function bad(option: string, why: string): never {
  throw new PosternError(ErrorCode.INVALID_OPTION, `option ${option} ${why}`);
}

/** Validates {@link TransportOptions}; reads `ca` when it names a file. Throws POSTERN_ERR_INVALID_OPTION. */
export function resolveTransport(o: TransportOptions = {}): ResolvedTransport {
  let proxy: ResolvedTransport['proxy'] = null;
  if (o.proxy === 'env') proxy = 'env';
  else if (typeof o.proxy === 'string' && o.proxy !== '') proxy = parseProxy(o.proxy);
  else if (o.proxy !== undefined && o.proxy !== false && o.proxy !== '') bad('proxy', "must be a proxy URL, 'env' or false");
  let ca: Buffer | undefined;
  if (o.ca !== undefined) {
    if (Buffer.isBuffer(o.ca)) ca = o.ca;
    else if (typeof o.ca === 'string' && o.ca.includes('-----BEGIN')) ca = Buffer.from(o.ca);
    else if (typeof o.ca === 'string') {
      try {
        ca = readFileSync(o.ca);
      } catch (err) {
        bad('ca', `cannot read ${o.ca}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
    } else bad('ca', 'must be PEM text, a Buffer or a file path');
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) bad('ca', 'holds no PEM certificate');
  }
  let pin: Buffer | undefined;
  if (o.pin !== undefined) {
    const m = typeof o.pin === 'string' ? /^sha256\/([A-Za-z0-9+/]{43}=)$/.exec(o.pin.trim()) : null;
    if (m === null) bad('pin', 'must be sha256/<base64 of 32 bytes>');
    pin = Buffer.from(m[1]!, 'base64');
  }
  if (o.insecure !== undefined && typeof o.insecure !== 'boolean') bad('insecure', 'must be a boolean');
  if (o.warn !== undefined && typeof o.warn !== 'function') bad('warn', 'must be a function');
  return Object.freeze({
    proxy,
    ca,
    pin,
    insecure: o.insecure ?? false,
    env: o.env ?? process.env,
    warn: o.warn ?? ((line: string) => console.warn(line)),
  });
}

/** `sha256/<base64>` of a certificate's SubjectPublicKeyInfo (DER), the form `pin` takes. */
export function spkiPin(cert: string | Buffer | X509Certificate): string {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  const der = x.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256/${createHash('sha256').update(der).digest('base64')}`;
}

function pinMatches(cert: PeerCertificate, pin: Buffer): boolean {
  if (cert.raw === undefined) return false;
  const der = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest().equals(pin);
}

/** The proxy to use for `ep`, or null for a direct connection. */
function proxyFor(ep: Endpoint, t: ResolvedTransport): ProxySpec | null {
  if (t.proxy === null) return null;
  if (t.proxy !== 'env') return t.proxy;
  const url = proxyFromEnv(ep, t.env);
  if (url === undefined) return null;
  try {
    return parseProxy(url, 'proxy (from the environment)');
  } catch (err) {
    // A bad variable is the operator's to fix: dialling direct instead would hide it.
    throw new PosternError(ErrorCode.INVALID_OPTION, (err as Error).message, { cause: err });
  }
}

/** TLS options of a client for `ep`: SNI (names only, never IP literals), CAs, ALPN, pin. [P-13.2] */
function tlsOptions(ep: Endpoint, t: ResolvedTransport, alpn: string[] | undefined): tls.ConnectionOptions {
  return {
    host: ep.host,
    port: ep.port,
    servername: isIP(ep.host) === 0 ? ep.host : undefined,
    ca: t.ca,
    minVersion: 'TLSv1.2',
    rejectUnauthorized: !t.insecure,
    ALPNProtocols: alpn,
    checkServerIdentity: (host, cert) => {
      if (t.pin !== undefined && !pinMatches(cert, t.pin)) return new Error(`the certificate of ${host} does not match the pinned key`);
      return t.insecure ? undefined : tls.checkServerIdentity(host, cert);
    },
  };
}

function tlsError(ep: Endpoint, err: unknown): PosternError {
  if (err instanceof PosternError) return err;
  const e = err as NodeJS.ErrnoException;
  // Socket-level failures stay what they are; everything else in the handshake is TLS's.
  if (e.code !== undefined && /^E[A-Z]+$/.test(e.code) && e.code !== 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new PosternError(ErrorCode.CONNECTION_LOST, `${ep.url}: ${e.message}`, { cause: err });
  }
  return new PosternError(ErrorCode.TLS_FAILED, `${ep.url}: TLS failed: ${e.message ?? String(err)}`, { cause: err });
}

/** Starts TLS on `socket` (or a fresh TCP connection) and resolves once the handshake and the ALPN check passed. */
function startTls(ep: Endpoint, t: ResolvedTransport, socket: Socket | undefined, alpn: string[] | undefined, timeout: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ ...tlsOptions(ep, t, alpn), socket });
    s.setNoDelay?.(true);
    const timer = setTimeout(() => fail(new PosternError(ErrorCode.CONNECT_TIMEOUT, `${ep.url}: no TLS handshake within ${timeout} ms`)), timeout);
    const fail = (err: unknown): void => {
      clearTimeout(timer);
      s.destroy();
      reject(tlsError(ep, err));
    };
    s.once('error', fail);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      s.off('error', fail);
      // [P-13.2] a server that chose ALPN chose ours; one that chose none is accepted.
      if (alpn !== undefined && typeof s.alpnProtocol === 'string' && !alpn.includes(s.alpnProtocol)) {
        s.destroy();
        reject(new PosternError(ErrorCode.TLS_FAILED, `${ep.url}: the server chose ALPN ${JSON.stringify(s.alpnProtocol)}, not ${alpn.join(' or ')}`));
        return;
      }
      resolve(s);
    });
  });
}

async function webSocket(ep: Endpoint, t: ResolvedTransport, socket: Duplex | undefined, timeout: number): Promise<Duplex> {
  // Loaded when first used: most agents never speak WebSocket, and the CLI starts faster.
  const { WebSocket } = await import('ws');
  return new Promise((resolve, reject) => {
    const secure = ep.scheme === 'wss';
    const url = `${secure ? 'wss' : 'ws'}://${hostPort(ep.host, ep.port)}${ep.path}`;
    const topts = secure ? tlsOptions(ep, t, undefined) : {};
    const ws = new WebSocket(url, [UPGRADE_TOKEN], {
      ...topts,
      perMessageDeflate: false,
      handshakeTimeout: timeout,
      maxPayload: MAX_WS_MESSAGE,
      ...(socket !== undefined ? { createConnection: () => socket as Socket } : {}),
    });
    const fail = (err: unknown): void => {
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      reject(err);
    };
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      fail(new PosternError(ErrorCode.UPGRADE_REFUSED, `${ep.url}: the WebSocket handshake was answered with ${res.statusCode} ${res.statusMessage ?? ''}`.trimEnd(), { cause: { status: res.statusCode } }));
    });
    ws.once('error', (err) => {
      if (/timed out/i.test(err.message)) fail(new PosternError(ErrorCode.CONNECT_TIMEOUT, `${ep.url}: ${err.message}`, { cause: err }));
      else if (secure && !(err instanceof PosternError) && /cert|TLS|SSL|pinned/i.test(`${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`)) fail(tlsError(ep, err));
      else if (/protocol|Sec-WebSocket/i.test(err.message)) fail(new PosternError(ErrorCode.UPGRADE_REFUSED, `${ep.url}: ${err.message}`, { cause: err }));
      else fail(new PosternError(ErrorCode.CONNECTION_LOST, `${ep.url}: ${err.message}`, { cause: err }));
    });
    ws.once('open', () => {
      ws.removeAllListeners('error');
      ws.removeAllListeners('unexpected-response');
      // [P-13.4] the router must have chosen our subprotocol (ws checks it was one we offered).
      if (ws.protocol !== UPGRADE_TOKEN) {
        fail(new PosternError(ErrorCode.UPGRADE_REFUSED, `${ep.url}: the server chose no postern subprotocol`));
        return;
      }
      const d = new WebSocketDuplex(ws);
      resolve(d);
    });
  });
}

let insecureWarned = new WeakSet<ResolvedTransport>();

/**
 * Opens the stream to `ep`. Direct plain TCP returns at once (the socket buffers what is
 * written before it connects, and its errors surface on the stream); the other forms
 * resolve after their handshakes, each bounded by `timeout` ms, or reject with a
 * coded error: POSTERN_ERR_TLS_FAILED, POSTERN_ERR_UPGRADE_REFUSED,
 * POSTERN_ERR_PROXY_REFUSED, POSTERN_ERR_PROXY_AUTH_FAILED, POSTERN_ERR_CONNECT_TIMEOUT or
 * POSTERN_ERR_CONNECTION_LOST.
 */
export function openTransport(ep: Endpoint, t: ResolvedTransport, timeout: number): Duplex | Promise<Duplex> {
  if (t.insecure && usesTls(ep.scheme) && !insecureWarned.has(t)) {
    insecureWarned.add(t);
    t.warn(`postern: WARNING: TLS certificate verification is OFF for ${ep.url} (insecure): anyone on the path can read and change this connection`);
  }
  const proxy = proxyFor(ep, t);
  if (proxy === null && ep.scheme === 'tcp') {
    // Plain TCP reads into buffers the session picks (src/net/reader.ts): a large frame
    // goes straight into its own buffer instead of being copied out of Node's chunks.
    const reader = new DirectReader();
    const socket = net.connect({ host: ep.host, port: ep.port, onread: reader.onread });
    setDirectReader(socket, reader);
    // Frames are coalesced per tick by cork(); Nagle would only add latency on top.
    socket.setNoDelay(true);
    return socket;
  }
  return (async (): Promise<Duplex> => {
    const started = Date.now();
    const left = (): number => Math.max(1, timeout - (Date.now() - started));
    const base = proxy === null ? undefined : await openTunnel(proxy, ep.host, ep.port, timeout);
    try {
      switch (ep.scheme) {
        case 'tcp':
          return base!;
        case 'tls':
          return await startTls(ep, t, base, [ALPN], left());
        case 'http':
        case 'https': {
          let s: Duplex;
          if (ep.scheme === 'https') s = await startTls(ep, t, base, ['http/1.1'], left());
          else if (base !== undefined) s = base;
          else s = await connectTcp(ep, left());
          const defaultPort = ep.scheme === 'https' ? 443 : 80;
          return await clientUpgrade(s, ep.path, ep.port === defaultPort ? hostForHeader(ep.host) : hostPort(ep.host, ep.port), left());
        }
        default:
          // Through a tunnel, TLS is ours to start: ws would otherwise speak plain HTTP into it.
          return await webSocket(ep, t, base !== undefined && ep.scheme === 'wss' ? await startTls(ep, t, base, ['http/1.1'], left()) : base, left());
      }
    } catch (err) {
      base?.destroy();
      throw err;
    }
  })();
}

function hostForHeader(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

function connectTcp(ep: Endpoint, timeout: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ep.host, port: ep.port, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new PosternError(ErrorCode.CONNECT_TIMEOUT, `${ep.url}: no TCP connection within ${timeout} ms`));
    }, timeout);
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(new PosternError(ErrorCode.CONNECTION_LOST, `${ep.url}: ${err.message}`, { cause: err }));
    });
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
  });
}

/** @internal For tests: forget which transports already warned. */
export function resetInsecureWarnings(): void {
  insecureWarned = new WeakSet();
}
