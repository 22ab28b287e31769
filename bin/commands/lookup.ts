/**
 * `postern lookup`: ask a router's key directory for the public key an agent registered.
 *
 * @module
 */
import type { Command } from 'commander';
import { ErrorCode, formatId, formatPublicKey, parseId, PosternError } from '../../src/index.js';
import type { RouterAddress } from '../args.js';
import { addAdmissionOptions, connectTimeoutOption, dial, identity, out, routerOption, withTimeout, type IdentityOptions } from '../common.js';

interface LookupCommandOptions extends IdentityOptions {
  router: RouterAddress;
  timeout: number;
  json?: boolean;
}

/** Adds `lookup` to `program`. */
export function addLookupCommand(program: Command): void {
  const cmd = program
    .command('lookup')
    .description('print the public key an agent registered in the router\'s key directory')
    .argument('<id>', 'agent ID (32 hex digits), on this router or one it is linked with')
    .addOption(routerOption())
    .option('--json', 'print {"id":"…","publicKey":"…"}')
    .addOption(connectTimeoutOption());
  addAdmissionOptions(cmd)
    .addHelpText(
      'after',
      `
Prints the key in base64 (as "postern keygen" prints it) and exits 0. Exits 3 with
POSTERN_ERR_NO_KEY when the agent registered without a key, and with
POSTERN_ERR_UNKNOWN_DESTINATION when no agent holds the ID. The router vouches only that
this is the key the ID registered with: compare it with one you got out of band when it
matters (README.md, "Anonymous and sealed messages").

Examples:
  postern lookup 00000bee6c1f9e0a4d2b7c5e81f3a9d2
  postern send --seal --to-key "$(postern lookup <id>)" <id> hello`,
    )
    .action(async (id: string, opts: LookupCommandOptions) => {
      const target = formatId(parseId(id));
      // Looking up needs no identity of our own: connect anonymously unless a token is needed too.
      const ident = await identity({ ...opts, key: undefined, anonymous: true });
      const agent = await dial(opts.router, opts.timeout, false, ident);
      try {
        const key = await withTimeout(agent.lookup(target), opts.timeout, () => new PosternError(ErrorCode.NOT_SENT, `the router did not answer within ${opts.timeout} ms`));
        const publicKey = formatPublicKey(key);
        out(opts.json === true ? JSON.stringify({ id: target, publicKey }) : publicKey);
      } finally {
        await agent.close().catch(() => undefined);
      }
    });
}
