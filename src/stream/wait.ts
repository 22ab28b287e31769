import type { Agent } from '../agent/agent.js';
import { isPermanentError } from '../agent/agent.js';
import type { ResolvedAgentOptions } from '../agent/options.js';
import { backoffDelay } from '../agent/reconnect.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';

/**
 * `connect({ waitForRouter: true })`: the first connection retried with the reconnect
 * policy, for tools started before (or while) their router is (re)started, such as
 * `postern expose` under systemd or an ssh ProxyCommand.
 *
 * @module
 */

/**
 * Makes connection attempts until one registers, waiting the reconnect backoff between
 * them. Rejects with the last error after `maxReconnectAttempts` failed retries, at once on
 * a permanent error, or with POSTERN_ERR_CLOSED when `signal` aborts.
 */
export async function connectWaiting(opts: ResolvedAgentOptions, make: (o: ResolvedAgentOptions) => Agent): Promise<Agent> {
  const policy = { initialDelay: opts.reconnectDelay, maxDelay: opts.reconnectMaxDelay, jitter: opts.reconnectJitter };
  let previous = opts.reconnectDelay;
  for (let attempt = 0; ; attempt++) {
    const agent = make(opts);
    try {
      await agent._start();
      return agent;
    } catch (err) {
      if (isPermanentError(err) || attempt >= opts.maxReconnectAttempts || opts.signal?.aborted === true) throw err;
      if (err instanceof PosternError && err.code === ErrorCode.CLOSED) throw err;
      previous = backoffDelay(policy, attempt + 1, previous, opts.random);
      await new Promise<void>((resolve) => {
        // The clock's timers do not hold the process open; waiting for a router must.
        const hold = setInterval(() => {}, 0x7fffffff);
        const done = (): void => {
          clearInterval(hold);
          t.cancel();
          resolve();
        };
        const t = opts.clock.setTimeout(done, previous);
        opts.signal?.addEventListener('abort', done, { once: true });
      });
    }
  }
}
