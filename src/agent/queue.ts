/**
 * Bounded queues with an async-iterator face: {@link FairQueue} holds the agent's messages
 * (round-robin across senders, bounded in messages and bytes), {@link BoundedQueue} each
 * `status()` subscriber (FIFO).
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

/** An array with a moving head, compacted as it is consumed: `shift()` is O(1) amortised. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head++;
    this.compact();
    return item;
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

/**
 * What both queues share: consumers waiting in `next()`, and the end. A subclass stores the
 * items and calls {@link handOff} first in its `push()`.
 */
abstract class WaitableQueue<T> implements AsyncIterableIterator<T, undefined> {
  private waiters: Waiter<T>[] = [];
  protected ended = false;

  /** Items waiting. */
  abstract get length(): number;

  /** Takes the next item synchronously, or undefined when empty. */
  abstract shift(): T | undefined;

  /** Ends the queue and discards what is left. */
  abstract clear(): void;

  /** True once `end()` was called (items may still be waiting). */
  get isEnded(): boolean {
    return this.ended;
  }

  /** True while a consumer is waiting in `next()`. */
  get hasWaiters(): boolean {
    return this.waiters.length > 0;
  }

  /** Ends the queue: waiting consumers get done now, later ones after the remaining items. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve(DONE);
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

  /** Gives `item` to a waiting consumer (there is one only while the queue is empty). */
  protected handOff(item: T): boolean {
    const w = this.waiters.shift();
    if (w === undefined) return false;
    w.resolve({ done: false, value: item });
    return true;
  }
}

/**
 * A bounded FIFO. Consumers take items with `shift()` (synchronous) or `next()` /
 * `for await` (asynchronous, FIFO among concurrent waiters). `end()` lets consumers take
 * what is left, then reports done. Storage is an array with a moving head, compacted as it
 * is consumed, so taking an item is O(1) amortised.
 */
export class BoundedQueue<T> extends WaitableQueue<T> {
  readonly capacity: number;
  private readonly overflow: OverflowPolicy;
  private readonly lowWater: number;
  private readonly onDrain: (() => void) | undefined;
  private items = new Fifo<T>();
  private full = false;
  private droppedCount = 0;
  private readonly maxBytes: number;
  private readonly weigh: ((item: T) => number) | undefined;
  private weight = 0;

  constructor(options: BoundedQueueOptions<T>) {
    super();
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
    return this.items.length;
  }

  /** Items dropped by the `'drop-oldest'` policy since creation. */
  get dropped(): number {
    return this.droppedCount;
  }

  /**
   * Adds an item, handing it straight to a waiting consumer if there is one. Returns false
   * when the queue is full afterwards (`'backpressure'`) or after `end()` (the item is
   * discarded then).
   */
  push(item: T): boolean {
    if (this.ended) return false;
    if (this.handOff(item)) return true;
    if (this.length >= this.capacity && this.overflow === 'drop-oldest') {
      this.items.shift();
      this.droppedCount++;
    }
    this.items.push(item);
    if (this.weigh !== undefined) this.weight += this.weigh(item);
    if ((this.length >= this.capacity || this.weight >= this.maxBytes) && this.overflow === 'backpressure') this.full = true;
    return !this.full;
  }

  /** Takes the oldest item synchronously, or undefined when empty. */
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items.shift()!;
    if (this.weigh !== undefined) this.weight -= this.weigh(item);
    if (this.full && this.length <= this.lowWater && this.weight <= this.maxBytes / 2) {
      this.full = false;
      this.onDrain?.();
    }
    return item;
  }

  /** Ends the queue and discards what is left. */
  clear(): void {
    this.end();
    this.items = new Fifo<T>();
    this.weight = 0;
  }
}

/** Options of a {@link FairQueue}. */
export interface FairQueueOptions<T> {
  /** Items held before the queue counts as full; an integer >= 1. */
  capacity: number;
  /** Total weight (by `weigh`) held before the queue counts as full; an integer >= 1. */
  maxBytes: number;
  /** The weight of an item, e.g. a message's payload length. */
  weigh: (item: T) => number;
  /** The sender of an item: one sender's items keep their order, senders take turns. */
  key: (item: T) => string;
  /**
   * Called once when a queue that refused more (`push()` returned false) is back to
   * `lowWater` items (default `floor(capacity / 2)`) and half of `maxBytes`.
   */
  onDrain?: () => void;
  /** See `onDrain`. */
  lowWater?: number;
}

/** One sender's items, while it has any waiting. */
interface Lane<T> {
  readonly key: string;
  readonly items: Fifo<T>;
}

/**
 * A queue that is fair across senders and bounded in items and bytes: each sender has its
 * own FIFO (a lane), and `shift()` takes one item from each sender with items waiting in
 * turn (round-robin), so a sender with a thousand items waiting delays another sender's next
 * item by at most one of its own. Order is kept per sender, not across senders.
 *
 * Bounds: the queue counts as full at `capacity` items or `maxBytes` of weight. `push()`
 * always keeps the item (nothing is dropped) but returns false when the queue was already
 * full before it: the producer must then stop (the agent pauses its socket) until
 * `onDrain`. A producer is therefore stopped only by an item that does not fit, never by a
 * full queue alone, so one that has other work (the agent's stream frames) goes on while
 * no more items arrive. Overshoot is bounded by what the producer hands in before it stops
 * (the agent: the rest of one socket read).
 *
 * Memory: a lane exists only while it holds an item, so there are never more lanes than
 * items waiting, and the map of lanes is bounded by the same bound as the items.
 */
export class FairQueue<T> extends WaitableQueue<T> {
  readonly capacity: number;
  readonly maxBytes: number;
  private readonly lowWater: number;
  private readonly opts: FairQueueOptions<T>;
  private readonly lanes = new Map<string, Lane<T>>();
  /** Lanes with items, in turn order: the head is served next, then goes to the back. */
  private turns = new Fifo<Lane<T>>();
  private count = 0;
  private weight = 0;
  private refused = false;

  constructor(options: FairQueueOptions<T>) {
    super();
    if (!Number.isInteger(options.capacity) || options.capacity < 1) throw new RangeError('capacity must be an integer >= 1');
    if (!Number.isInteger(options.maxBytes) || options.maxBytes < 1) throw new RangeError('maxBytes must be an integer >= 1');
    this.capacity = options.capacity;
    this.maxBytes = options.maxBytes;
    this.lowWater = options.lowWater ?? Math.floor(options.capacity / 2);
    this.opts = options;
  }

  /** Items waiting. */
  get length(): number {
    return this.count;
  }

  /** Total weight of the items waiting. */
  get bytes(): number {
    return this.weight;
  }

  /** Senders with items waiting. */
  get senders(): number {
    return this.lanes.size;
  }

  /** True at `capacity` items or `maxBytes` of weight: the next `push()` returns false. */
  get isFull(): boolean {
    return this.count >= this.capacity || this.weight >= this.maxBytes;
  }

  /**
   * Adds an item, handing it straight to a waiting consumer if there is one. Returns false
   * when the queue was full before it (the item is kept; stop producing until `onDrain`),
   * or after `end()` (the item is discarded then).
   */
  push(item: T): boolean {
    if (this.ended) return false;
    if (this.handOff(item)) return true;
    if (this.isFull) this.refused = true;
    const key = this.opts.key(item);
    let lane = this.lanes.get(key);
    if (lane === undefined) {
      lane = { key, items: new Fifo<T>() };
      this.lanes.set(key, lane);
      this.turns.push(lane);
    }
    lane.items.push(item);
    this.count++;
    this.weight += this.opts.weigh(item);
    return !this.refused;
  }

  /** Takes the next sender's oldest item synchronously, or undefined when empty. */
  shift(): T | undefined {
    const lane = this.turns.shift();
    if (lane === undefined) return undefined;
    const item = lane.items.shift()!;
    if (lane.items.length === 0) this.lanes.delete(lane.key);
    else this.turns.push(lane);
    this.count--;
    this.weight -= this.opts.weigh(item);
    if (this.refused && this.count <= this.lowWater && this.weight <= this.maxBytes / 2) {
      this.refused = false;
      this.opts.onDrain?.();
    }
    return item;
  }

  /** Ends the queue and discards what is left. */
  clear(): void {
    this.end();
    this.lanes.clear();
    this.turns = new Fifo<Lane<T>>();
    this.count = 0;
    this.weight = 0;
  }
}
