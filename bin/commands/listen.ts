/**
 * `postern listen`: register, print the ID, then print every message received.
 *
 * @module
 */
import type { Command } from 'commander';
import { ErrorCode, PosternError } from '../../src/index.js';
import type { RouterAddress } from '../args.js';
import { connectTimeoutOption, dial, exitQuietlyOnBrokenPipe, routerOption } from '../common.js';
import { ExitStatus, formatError, messageJson, messagePlain } from '../output.js';

interface ListenCommandOptions {
  router: RouterAddress;
  json?: boolean;
  base64?: boolean;
  timeout: number;
  reconnect: boolean;
}

/** Adds `listen` to `program`. */
export function addListenCommand(program: Command): void {
  program
    .command('listen')
    .description('register with a router, print the assigned ID, then print every message received')
    .addOption(routerOption())
    .option('--json', 'one JSON object per line (see below)')
    .option('--base64', 'always print message data as base64, even when it is valid UTF-8')
    .option('--no-reconnect', 'exit (status 4, printing the code) when the connection is lost instead of reconnecting')
    .addOption(connectTimeoutOption())
    .addHelpText(
      'after',
      `
Output, plain (default):
  id <id>                      first, and again when a reconnect brings a new ID
  <sender id> <text>           one line per message; one trailing newline of the
                               payload is dropped; a payload that is not valid UTF-8
                               prints as <sender id> base64:<data>
Output, --json (one object per line):
  {"type":"registered","id":"<id>"}                       first
  {"type":"registered","id":"<id>","resumed":true|false}  after each reconnect
  {"type":"message","from":"<id>","data":"<text>"}        payload is valid UTF-8
  {"type":"message","from":"<id>","data":"<b64>","encoding":"base64"}
                                                          payload is not valid UTF-8,
                                                          or --base64 was given
  {"type":"disconnected","code":"POSTERN_ERR_…","message":"…"}
  {"type":"reconnecting","attempt":1,"delay":250,"code":"POSTERN_ERR_…"}
In plain mode disconnects and reconnects are reported on stderr.
The agent reconnects by itself after losing the router (with jittered exponential backoff).
It keeps its ID when the router lets it resume (same router, within the router's grace
period; messages held meanwhile are then delivered), and gets a new ID otherwise. With
--no-reconnect it exits 4 instead.
Stop with Ctrl-C (exits 0).

Examples:
  postern listen
  postern listen --router 10.0.0.5:7447 --json
  POSTERN_ROUTER=[::1]:7447 postern listen --json | jq -r .data`,
    )
    .action(async (opts: ListenCommandOptions) => runListen(opts));
}

async function runListen(opts: ListenCommandOptions): Promise<void> {
  const json = opts.json === true;
  const base64 = opts.base64 === true;
  const out = (line: string): void => void process.stdout.write(line + '\n');
  exitQuietlyOnBrokenPipe();

  const agent = await dial(opts.router, opts.timeout, opts.reconnect);
  // The library's timers do not hold the process open (an embedding app decides its own
  // lifetime), so while the agent waits to reconnect nothing would: this does, until exit.
  setInterval(() => undefined, 0x7fffffff);
  let currentId = agent.id;
  out(json ? JSON.stringify({ type: 'registered', id: currentId }) : `id ${currentId}`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(ExitStatus.OK);
    stopping = true;
    agent.close().then(
      () => process.exit(ExitStatus.OK),
      () => process.exit(ExitStatus.OK),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  agent.on('status', (s) => {
    switch (s.type) {
      case 'registered':
        // Only re-registrations arrive here: the listener is attached after connect().
        if (json) out(JSON.stringify({ type: 'registered', id: s.id, resumed: s.resumed }));
        else if (s.id !== currentId) out(`id ${s.id}`);
        else process.stderr.write('reconnected with the same ID\n');
        currentId = s.id;
        break;
      case 'disconnected':
        if (json) out(JSON.stringify({ type: 'disconnected', code: s.error.code, message: s.error.message }));
        else process.stderr.write(`disconnected: ${formatError(s.error).replace(/^error: /, '')}\n`);
        break;
      case 'reconnecting':
        if (json) out(JSON.stringify({ type: 'reconnecting', attempt: s.attempt, delay: s.delayMs, code: s.error.code }));
        else process.stderr.write(`reconnecting in ${s.delayMs} ms (attempt ${s.attempt})\n`);
        break;
      default:
        break;
    }
  });

  for await (const m of agent) {
    out(json ? messageJson(m.from, m.data, base64) : messagePlain(m.from, m.data, base64));
  }
  // The stream ends when the agent closes: by Ctrl-C (stop() exits), or because it gave up.
  const err = await agent.closed();
  if (!stopping) throw err ?? new PosternError(ErrorCode.CLOSED, 'the agent closed');
  await new Promise<never>(() => undefined); // stop() exits the process
}
