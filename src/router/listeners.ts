/**
 * The router's listeners (PROTOCOL.md §13): each one a port that yields postern byte
 * streams, over plain TCP, TLS, and optionally HTTP/1.1 Upgrade and WebSocket on the same
 * port. A listener only opens the stream; the router serves it like any Duplex
 * (`Router.handle`), so the framed protocol is the same on every transport.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import type { WebSocketServer } from 'ws';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { routerHex } from '../protocol/id.js';
import type { Logger } from '../net/log.js';
import { DEFAULT_PATH } from '../net/address.js';
import { ALPN } from '../net/dial.js';
import { hasToken, readHead, refusalResponse, UPGRADE_RESPONSE, UPGRADE_TOKEN, type HttpHead } from '../net/upgrade.js';
import { MAX_WS_MESSAGE, WebSocketDuplex } from '../net/ws-stream.js';
import { bindServer } from '../net/listen.js';

/** One listener of a router's `listeners` option. */
export interface ListenerOptions {
  /** TCP port; 0 picks a free one. Required. */
  port: number;
  /** Address to listen on. Default `0.0.0.0`. */
  host?: string;
  /**
   * TLS: PEM certificate chain and private key, as file paths. Re-read by
   * `Router.reloadCertificates()` (SIGHUP for the CLI). Default: none (plain TCP).
   */
  tls?: { cert: string; key: string } | null;
  /**
   * Also serve HTTP/1.1 `Upgrade: postern` and WebSocket (subprotocol `postern`) on this
   * port, at `path`; a raw postern stream is still accepted. Default `false`.
   */
  http?: boolean;
  /** The HTTP path of the upgrade and the WebSocket. Default `/postern`. */
  path?: string;
}

/** A validated listener. */
export interface ResolvedListener {
  readonly port: number;
  readonly host: string;
  readonly tls: { readonly cert: string; readonly key: string } | null;
  readonly http: boolean;
  readonly path: string;
}

function bad(option: string, why: string): never {
  throw new PosternError(ErrorCode.INVALID_OPTION, `option ${option} ${why}`);
}

/** Validates the `listeners` option (files are read by {@link Listener.listen}). Throws POSTERN_ERR_INVALID_OPTION. */
export function resolveListeners(value: unknown): ResolvedListener[] {
  if (!Array.isArray(value)) bad('listeners', 'must be an array of { port, host?, tls?, http?, path? }');
  if (value.length > 32) bad('listeners', 'may hold at most 32 listeners');
  return value.map((v: unknown, i) => {
    const name = `listeners[${i}]`;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(name, 'must be an object');
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['port', 'host', 'tls', 'http', 'path'].includes(k)) bad(`${name}.${k}`, 'is not a listener key');
    const port = o['port'];
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) bad(`${name}.port`, 'must be an integer in 0..65535');
    const host = o['host'] ?? '0.0.0.0';
    if (typeof host !== 'string' || host === '') bad(`${name}.host`, 'must be a non-empty string');
    let t: ResolvedListener['tls'] = null;
    if (o['tls'] !== undefined && o['tls'] !== null) {
      const x = o['tls'] as Record<string, unknown>;
      if (typeof x !== 'object' || typeof x['cert'] !== 'string' || typeof x['key'] !== 'string' || x['cert'] === '' || x['key'] === '') {
        bad(`${name}.tls`, 'must be { cert: "file.pem", key: "file.pem" }');
      }
      t = Object.freeze({ cert: x['cert'], key: x['key'] });
    }
    const http = o['http'] ?? false;
    if (typeof http !== 'boolean') bad(`${name}.http`, 'must be a boolean');
    const path = o['path'] ?? DEFAULT_PATH;
    if (typeof path !== 'string' || !/^\/[\x21-\x7e]*$/.test(path) || path.includes('?')) bad(`${name}.path`, 'must be an absolute path without query');
    return Object.freeze({ port, host, tls: t, http, path });
  });
}

/** What a listener needs from its router. */
export interface ListenerHost {
  /** Serves one postern stream; `address` is the peer's IP, `port` its port when known. */
  accept(stream: Duplex, address: string, port: number | undefined): void;
  readonly log: Logger;
  /** ms a connection has for TLS and the HTTP head (the router's handshake timeout). */
  readonly handshakeTimeout: number;
}

const FIRST_MAGIC_BYTE = 0x89;

/** Most connections one listener holds while reading their first byte or HTTP head (each within the handshake timeout, 8 KiB at most). */
const MAX_PENDING = 4096;

/**
 * AES-128-GCM first (as Go's crypto/tls orders them): the router decrypts and re-encrypts
 * every relayed byte, and with AES-NI it is the cheapest suite that is still strong.
 */
const CIPHERS = { ciphers: `TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:${tls.DEFAULT_CIPHERS}`, honorCipherOrder: true };

/** One listening port. */
export class Listener {
  readonly spec: ResolvedListener;
  private readonly host: ListenerHost;
  private server: net.Server | tls.Server | null = null;
  private wss: WebSocketServer | null = null;
  /** Sockets still in TLS or HTTP, not yet handed to the router: closed with the listener. */
  private readonly pending = new Set<Socket>();

  constructor(spec: ResolvedListener, host: ListenerHost) {
    this.spec = spec;
    this.host = host;
  }

  /** True for TLS listeners (tokens and IDs do not cross the network in the clear). */
  get secure(): boolean {
    return this.spec.tls !== null;
  }

  /** `tcp`, `tls`, `http` or `https`, for logs. */
  get kind(): string {
    return this.spec.tls === null ? (this.spec.http ? 'http' : 'tcp') : this.spec.http ? 'https' : 'tls';
  }

  private readPem(): { cert: Buffer; key: Buffer } {
    const t = this.spec.tls!;
    try {
      return { cert: readFileSync(t.cert), key: readFileSync(t.key) };
    } catch (err) {
      throw new PosternError(ErrorCode.CONFIG, `cannot read TLS file: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Opens the port. Rejects with POSTERN_ERR_CONFIG for unreadable or bad PEM files, or the listen error. */
  async listen(): Promise<AddressInfo> {
    if (this.spec.http) {
      // Loaded only by routers with an HTTP listener.
      const { WebSocketServer } = await import('ws');
      this.wss = new WebSocketServer({
        noServer: true,
        perMessageDeflate: false,
        maxPayload: MAX_WS_MESSAGE,
        clientTracking: false,
        // [P-13.4] the router answers with the postern subprotocol, or refuses before this.
        handleProtocols: () => UPGRADE_TOKEN,
      });
    }
    let server: net.Server | tls.Server;
    if (this.spec.tls !== null) {
      const { cert, key } = this.readPem();
      try {
        server = tls.createServer({
          cert,
          key,
          minVersion: 'TLSv1.2', // [P-13.2]
          ...CIPHERS,
          ALPNProtocols: this.spec.http ? [ALPN, 'http/1.1'] : [ALPN],
          handshakeTimeout: this.host.handshakeTimeout,
        });
      } catch (err) {
        throw new PosternError(ErrorCode.CONFIG, `bad TLS certificate or key: ${(err as Error).message}`, { cause: err });
      }
      server.on('secureConnection', (s: TLSSocket) => this.onSecure(s));
      server.on('tlsClientError', (err: Error, s: TLSSocket) => {
        this.host.log.debug('TLS handshake failed', { error: err.message, port: this.spec.port });
        s.destroy();
      });
    } else {
      server = net.createServer({ noDelay: true }, (s) => this.onPlain(s));
    }
    this.server = server;
    return bindServer(server, this.spec.port, this.spec.host, (err) => this.host.log.error('listener error', { port: this.spec.port, error: err.message })).catch((err: unknown) => {
      this.server = null;
      throw err;
    });
  }

  /** The bound address, or null when not listening. */
  address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null | undefined) ?? null;
  }

  /**
   * Re-reads the certificate and key: new connections get them, open ones keep theirs. A
   * file that cannot be read or parsed keeps the old pair and logs an error. Returns
   * whether the new pair is in use.
   */
  reloadCertificates(): boolean {
    if (this.spec.tls === null || !(this.server instanceof tls.Server)) return false;
    try {
      const { cert, key } = this.readPem();
      this.server.setSecureContext({ cert, key, minVersion: 'TLSv1.2', ...CIPHERS, ALPNProtocols: this.spec.http ? [ALPN, 'http/1.1'] : [ALPN] } as tls.SecureContextOptions);
      this.host.log.info('TLS certificate reloaded', { port: this.address()?.port ?? this.spec.port });
      return true;
    } catch (err) {
      this.host.log.error('TLS certificate reload failed; keeping the old one', { port: this.spec.port, error: (err as Error).message });
      return false;
    }
  }

  /** Stops accepting; drops connections still in TLS or HTTP (those handed over are the router's). */
  close(): Promise<void> {
    const server = this.server;
    for (const s of this.pending) s.destroy();
    this.pending.clear();
    this.wss?.close();
    if (server === null) return Promise.resolve();
    return new Promise<void>((r) => server.close(() => r()));
  }

  private onPlain(s: Socket): void {
    if (!this.spec.http) {
      this.host.accept(s, s.remoteAddress ?? '', s.remotePort);
      return;
    }
    this.sniff(s);
  }

  private onSecure(s: TLSSocket): void {
    // [P-13.2] ALPN postern/1 (or a plain TLS listener): the postern stream starts at once.
    if (!this.spec.http || s.alpnProtocol === ALPN) {
      this.host.accept(s, s.remoteAddress ?? '', s.remotePort);
      return;
    }
    this.sniff(s);
  }

  /**
   * [P-13.5] On an HTTP-enabled port the first byte decides: the postern magic (or any byte
   * that is not an ASCII capital) goes to the router, whose magic check answers it (§2.2);
   * an HTTP method goes to the upgrade handling.
   */
  private sniff(s: Socket): void {
    // Streams still in their HTTP head are not yet the router's connections: bound them here.
    if (this.pending.size >= MAX_PENDING) {
      s.destroy();
      return;
    }
    this.pending.add(s);
    const timer = setTimeout(() => s.destroy(), this.host.handshakeTimeout);
    const cleanup = (): void => {
      clearTimeout(timer);
      this.pending.delete(s);
    };
    s.once('close', cleanup);
    s.on('error', () => undefined);
    s.once('data', (chunk: Buffer) => {
      s.pause();
      const b = chunk[0]!;
      if (b === FIRST_MAGIC_BYTE || b < 0x41 || b > 0x5a) {
        cleanup();
        s.off('close', cleanup);
        s.unshift(chunk);
        this.handOver(s, s);
        return;
      }
      readHead(s, this.host.handshakeTimeout, ErrorCode.UPGRADE_REFUSED, chunk).then(
        ({ head, rest }) => {
          cleanup();
          s.off('close', cleanup);
          this.onHead(s, head, rest);
        },
        () => {
          cleanup();
          if (!s.destroyed) s.end(refusalResponse(431));
        },
      );
    });
  }

  private handOver(s: Socket, stream: Duplex): void {
    this.host.accept(stream, s.remoteAddress ?? '', s.remotePort);
    // The sniffing left the socket paused; the router's reader is attached now.
    if (!stream.destroyed) stream.resume();
  }

  /** [P-13.3] [P-13.4] [P-13.5] answers one HTTP request head. */
  private onHead(s: Socket, head: HttpHead | null, rest: Buffer): void {
    const refuse = (status: 400 | 404 | 426): void => {
      s.end(refusalResponse(status));
      setTimeout(() => s.destroy(), 1000).unref();
    };
    if (head === null || head.line[0] !== 'GET' || !/^HTTP\/1\.[01]$/.test(head.line[2])) return refuse(400);
    const target = head.line[1];
    const path = target.split('?')[0];
    if (path !== this.spec.path) return refuse(404);
    const h = head.headers;
    if (hasToken(h['upgrade'], UPGRADE_TOKEN) && hasToken(h['connection'], 'upgrade')) {
      s.write(UPGRADE_RESPONSE);
      if (rest.length > 0) s.unshift(rest);
      this.handOver(s, s);
      return;
    }
    if (hasToken(h['upgrade'], 'websocket') && hasToken(h['sec-websocket-protocol'], UPGRADE_TOKEN) && this.wss !== null) {
      // ws checks the key, version and method itself and answers 400 when they are wrong.
      const req = { method: head.line[0], url: target, headers: h };
      this.wss.handleUpgrade(req as never, s, rest, (ws) => {
        const d = new WebSocketDuplex(ws);
        this.host.accept(d, s.remoteAddress ?? '', s.remotePort);
        s.resume();
      });
      return;
    }
    refuse(426);
  }
}

/** A bound listener, as `Router.addresses()` reports it. */
export interface BoundListener {
  /** `tcp`, `tls`, `http` or `https`. */
  transport: string;
  address: AddressInfo;
}

/** A router's listeners, opened and closed together. */
export class ListenerSet {
  private readonly all: Listener[];
  private readonly log: Logger;

  constructor(specs: readonly ResolvedListener[], host: ListenerHost) {
    this.all = specs.map((spec) => new Listener(spec, host));
    this.log = host.log;
  }

  /** Opens every listener and logs each; if one fails, closes the others and rejects. Resolves with the first address. */
  async open(routerId: number): Promise<AddressInfo> {
    let addrs: AddressInfo[];
    try {
      addrs = await Promise.all(this.all.map((l) => l.listen()));
    } catch (err) {
      await this.close();
      throw err;
    }
    this.all.forEach((l, i) => this.log.info('listening', { host: addrs[i]!.address, port: addrs[i]!.port, transport: l.kind, router: routerHex(routerId) }));
    return addrs[0]!;
  }

  /** The first listener's address, or null. */
  first(): AddressInfo | null {
    return this.all[0]?.address() ?? null;
  }

  addresses(): BoundListener[] {
    const out: BoundListener[] = [];
    for (const l of this.all) {
      const a = l.address();
      if (a !== null) out.push({ transport: l.kind, address: a });
    }
    return out;
  }

  /** Re-reads every TLS listener's certificate; how many took a new one. */
  reloadCertificates(): number {
    let n = 0;
    for (const l of this.all) if (l.reloadCertificates()) n++;
    return n;
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((l) => l.close()));
  }
}

/** [P-12.7] Logs a warning per plain listener not bound to loopback: tokens would cross the network in the clear. */
export function warnTokensInClear(log: Logger, bound: readonly BoundListener[]): void {
  for (const l of bound) {
    if ((l.transport !== 'tcp' && l.transport !== 'http') || /^(127\.|::1$|::ffff:127\.)/.test(l.address.address)) continue;
    log.warn('admission tokens are in use on a plain (non-TLS) listener: they cross the network in the clear; add a TLS listener (PROTOCOL.md section 13)', {
      host: l.address.address,
      port: l.address.port,
    });
  }
}
