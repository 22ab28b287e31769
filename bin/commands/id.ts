/**
 * `postern id`: check an agent ID and show the router ID inside it.
 *
 * @module
 */
import type { Command } from 'commander';
import { formatId, parseId, routerIdOf } from '../../src/index.js';

/** Adds `id` to `program`. */
export function addIdCommand(program: Command): void {
  program
    .command('id')
    .description('check an agent ID and show which router issued it')
    .argument('<id>', 'agent ID (32 hex digits, either case)')
    .option('--json', 'print {"id":"…","routerId":N,"routerIdHex":"…"}')
    .addHelpText(
      'after',
      `
An agent ID is 16 bytes written as 32 hex digits: the first 8 are the ID of the router
that issued it, the other 24 are random. Exits 2 for anything that is not a valid ID.

Examples:
  postern id 00000bee6c1f9e0a4d2b7c5e81f3a9d2
  postern id 00000BEE6C1F9E0A4D2B7C5E81F3A9D2 --json`,
    )
    .action((id: string, opts: { json?: boolean }) => {
      const buf = parseId(id);
      const routerId = routerIdOf(buf);
      const routerIdHex = routerId.toString(16).padStart(8, '0');
      if (opts.json === true) {
        process.stdout.write(JSON.stringify({ id: formatId(buf), routerId, routerIdHex }) + '\n');
      } else {
        process.stdout.write(`id ${formatId(buf)}\nrouter ${routerId} (0x${routerIdHex})\n`);
      }
    });
}
