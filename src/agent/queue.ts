/**
 * A bounded FIFO with an async-iterator face, used for both the agent's messages and each
 * `status()` subscriber.
 *
 * @module
 */

/** What a {@link BoundedQueue} does with an item pushed while it holds `capacity` items. */
export type OverflowPolicy =
  /**
   * Keep it and report "full": `push()` returns false from the moment the queue holds
   * `capacity` items; the producer must stop producing (the agent pauses its socket) until
   * `onDrain` fires. Items pushed meanwhile are kept, so the producer bounds the overshoot.
   */
  | 'backpressure'
  /** Drop the oldest item and count it in `dropped`. The producer never waits. */
  | 'drop-oldest';

/** Options of a {@link BoundedQueue}. */
export interface BoundedQueueOptions<T = unknown> {
  /** Items held before the overflow policy applies; at least 1. */
  capacity: number;
  /** See {@link OverflowPolicy}. */
  overflow: OverflowPolicy;
  /**
   * With `'backpressure'`: called once when a full queue has been drained down to
   * `lowWater` items (default `floor(capacity / 2)`), so the producer may resume.
   */
  onDrain?: () => void;
  /** See `onDrain`. */
  lowWater?: number;
  /**
   * With `'backpressure'`: also full once the items weigh `maxBytes` (by `weigh`), and
   * drained only when back to half of it. Default: no byte bound.
   */
  maxBytes?: number;
  /** The weight of an item for `maxBytes`, e.g. a message's payload length. */
  weigh?: (item: T) => number;
}

interface Waiter<T> {
  resolve: (r: IteratorResult<T, undefined>) => void;
  owner: object | undefined;
}

const DONE: IteratorResult<never, undefined> = Object.freeze({ done: true, value: undefined });

/**
 * A bounded queue. Consumers take items with `shift()` (synchronous) or `next()` /
 * `for await` (asynchronous, FIFO among concurrent waiters). `end()` lets consumers take
 * what is left, then reports done. Storage is an array with a moving head, compacted as it
 * is consumed, so taking an item is O(1) amortised.
 */
export class BoundedQueue<T> implements AsyncIterableIterator<T, undefined> {
  readonly capacity: number;
  private readonly overflow: OverflowPolicy;
  private readonly lowWater: number;
  private readonly onDrain: (() => void) | undefined;
  private items: T[] = [];
  private head = 0;
  private waiters: Waiter<T>[] = [];
  private ended = false;
  private full = false;
  private droppedCount = 0;
  private readonly maxBytes: number;
  private readonly weigh: ((item: T) => number) | undefined;
  private weight = 0;

  constructor(options: BoundedQueueOptions<T>) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1) throw new RangeError('capacity must be an integer >= 1');
    this.capacity = options.capacity;
    this.overflow = options.overflow;
    this.lowWater = options.lowWater ?? Math.floor(options.capacity / 2);
    this.onDrain = options.onDrain;
    this.maxBytes = options.maxBytes ?? Infinity;
    this.weigh = options.maxBytes === undefined ? undefined : options.weigh;
  }

  /** Total weight of the items waiting (0 without `weigh`). */
  get bytes(): number {
    return this.weight;
  }

  /** Items waiting. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Items dropped by the `'drop-oldest'` policy since creation. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** True once `end()` was called (items may still be waiting). */
  get isEnded(): boolean {
    return this.ended;
  }

  /** True while a consumer is waiting in `next()`. */
  get hasWaiters(): boolean {
    return this.waiters.length > 0;
  }

  /**
   * Adds an item, handing it straight to a waiting consumer if there is one. Returns false
   * when the queue is full afterwards (`'backpressure'`) or after `end()` (the item is
   * discarded then).
   */
  push(item: T): boolean {
    if (this.ended) return false;
    const w = this.waiters.shift();
    if (w !== undefined) {
      w.resolve({ done: false, value: item });
      return true;
    }
    if (this.length >= this.capacity && this.overflow === 'drop-oldest') {
      this.head++;
      this.droppedCount++;
      this.compact();
    }
    this.items.push(item);
    if (this.weigh !== undefined) this.weight += this.weigh(item);
    if ((this.length >= this.capacity || this.weight >= this.maxBytes) && this.overflow === 'backpressure') this.full = true;
    return !this.full;
  }

  /** Takes the oldest item synchronously, or undefined when empty. */
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head]!;
    (this.items as (T | undefined)[])[this.head] = undefined;
    this.head++;
    this.compact();
    if (this.weigh !== undefined) this.weight -= this.weigh(item);
    if (this.full && this.length <= this.lowWater && this.weight <= this.maxBytes / 2) {
      this.full = false;
      this.onDrain?.();
    }
    return item;
  }

  /** Ends the queue: waiting consumers get done now, later ones after the remaining items. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve(DONE);
  }

  /** Ends the queue and discards what is left. */
  clear(): void {
    this.end();
    this.items = [];
    this.head = 0;
    this.weight = 0;
  }

  /**
   * The next item, waiting for one if needed; done after `end()` once empty. `owner` tags the
   * wait so that {@link release} can end it (an iterator returned early must not swallow
   * the next item).
   */
  next(owner?: object): Promise<IteratorResult<T, undefined>> {
    if (this.length > 0) return Promise.resolve({ done: false, value: this.shift()! });
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve) => this.waiters.push({ resolve, owner }));
  }

  /** Resolves the waits tagged `owner` with done, leaving the queue and other consumers alone. */
  release(owner: object): void {
    const keep: Waiter<T>[] = [];
    for (const w of this.waiters) {
      if (w.owner === owner) w.resolve(DONE);
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /** Ends the queue (breaking out of `for await` over the queue itself ends it). */
  return(): Promise<IteratorResult<T, undefined>> {
    this.clear();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
