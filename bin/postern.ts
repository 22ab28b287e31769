#!/usr/bin/env node
/**
 * The `postern` command: run a router, listen for messages, send one. A thin layer over
 * the library: it parses arguments, calls Router / connect(), prints, and maps each
 * error's `code` to an exit status (see {@link ExitStatus}). One file per command in
 * bin/commands/; what they share is in bin/common.ts, bin/args.ts and bin/output.ts.
 *
 * @module
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { DEFAULT_PORT, ErrorCode } from '../src/index.js';
import { DEFAULT_ROUTER } from './args.js';
import { addConformanceCommand } from './commands/conformance.js';
import { addIdCommand } from './commands/id.js';
import { addKeygenCommand } from './commands/keygen.js';
import { addLookupCommand } from './commands/lookup.js';
import { addListenCommand } from './commands/listen.js';
import { addRouterCommand } from './commands/router.js';
import { addSendCommand } from './commands/send.js';
import { addUnitCommand } from './commands/unit.js';
import { addConnectCommand } from './commands/connect.js';
import { addExposeCommand } from './commands/expose.js';
import { addForwardCommand } from './commands/forward.js';
import { ExitStatus, exitStatusFor, formatError } from './output.js';

const VERSION = readVersion();

const EXIT_STATUS_HELP = `
Exit status:
  0  success (a router or listener stopped by SIGINT/SIGTERM also exits 0)
  1  unexpected failure (a bug: please report it)
  2  bad input: unknown option, bad value, invalid agent ID, bad config or key file,
     a secret file others can read, a host name that does not resolve
     (POSTERN_ERR_UNKNOWN_HOST), a listen address not on this machine
  3  the router refused the message, lookup or agent, e.g.
     POSTERN_ERR_UNKNOWN_DESTINATION, POSTERN_ERR_NO_KEY, POSTERN_ERR_ADMISSION_DENIED
  4  network: could not reach the router (POSTERN_ERR_CONNECT_FAILED), the connection
     was closed or lost, or a port is busy (POSTERN_ERR_LISTEN_FAILED): retrying may help

Errors are printed on stderr as one line: error: POSTERN_ERR_<CODE>: <message>`;

/** Builds the command tree. */
function buildProgram(): Command {
  const program = new Command('postern')
    .description(
      'Peer-to-peer messaging over raw TCP. Agents dial out to a router, get an ID, and send ' +
        'messages to other agents by ID; the router relays them without revealing addresses.',
    )
    .version(VERSION, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help for a command')
    .helpCommand('help [command]', 'show help for a command')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      // Commander's own errors ("error: unknown option '--x'") get the usage code.
      outputError: (str, write) => write(`error: ${ErrorCode.INVALID_ARGUMENT}: ${str.replace(/^error: /, '').trimEnd()}\n`),
    })
    .exitOverride((err: CommanderError) => {
      process.exit(err.exitCode === 0 ? ExitStatus.OK : ExitStatus.USAGE);
    })
    .addHelpText(
      'after',
      `
Quick start:
  postern router                      # a router on 0.0.0.0:${DEFAULT_PORT}
  postern listen                      # prints "id <32 hex digits>", then messages
  postern send <id> hello             # the listener prints "<sender id> hello"

Sealed and anonymous:
  postern keygen --out me.key         # prints the public key
  postern listen --key me.key         # publishes it; opens sealed messages
  postern send --seal --anonymous <id> hello

Agents dial ${DEFAULT_ROUTER} unless --router or POSTERN_ROUTER says otherwise.
${EXIT_STATUS_HELP}`,
    );

  addRouterCommand(program);
  addListenCommand(program);
  addSendCommand(program);
  addKeygenCommand(program);
  addLookupCommand(program);
  addIdCommand(program);
  addUnitCommand(program);
  addConformanceCommand(program);
  addExposeCommand(program);
  addForwardCommand(program);
  addConnectCommand(program);
  return program;
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Runs the CLI with `argv` and exits with the mapped status. */
async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
    // Exit explicitly: a stray unref'd timer or half-closed socket must not keep us alive.
    process.exit(ExitStatus.OK);
  } catch (err) {
    process.stderr.write(formatError(err) + '\n');
    process.exit(exitStatusFor(err));
  }
}

await main(process.argv);
