import type { LookupResultBody } from '../protocol/control.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';
import { KeyCache } from './key-cache.js';

/**
 * The agent's side of the router's key directory [P-11.4]: LOOKUPs in flight by ref, one
 * lookup per ID however many ask meanwhile, and the cache of keys already returned.
 *
 * The directory does not write to the connection itself: `send` (given by the agent)
 * writes the LOOKUP, or returns why it cannot (not connected), so this file knows nothing
 * about sessions or states.
 *
 * @module
 */

/** Called with the key, or with why there is none. */
export type KeyCallback = (key: Buffer | undefined, err: PosternError | undefined) => void;

/** Where a lookup's answer goes: called synchronously from the frame loop or from {@link KeyDirectory.failAll}. */
export interface LookupHandlers {
  resolve(key: Buffer): void;
  reject(err: unknown): void;
}

/**
 * Writes a LOOKUP for `id` (16 bytes) and returns its ref (taken from the SEND seq space, so
 * an ERROR's seq names exactly one of them), or returns the error that stops it being sent.
 */
export type LookupSender = (id: Buffer) => number | PosternError;

/** Lookups in flight, their waiters, and the key cache. */
export class KeyDirectory {
  private readonly cache: KeyCache;
  private readonly inFlight = new Map<number, LookupHandlers>();
  /** Lookups in flight by text ID, with everyone waiting for each. */
  private readonly waiters = new Map<string, KeyCallback[]>();

  constructor(
    cacheSize: number,
    private readonly send: LookupSender,
  ) {
    this.cache = new KeyCache(cacheSize);
  }

  /** The cached key of `id` (text form), if any. */
  cached(id: string): Buffer | undefined {
    return this.cache.get(id);
  }

  /** Sends a LOOKUP for `id` (16 bytes) whose answer goes to `handlers`, or returns why it cannot be sent. */
  lookup(id: Buffer, handlers: LookupHandlers): PosternError | undefined {
    const ref = this.send(id);
    if (typeof ref !== 'number') return ref;
    this.inFlight.set(ref, handlers);
    return undefined;
  }

  /**
   * The directory's key for `id` (text form): cached (when `useCache`), else looked up once
   * however many ask meanwhile. `done` runs synchronously on a cache hit.
   */
  keyThen(id: string, useCache: boolean, done: KeyCallback): void {
    if (useCache) {
      const hit = this.cache.get(id);
      if (hit !== undefined) {
        done(hit, undefined);
        return;
      }
    }
    const waiting = this.waiters.get(id);
    if (waiting !== undefined) {
      waiting.push(done);
      return;
    }
    const waiters = [done];
    this.waiters.set(id, waiters);
    const settle = (key: Buffer | undefined, err: PosternError | undefined): void => {
      this.waiters.delete(id);
      if (key !== undefined) this.cache.set(id, key);
      for (const w of waiters) w(key, err);
    };
    const err = this.lookup(Buffer.from(id, 'hex'), {
      resolve: (key) => settle(key, undefined),
      reject: (e) => settle(undefined, toPosternError(e)),
    });
    if (err !== undefined) settle(undefined, err);
  }

  /** {@link keyThen} with the cache, as a promise. */
  key(id: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.keyThen(id, true, (key, err) => (key !== undefined ? resolve(key) : reject(err)));
    });
  }

  /** A LOOKUP_RESULT: settles its lookup (an unknown ref is ignored). */
  onResult(body: LookupResultBody): void {
    const l = this.inFlight.get(body.ref);
    if (l === undefined) return;
    this.inFlight.delete(body.ref);
    l.resolve(Buffer.from(body.key));
  }

  /** An ERROR whose seq may be a lookup's ref: true when it was one (and is now settled). */
  onError(seq: number, err: PosternError): boolean {
    const l = this.inFlight.get(seq);
    if (l === undefined) return false;
    this.inFlight.delete(seq);
    l.reject(err);
    return true;
  }

  /** Rejects every lookup in flight (the connection is gone). */
  failAll(err: PosternError): void {
    const ls = [...this.inFlight.values()];
    this.inFlight.clear();
    for (const l of ls) l.reject(err);
  }
}

/** `err` as a coded error (an unexpected one becomes POSTERN_ERR_INTERNAL with it as cause). */
export function toPosternError(err: unknown): PosternError {
  return err instanceof PosternError ? err : new PosternError(ErrorCode.INTERNAL, 'unexpected failure', { cause: err });
}
