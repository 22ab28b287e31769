/**
 * What the CLI prints: router log lines, received messages, and errors with their exit
 * status. Kept apart from the command definitions so the formats are in one place.
 *
 * @module
 */
import { ErrorCode, PosternError } from '../src/index.js';

/**
 * Exit statuses of the CLI. Documented in `postern --help` and README.md.
 */
export const ExitStatus = {
  /** Done, or stopped by SIGINT/SIGTERM after a clean shutdown. */
  OK: 0,
  /** A bug or an error without a more specific status. */
  FAILURE: 1,
  /** Bad input: unknown option, bad value, invalid agent ID, bad config or key file. */
  USAGE: 2,
  /** The router refused the message (ERROR frame), e.g. POSTERN_ERR_UNKNOWN_DESTINATION, or the agent (POSTERN_ERR_ADMISSION_DENIED). */
  REFUSED: 3,
  /** Network: could not reach the router, the connection was closed or lost, or the router could not listen. */
  CONNECTION: 4,
} as const;

/** Bad input from the user: arguments, options, config and key files. */
const USAGE_CODES: ReadonlySet<string> = new Set([
  ErrorCode.INVALID_ARGUMENT,
  ErrorCode.INVALID_OPTION,
  ErrorCode.INVALID_ID,
  ErrorCode.CONFIG,
  ErrorCode.KEY_FILE_NOT_FOUND,
  ErrorCode.KEY_FILE_EXISTS,
  ErrorCode.KEY_FILE_INSECURE,
  ErrorCode.BAD_KEY_FILE,
  ErrorCode.UNKNOWN_HOST,
]);

/** Refusals of the whole connection that retrying will not change: a script must not spin on them. */
const REFUSED_CODES: ReadonlySet<string> = new Set([ErrorCode.ADMISSION_DENIED]);

/**
 * Per-message refusals without a wire code of 1..63: the agent's own checks before sending.
 * (Every wire code 1..63 travels in an ERROR frame about one message, so it is a refusal too.)
 */
const LOCAL_REFUSED_CODES: ReadonlySet<string> = new Set([ErrorCode.FRAME_TOO_LARGE, ErrorCode.SEND_BUFFER_FULL]);

/** Local codes about the connection (wire codes 0 and 64+ are CLOSE codes: the connection too). */
const CONNECTION_CODES: ReadonlySet<string> = new Set([
  ErrorCode.CLOSED,
  ErrorCode.NOT_CONNECTED,
  ErrorCode.CONNECT_TIMEOUT,
  ErrorCode.CONNECTION_LOST,
  ErrorCode.NOT_SENT,
  ErrorCode.DRAINING,
  ErrorCode.CONNECT_FAILED,
  ErrorCode.LISTEN_FAILED,
]);

/** Node system errors that mean "the network said no". */
const NETWORK_ERRNOS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRINUSE',
  'EADDRNOTAVAIL',
  'EACCES',
]);

/** The code to print for an error: its `code` when it has a string one, else POSTERN_ERR_INTERNAL. */
export function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code !== '' ? code : ErrorCode.INTERNAL;
}

/** The exit status for an error, by its code (and wire code, for codes from the router). */
export function exitStatusFor(err: unknown): number {
  const code = codeOf(err);
  if (USAGE_CODES.has(code)) return ExitStatus.USAGE;
  if (LOCAL_REFUSED_CODES.has(code) || REFUSED_CODES.has(code)) return ExitStatus.REFUSED;
  if (NETWORK_ERRNOS.has(code) || CONNECTION_CODES.has(code)) return ExitStatus.CONNECTION;
  const wire = (err as { wireCode?: unknown } | null)?.wireCode;
  if (code.startsWith('POSTERN_ERR_') && typeof wire === 'number' && code !== ErrorCode.INTERNAL) {
    return wire >= 1 && wire <= 63 ? ExitStatus.REFUSED : ExitStatus.CONNECTION;
  }
  return ExitStatus.FAILURE;
}

/** The first system error code (`ECONNREFUSED`, …) in `err` and its chain of causes. */
export function errnoOf(err: unknown): string | undefined {
  return (systemErrorIn(err) as { code?: string } | undefined)?.code;
}

/** The first error with a system error code in `err` and its chain of causes. */
function systemErrorIn(err: unknown): unknown {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return e;
  }
  return undefined;
}

/** Connection-open failures: the router could not be reached at all. */
const CONNECT_ERRNOS: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/**
 * A failed dial in the documented form: a host that does not resolve is bad input
 * (POSTERN_ERR_UNKNOWN_HOST), a router that cannot be reached is POSTERN_ERR_CONNECT_FAILED
 * (not CONNECTION_LOST: there was never a connection). Anything else is returned as is.
 */
export function dialError(err: unknown, target: string): unknown {
  const errno = errnoOf(err);
  const cause = systemErrorIn(err);
  if (errno === 'ENOTFOUND') return new PosternError(ErrorCode.UNKNOWN_HOST, `router ${target}: the host name does not resolve (ENOTFOUND)`, { cause });
  if (errno !== undefined && CONNECT_ERRNOS.has(errno)) {
    const why = errno === 'ECONNREFUSED' ? 'connection refused: no router listens there' : errno === 'EAI_AGAIN' ? 'name lookup failed for now' : 'unreachable';
    return new PosternError(ErrorCode.CONNECT_FAILED, `router ${target}: ${why} (${errno})`, { cause });
  }
  return err;
}

/**
 * A failed listen in the documented form: port in use or not permitted is
 * POSTERN_ERR_LISTEN_FAILED (exit 4: it may clear); an address that is not this host's, or a
 * host name that does not resolve, is bad input (exit 2).
 */
export function listenError(err: unknown, what: string, host: string, port: number): unknown {
  const errno = errnoOf(err);
  const at = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (errno) {
    case 'EADDRINUSE':
      return new PosternError(ErrorCode.LISTEN_FAILED, `${what} ${at}: the port is in use by another process (EADDRINUSE)`, { cause: err });
    case 'EACCES':
      return new PosternError(ErrorCode.LISTEN_FAILED, `${what} ${at}: not permitted (EACCES; ports below 1024 need CAP_NET_BIND_SERVICE)`, { cause: err });
    case 'EADDRNOTAVAIL':
      return new PosternError(ErrorCode.INVALID_OPTION, `${what} ${at}: ${host} is not an address of this machine (EADDRNOTAVAIL)`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new PosternError(ErrorCode.UNKNOWN_HOST, `${what} ${at}: the host name does not resolve (${errno})`, { cause: err });
    default:
      return err;
  }
}

/** `error: CODE: message`, one line, for stderr. */
export function formatError(err: unknown): string {
  const code = codeOf(err);
  let message = err instanceof Error ? err.message : String(err);
  if (message.startsWith(`${code}: `)) message = message.slice(code.length + 2);
  // Node's system errors read "listen EADDRINUSE: address already in use …".
  const syscall = (err as { syscall?: unknown } | null)?.syscall;
  if (typeof syscall === 'string' && message.startsWith(`${syscall} ${code}: `)) message = `${syscall}: ${message.slice(syscall.length + code.length + 3)}`;
  // A socket error behind a coded one (ECONNREFUSED behind POSTERN_ERR_CONNECTION_LOST) is
  // what the user can act on, so name it.
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string' && !message.includes(cause.code)) message += ` (${cause.code})`;
  return `error: ${code}: ${message.replace(/\s*\n\s*/g, ' ')}`;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload as text when it is valid UTF-8, else undefined. */
export function utf8OrUndefined(data: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(data);
  } catch {
    return undefined;
  }
}

/**
 * What a received message says about its sender, beyond `from` (a subset of the library's
 * Message, so the printers need no agent).
 */
export interface MessageMeta {
  sealed: boolean;
  anonymous: boolean;
  verified: boolean;
  verification: string;
  sender: { id: string | undefined; publicKey: Uint8Array } | undefined;
}

/**
 * The JSON fields for `meta`: none for a plain message from a named sender (the line is
 * then exactly as before sealing existed); otherwise `sealed`, `anonymous`, `verified`,
 * `verification`, and `sender` ({ id?, publicKey } in base64) when the envelope named one.
 */
function metaJson(meta: MessageMeta | undefined): Record<string, unknown> {
  if (meta === undefined || (!meta.sealed && !meta.anonymous)) return {};
  const out: Record<string, unknown> = { sealed: meta.sealed, anonymous: meta.anonymous, verified: meta.verified, verification: meta.verification };
  if (meta.sender !== undefined) {
    out['sender'] = { ...(meta.sender.id !== undefined ? { id: meta.sender.id } : {}), publicKey: Buffer.from(meta.sender.publicKey).toString('base64') };
  }
  return out;
}

/**
 * The tags of a plain-text message line, in brackets, or '' for a plain message from a
 * named sender: `anonymous`, `sealed`, `verified <id>` / `unverified(<verification>)`, and
 * `sender <id>` when the envelope names an ID that is not verified.
 */
export function metaTags(meta: MessageMeta | undefined): string {
  if (meta === undefined || (!meta.sealed && !meta.anonymous)) return '';
  const tags: string[] = [];
  if (meta.anonymous) tags.push('anonymous');
  if (meta.sealed) tags.push('sealed');
  if (meta.verified) tags.push(`verified ${meta.sender?.id ?? ''}`.trimEnd());
  else if (meta.sealed && meta.verification !== 'none') {
    tags.push(`unverified(${meta.verification})`);
    if (meta.sender?.id !== undefined) tags.push(`sender ${meta.sender.id}`);
  }
  return `[${tags.join(', ')}]`;
}

/**
 * One JSON line for a received message. `data` is the payload as text when it is valid
 * UTF-8 (and `base64` is false); otherwise it is base64 and the object carries
 * `"encoding":"base64"`. A sealed or anonymous message also carries the fields of
 * {@link MessageMeta} (see metaJson).
 */
export function messageJson(from: string, data: Uint8Array, base64: boolean, meta?: MessageMeta): string {
  const text = base64 ? undefined : utf8OrUndefined(data);
  if (text !== undefined) return JSON.stringify({ type: 'message', from, data: text, ...metaJson(meta) });
  return JSON.stringify({ type: 'message', from, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'), encoding: 'base64', ...metaJson(meta) });
}

/**
 * The text with what would break the one-line-per-message rule escaped: `\\` for a
 * backslash (so the escapes are unambiguous), `\n` and `\r` for line breaks, `\xNN` for
 * other control characters except tab, `\uNNNN` for NEL and the Unicode line and
 * paragraph separators.
 */
export function escapeLine(text: string): string {
  return text.replace(/[\\\x00-\x08\x0a-\x1f\x7f\u0085\u2028\u2029]/g, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    const n = c.charCodeAt(0);
    return n < 0x80 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}

/**
 * One human line for a received message: `<from> <text>`. One trailing newline of the
 * payload is dropped (so `echo hi | postern send` prints `hi`, not `hi` and a blank line);
 * the rest is escaped by {@link escapeLine}, so a message is always exactly one line; a
 * payload that is not UTF-8 prints as `base64:<data>`.
 */
export function messagePlain(from: string, data: Uint8Array, base64: boolean, meta?: MessageMeta): string {
  const tags = metaTags(meta);
  const head = tags === '' ? from : `${from} ${tags}`;
  let text = base64 ? undefined : utf8OrUndefined(data);
  if (text === undefined) return `${head} base64:${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')}`;
  if (text.endsWith('\r\n')) text = text.slice(0, -2);
  else if (text.endsWith('\n')) text = text.slice(0, -1);
  return `${head} ${escapeLine(text)}`;
}
