/**
 * `postern conformance`: check a router (`--router`) or an agent (`--agent-cmd`) against
 * PROTOCOL.md over the wire and print a report by requirement ID.
 *
 * @module
 */
import { Option, type Command } from 'commander';
import type { ConformanceReport } from '../../src/conformance/index.js';
import { integerIn, parseRouter, type RouterAddress } from '../args.js';
import { out } from '../common.js';

interface ConformanceOptions {
  router?: RouterAddress;
  agentCmd?: string;
  json?: boolean;
  only?: string[];
  wait: number;
  timerBudget: number;
  handshakeTimeout?: number;
  keepalive: number;
  token?: string;
}

/** Exit status when a requirement failed (0: all passed or not testable). */
export const NONCONFORMANT = 5;

/** Adds `conformance` to `program`. */
export function addConformanceCommand(program: Command): void {
  program
    .command('conformance')
    .description('check a router or an agent against PROTOCOL.md over the wire; report by requirement ID')
    .addOption(new Option('-r, --router <host:port>', 'the router to check (the runner acts as its client)').argParser(parseRouter).conflicts('agentCmd'))
    .option('--agent-cmd <command>', 'shell command that starts the agent to check (the runner acts as its router)')
    .option('--json', 'print the report as one JSON object')
    .option('--only <prefix...>', 'run only the checks whose ID starts with one of these, e.g. P-6.4')
    .addOption(new Option('--wait <ms>', 'how long to wait for an answer that is owed at once').default(2000).argParser(integerIn(1, 600_000)))
    .addOption(new Option('--timer-budget <ms>', 'run keepalive/handshake timer checks only when they fit in this many ms').default(5000).argParser(integerIn(0, 3_600_000)))
    .addOption(new Option('--handshake-timeout <ms>', 'the router\'s handshake timeout, to check it (it is not announced on the wire)').argParser(integerIn(1, 3_600_000)))
    .option('--token <token>', 'admission token for a router that requires one: every REGISTER carries it, and the admission rule is checked')
    .addOption(new Option('--keepalive <ms>', 'with --agent-cmd: the keepalive to announce to the agent').default(400).argParser(integerIn(10, 60_000)))
    .addHelpText(
      'after',
      `
With --agent-cmd the runner listens on 127.0.0.1 (a free port) and starts the command
with POSTERN_ROUTER=127.0.0.1:<port> in its environment; "{router}" in the command is
replaced by the same address. The agent should reconnect when its connection ends
(two of the checks need that); it is stopped with SIGTERM at the end.

Each line of the report is "pass", "FAIL" or "n/a" (not testable from outside), the
requirement ID as in PROTOCOL.md, and what the requirement says; a FAIL also shows what
was sent and what came back.

Exit status: 0 when no requirement failed, ${NONCONFORMANT} when one did, 4 when the router
cannot be reached, 2 for bad arguments.

Examples:
  postern conformance --router 127.0.0.1:7447
  postern conformance --router my-router:7447 --only P-6 --json
  postern conformance --agent-cmd "postern listen"
  postern conformance --agent-cmd "./my-agent --router {router}"`,
    )
    .action(async (opts: ConformanceOptions) => {
      // Loaded on use: every other command starts without it.
      const { checkAgent, checkRouter, formatReport } = await import('../../src/conformance/index.js');
      const { Probe } = await import('../../src/conformance/probe.js');
      let report: ConformanceReport;
      if (opts.router !== undefined) {
        // Unreachable is a network failure (exit 4), not a list of failed checks.
        (await Probe.dial(opts.router.host, opts.router.port, opts.wait)).close();
        report = await checkRouter({
          host: opts.router.host,
          port: opts.router.port,
          wait: opts.wait,
          timerBudget: opts.timerBudget,
          ...(opts.handshakeTimeout !== undefined ? { handshakeTimeout: opts.handshakeTimeout } : {}),
          ...(opts.only !== undefined ? { only: opts.only } : {}),
          ...(opts.token !== undefined ? { token: opts.token } : {}),
        });
      } else if (opts.agentCmd !== undefined) {
        report = await checkAgent({ command: opts.agentCmd, keepalive: opts.keepalive, wait: Math.max(opts.wait, 5000) });
      } else {
        program.error('conformance needs --router <host:port> or --agent-cmd <command>', { exitCode: 2 });
      }
      out(opts.json === true ? JSON.stringify(report) : formatReport(report).trimEnd());
      // The CLI exits 0 after every action; a failed requirement is its own status.
      if (!report.ok) process.exit(NONCONFORMANT);
    });
}
