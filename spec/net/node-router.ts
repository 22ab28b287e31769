/**
 * Helper process for spec/net/firewall.test.ts: one postern Router, run by the test inside a
 * network namespace (`ip netns exec NS node dist/spec/net/node-router.js OPTIONS`).
 *
 * argv[2]: JSON object of RouterOptions (host, port, routerId, peers, meshSecret,
 * linkRetryMin, linkRetryMax); the Router validates them.
 *
 * stdout (JSON lines): `{"ready":true,"port":P,"routerId":N}` once listening; answers to
 * stdin commands, each echoing the command's `tag`:
 * - `{"cmd":"links"}` → `{"links":[LinkInfo...],"peersDown":[PeerInfo...]}`
 * - `{"cmd":"stats"}` → `{"stats":RouterStats}`
 *
 * stderr: the router's log (plain lines), which the test shows when something times out.
 * Ends (router closed) when stdin ends.
 */
import { Router } from '../../src/router/router.js';
import type { RouterOptions } from '../../src/router/options.js';
import { createLogger } from '../../src/net/log.js';
import { commands, describe, emit, exitWithin } from './io.js';

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as RouterOptions;
  const router = new Router({
    ...options,
    logger: createLogger({ level: 'info', write: (line) => void process.stderr.write(line) }),
  });
  const address = await router.listen();
  commands(
    (cmd) => {
      if (cmd.cmd === 'links') emit({ tag: cmd.tag, links: router.links(), peersDown: router.peersDown() });
      else if (cmd.cmd === 'stats') emit({ tag: cmd.tag, stats: router.stats });
      else emit({ tag: cmd.tag, error: `unknown command ${String(cmd.cmd)}` });
    },
    async () => {
      exitWithin(3000);
      await router.close();
    },
  );
  emit({ ready: true, port: address.port, routerId: router.routerId });
}

main().catch((err: unknown) => {
  emit({ fatal: describe(err) });
  process.exit(1);
});
