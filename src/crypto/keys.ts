import { constants as fsConstants } from 'node:fs';
import { open as openFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import type { KeyPair } from './sealed-box.js';
import { X25519_KEY_SIZE, isSmallOrder, x25519Base } from './x25519.js';

export type { KeyPair } from './sealed-box.js';

/**
 * Static X25519 keys of an agent, and the key file the CLI keeps them in. [P-D.6]
 *
 * Key file: UTF-8 JSON, mode 0600, at most 4 KiB:
 * `{"type":"postern-x25519-key","version":1,"publicKey":"<base64>","secretKey":"<base64>"}`
 * (standard base64 with padding, 32 bytes each; other fields are ignored).
 */

/** The `type` field of a key file. */
export const KEY_FILE_TYPE = 'postern-x25519-key';
/** The `version` field of a key file this code writes and reads. */
export const KEY_FILE_VERSION = 1;
/** Largest key file read; a real one is about 150 bytes. */
export const MAX_KEY_FILE_SIZE = 4096;

/** A fresh X25519 key pair from the OS CSPRNG (through tweetnacl's randomBytes). */
export function generateKeyPair(): KeyPair {
  const secretKey = nacl.randomBytes(X25519_KEY_SIZE);
  return { publicKey: x25519Base(secretKey), secretKey };
}

/**
 * The key pair of an existing secret key (32 bytes, copied).
 *
 * @throws PosternError INVALID_ARGUMENT when it is not 32 bytes.
 */
export function keyPairFromSecretKey(secretKey: Uint8Array): KeyPair {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== X25519_KEY_SIZE) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, `a secret key is ${X25519_KEY_SIZE} bytes`);
  }
  const sk = Uint8Array.from(secretKey);
  return { publicKey: x25519Base(sk), secretKey: sk };
}

/** The text form of a public key (standard base64, 44 characters), as shown by the CLI. */
export function formatPublicKey(publicKey: Uint8Array): string {
  return Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
}

const B64_KEY_RE = /^[A-Za-z0-9+/]{43}=$/;

/**
 * Parses the text form of a public key (standard base64 of 32 bytes; base64url accepted).
 *
 * @throws PosternError INVALID_ARGUMENT for anything else, or a key of small order.
 */
export function parsePublicKey(text: string): Uint8Array {
  const normalized = typeof text === 'string' ? text.trim().replace(/-/g, '+').replace(/_/g, '/') : '';
  const padded = normalized.length === 43 ? `${normalized}=` : normalized;
  if (!B64_KEY_RE.test(padded)) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'a public key is 32 bytes in base64 (44 characters)');
  }
  const key = Uint8Array.from(Buffer.from(padded, 'base64'));
  if (isSmallOrder(key)) throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'public key has small order');
  return key;
}

/** Options of {@link saveKeyFile}. */
export interface SaveKeyFileOptions {
  /** Replace an existing file (atomically, by rename). Default false: fail with KEY_FILE_EXISTS. */
  overwrite?: boolean;
}

/**
 * Writes `keyPair` to `path` as a key file with mode 0600. Without `overwrite` it refuses an
 * existing path (even a dangling symlink), creating the file exclusively so two writers
 * cannot both win. With `overwrite` it writes a temporary file beside it and renames it
 * over, so a crash never leaves a half-written key and the old file's mode is not inherited.
 *
 * @throws PosternError KEY_FILE_EXISTS, INVALID_ARGUMENT (key pair), or the fs error for
 *   anything else (missing directory, no permission).
 */
export async function saveKeyFile(path: string, keyPair: KeyPair, options: SaveKeyFileOptions = {}): Promise<void> {
  const pk = keyPair?.publicKey;
  const sk = keyPair?.secretKey;
  if (!(pk instanceof Uint8Array) || pk.length !== 32 || !(sk instanceof Uint8Array) || sk.length !== 32) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'saveKeyFile: keyPair must hold two 32-byte keys');
  }
  // A file that loadKeyFile would refuse is better refused now, before it replaces a good one.
  if (!Buffer.from(x25519Base(sk)).equals(pk)) {
    throw new PosternError(ErrorCode.INVALID_ARGUMENT, 'saveKeyFile: the public key does not belong to the secret key');
  }
  const text = `${JSON.stringify({
    type: KEY_FILE_TYPE,
    version: KEY_FILE_VERSION,
    publicKey: Buffer.from(pk).toString('base64'),
    secretKey: Buffer.from(sk).toString('base64'),
  })}\n`;
  // A random temporary name, so two concurrent overwrites cannot collide on it.
  const target = options.overwrite === true ? join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`) : path;
  let fh;
  try {
    // O_EXCL also refuses to follow a symlink at the path.
    fh = await openFile(target, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new PosternError(ErrorCode.KEY_FILE_EXISTS, `key file ${path} exists (overwrite not asked for)`, { cause: err });
    }
    throw err;
  }
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(target).catch(() => undefined);
    throw err;
  }
  await fh.close();
  if (target !== path) {
    try {
      await rename(target, path);
    } catch (err) {
      await unlink(target).catch(() => undefined);
      throw err;
    }
  }
}

/**
 * Reads a key file written by {@link saveKeyFile} and checks it: a regular file (not a
 * symlink), no permission bits for group or others (on POSIX), at most 4 KiB, the right
 * JSON shape, and a public key that belongs to the secret key.
 *
 * @throws PosternError KEY_FILE_NOT_FOUND, KEY_FILE_INSECURE, BAD_KEY_FILE; the fs error
 *   for anything else (no permission to read).
 */
export async function loadKeyFile(path: string): Promise<KeyPair> {
  let fh;
  try {
    // Open first and check what was opened (fstat), so the file cannot be swapped between
    // the check and the read. O_NOFOLLOW refuses a symlink; O_NONBLOCK keeps a FIFO planted
    // at the path from hanging us.
    fh = await openFile(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0) | (fsConstants.O_NONBLOCK ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new PosternError(ErrorCode.KEY_FILE_NOT_FOUND, `no key file at ${path}`, { cause: err });
    }
    if (code === 'ELOOP') {
      throw new PosternError(ErrorCode.KEY_FILE_INSECURE, `key file ${path} is a symlink`, { cause: err });
    }
    throw err;
  }
  let text: string;
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw new PosternError(ErrorCode.KEY_FILE_INSECURE, `key file ${path} is not a regular file`);
    }
    // Windows has no POSIX mode bits worth checking.
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new PosternError(
        ErrorCode.KEY_FILE_INSECURE,
        `key file ${path} has mode 0${(st.mode & 0o777).toString(8)}; it must not be accessible to group or others (chmod 600)`,
      );
    }
    if (st.size > MAX_KEY_FILE_SIZE) {
      throw new PosternError(ErrorCode.BAD_KEY_FILE, `key file ${path} is larger than ${MAX_KEY_FILE_SIZE} bytes`);
    }
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  return parseKeyFile(text, path);
}

/**
 * Parses the text of a key file (see {@link loadKeyFile}).
 *
 * @throws PosternError BAD_KEY_FILE.
 */
export function parseKeyFile(text: string, where = 'key file'): KeyPair {
  const bad = (why: string): PosternError => new PosternError(ErrorCode.BAD_KEY_FILE, `${where}: ${why}`);
  if (text.length > MAX_KEY_FILE_SIZE) throw bad('too large');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw bad('not a JSON object');
  const { type, version, publicKey, secretKey } = doc as Record<string, unknown>;
  if (type !== KEY_FILE_TYPE) throw bad(`type is not ${JSON.stringify(KEY_FILE_TYPE)}`);
  if (version !== KEY_FILE_VERSION) throw bad(`unsupported version ${JSON.stringify(version)}`);
  const decode = (v: unknown, name: string): Uint8Array => {
    if (typeof v !== 'string' || !B64_KEY_RE.test(v)) throw bad(`${name} is not 32 bytes of base64`);
    return Uint8Array.from(Buffer.from(v, 'base64'));
  };
  const pk = decode(publicKey, 'publicKey');
  const sk = decode(secretKey, 'secretKey');
  const derived = x25519Base(sk);
  if (!Buffer.from(derived).equals(pk)) throw bad('publicKey does not belong to secretKey');
  return { publicKey: pk, secretKey: sk };
}
