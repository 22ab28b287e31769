/**
 * The HTTP/1.1 side of PROTOCOL.md §13.3 and §13.5: the exact upgrade request an agent
 * sends, the exact answers a router gives, and a bounded reader of an HTTP message head.
 *
 * @module
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, PosternError } from '../protocol/errors.js';

/** Largest HTTP head (request or response line and headers) either side reads. [P-13.3] */
export const MAX_HTTP_HEAD = 8192;

/** The token of the `Upgrade` header and the WebSocket subprotocol. [P-13.3] [P-13.4] */
export const UPGRADE_TOKEN = 'postern';

/** The agent's upgrade request, byte for byte. `host` is the Host header value (`name` or `name:port`). [P-13.3] */
export function upgradeRequest(path: string, host: string): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: postern\r\n\r\n`, 'latin1');
}

/** The router's answer that switches to the postern stream, byte for byte. [P-13.3] */
export const UPGRADE_RESPONSE = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: postern\r\n\r\n', 'latin1');

/** The router's answer to an HTTP request it will not upgrade (§13.5), byte for byte. */
export function refusalResponse(status: 400 | 404 | 426 | 431): Buffer {
  const reason = { 400: 'Bad Request', 404: 'Not Found', 426: 'Upgrade Required', 431: 'Request Header Fields Too Large' }[status];
  const body = `This is a postern router (${ErrorCode.UPGRADE_REFUSED}): ${status} ${reason}. See PROTOCOL.md section 13.\n`;
  const upgrade = status === 426 ? 'Upgrade: postern\r\n' : '';
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\n${upgrade}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    'latin1',
  );
}

/** A parsed HTTP message head. Header names are lower case; repeated headers are joined with `, `. */
export interface HttpHead {
  /** Request: method, target, version. Response: version, status, reason. */
  readonly line: [string, string, string];
  readonly headers: Record<string, string>;
}

/** Parses the head text (without the final CRLF CRLF); null when it is not HTTP/1.x. */
export function parseHead(text: string): HttpHead | null {
  const lines = text.split('\r\n');
  const first = /^(\S+) (\S+) (.*)$/.exec(lines[0] ?? '');
  if (first === null) return null;
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(lines[i]!);
    if (m === null) return null;
    const k = m[1]!.toLowerCase();
    headers[k] = headers[k] === undefined ? m[2]! : `${headers[k]}, ${m[2]!}`;
  }
  return { line: [first[1]!, first[2]!, first[3]!], headers };
}

/** Whether a comma-separated header value holds `token` (case-insensitive). */
export function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  const t = token.toLowerCase();
  return value.split(',').some((v) => v.trim().toLowerCase() === t);
}

/**
 * Reads one HTTP head from `stream`: resolves with it and the bytes after it (which belong
 * to whatever follows). Rejects with `code` if the stream ends, errs, sends more than
 * {@link MAX_HTTP_HEAD} bytes without finishing the head, or takes longer than `timeout` ms.
 * Detaches itself either way and leaves the stream paused.
 */
export function readHead(stream: Duplex, timeout: number, code: ErrorCode = ErrorCode.UPGRADE_REFUSED, first?: Buffer): Promise<{ head: HttpHead | null; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = first ?? Buffer.alloc(0);
    const done = (err: PosternError | null, value?: { head: HttpHead | null; rest: Buffer }): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.pause();
      if (err !== null) reject(err);
      else resolve(value!);
    };
    const check = (): boolean => {
      const end = buf.indexOf('\r\n\r\n', 0, 'latin1');
      if (end >= 0 && end + 4 <= MAX_HTTP_HEAD) {
        done(null, { head: parseHead(buf.subarray(0, end).toString('latin1')), rest: buf.subarray(end + 4) });
        return true;
      }
      if (buf.length >= MAX_HTTP_HEAD) {
        done(new PosternError(code, `HTTP head longer than ${MAX_HTTP_HEAD} bytes`));
        return true;
      }
      return false;
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      check();
    };
    const onEnd = (): void => done(new PosternError(ErrorCode.CONNECTION_LOST, 'the connection ended inside the HTTP head'));
    const onError = (err: Error): void => done(new PosternError(ErrorCode.CONNECTION_LOST, `connection error: ${err.message}`, { cause: err }));
    const timer = setTimeout(() => done(new PosternError(ErrorCode.CONNECT_TIMEOUT, `no complete HTTP head within ${timeout} ms`)), timeout);
    if (check()) return;
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    // A caller that peeked at the first chunk left the stream paused.
    stream.resume();
  });
}

/**
 * Agent side of §13.3 on a connected stream: sends the upgrade request, waits for `101`
 * with `Upgrade: postern`, and resolves with the same stream positioned at the router's
 * first postern byte. Anything else rejects with POSTERN_ERR_UPGRADE_REFUSED naming the
 * status. [P-13.3]
 */
export async function clientUpgrade(stream: Duplex, path: string, host: string, timeout: number): Promise<Duplex> {
  stream.write(upgradeRequest(path, host));
  const { head, rest } = await readHead(stream, timeout);
  const ok = head !== null && /^HTTP\/1\.[01]$/.test(head.line[0]) && head.line[1] === '101' && hasToken(head.headers['upgrade'], UPGRADE_TOKEN);
  if (!ok) {
    stream.destroy();
    const status = head === null ? 'a response that is not HTTP' : `${head.line[1]} ${head.line[2]}`;
    throw new PosternError(ErrorCode.UPGRADE_REFUSED, `the upgrade to postern at ${path} was answered with ${status}`, { cause: { status: Number(head?.line[1]) || 0 } });
  }
  if (rest.length > 0) stream.unshift(rest);
  return stream;
}
