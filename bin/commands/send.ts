/**
 * `postern send`: send one message, wait until the router has routed it, exit.
 *
 * @module
 */
import type { Command } from 'commander';
import { ErrorCode, formatId, parseId, PosternError } from '../../src/index.js';
import type { RouterAddress } from '../args.js';
import { connectTimeoutOption, dial, routerOption, withTimeout } from '../common.js';

interface SendCommandOptions {
  router: RouterAddress;
  timeout: number;
}

/** Adds `send` to `program`. */
export function addSendCommand(program: Command): void {
  program
    .command('send')
    .description('send one message to an agent, wait until the router has routed it, and exit')
    .argument('<id>', 'destination agent ID (32 hex digits, as printed by "postern listen")')
    .argument('[message]', 'the message as UTF-8 text; read from stdin (raw bytes, until EOF) when omitted')
    .addOption(routerOption())
    .addOption(connectTimeoutOption())
    .addHelpText(
      'after',
      `
Exits 0 once the router has routed the message (its delivery is not acknowledged:
see README.md, "Delivery"). Exits 3 and prints the code when the router refused it,
e.g. "error: POSTERN_ERR_UNKNOWN_DESTINATION: …" for an ID no agent holds.

Examples:
  postern send 00000bee6c1f9e0a4d2b7c5e81f3a9d2 hello
  echo "hello from a pipe" | postern send 00000bee6c1f9e0a4d2b7c5e81f3a9d2
  postern send --router 10.0.0.5:7447 <id> < photo.jpg`,
    )
    .action(async (id: string, message: string | undefined, opts: SendCommandOptions) => runSend(id, message, opts));
}

async function runSend(id: string, message: string | undefined, opts: SendCommandOptions): Promise<void> {
  const to = formatId(parseId(id));
  let data: Buffer;
  if (message !== undefined) {
    data = Buffer.from(message, 'utf8');
  } else {
    if (process.stdin.isTTY === true) process.stderr.write('reading the message from stdin; end it with Ctrl-D\n');
    data = await readStdin();
  }

  const agent = await dial(opts.router, opts.timeout, false);
  const refusals: PosternError[] = [];
  agent.on('undeliverable', (err: PosternError) => refusals.push(err));
  try {
    const seq = agent.send(to, data);
    // The agent drops a silent connection after the announced keepalive timeout; this bound
    // only keeps a stuck router from holding a script longer than the user asked.
    await withTimeout(agent.flush(), opts.timeout, () => new PosternError(ErrorCode.NOT_SENT, `the router did not answer within ${opts.timeout} ms`));
    const refusal = refusals.find((e) => e.seq === seq) ?? refusals[0];
    if (refusal !== undefined) {
      throw new PosternError(refusal.code, `the router refused the message to ${to}: ${refusal.message}`, { seq: refusal.seq, to: refusal.to, wireCode: refusal.wireCode });
    }
  } finally {
    await agent.close().catch(() => undefined);
  }
}

function readStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.once('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.once('error', reject);
  });
}
