/**
 * A bounded least-recently-used map from agent ID (text form) to the X25519 public key the
 * key directory returned for it. [P-11.4]
 *
 * Caching is sound because a router never reissues an ID (96 random bits, §5.3): an entry
 * can only go stale if its agent resumes the same ID with another key, and a mismatch with
 * a cached key is always checked against the directory again (see the agent).
 *
 * @module
 */

/** A bounded LRU cache of looked-up public keys. */
export class KeyCache {
  private readonly map = new Map<string, Buffer>();

  /** @param capacity entries kept; 0 keeps none. */
  constructor(readonly capacity: number) {}

  /** Entries held. */
  get size(): number {
    return this.map.size;
  }

  /** The key cached for `id`, marking it most recently used. */
  get(id: string): Buffer | undefined {
    const key = this.map.get(id);
    if (key !== undefined) {
      this.map.delete(id);
      this.map.set(id, key);
    }
    return key;
  }

  /** Caches `key` for `id`, dropping the least recently used entry beyond `capacity`. */
  set(id: string, key: Buffer): void {
    if (this.capacity === 0) return;
    this.map.delete(id);
    this.map.set(id, key);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }

  /** Forgets `id`. */
  delete(id: string): void {
    this.map.delete(id);
  }
}
