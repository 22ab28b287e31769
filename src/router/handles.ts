import type { RouterContext } from './context.js';
import { Handle } from './registry.js';

/**
 * [P-11.3] The reply handles one anonymous sender was given: IDs in the registry that
 * route to its connection (`owner`) while they live. At most maxHandles fresh ones (the
 * oldest is retired past that), plus one sticky handle reused for every STICKY SEND. All
 * die with the connection ({@link release}).
 */
export class ReplyHandles<C> {
  private readonly fresh: Array<Handle<C>> = [];
  private sticky: Handle<C> | null = null;

  constructor(
    private readonly ctx: RouterContext<C>,
    private readonly owner: C,
  ) {}

  /** A fresh reply handle, evicting the oldest past the limit. */
  next(): Buffer {
    const h = this.issue();
    this.fresh.push(h);
    if (this.fresh.length > this.ctx.options.maxHandles) this.ctx.registry.delete(this.fresh.shift()!);
    return h.id;
  }

  /** The sticky handle, made at its first use. */
  stickyId(): Buffer {
    return (this.sticky ??= this.issue()).id;
  }

  /** Every handle leaves the registry. */
  release(): void {
    for (const h of this.fresh) this.ctx.registry.delete(h);
    this.fresh.length = 0;
    if (this.sticky !== null) this.ctx.registry.delete(this.sticky);
    this.sticky = null;
  }

  private issue(): Handle<C> {
    const h = new Handle<C>(this.ctx.registry.newHandleId(this.ctx.options.routerId), this.owner);
    this.ctx.registry.add(h);
    return h;
  }
}
