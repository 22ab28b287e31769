/**
 * `postern send`: send one message (plain or sealed, named or anonymous), wait until the
 * router has routed it, and exit, or with `--wait` stay to print the replies.
 *
 * @module
 */
import { Option, type Command } from 'commander';
import { ErrorCode, formatId, parseId, parsePublicKey, PosternError, type AgentOptions, type SendOptions } from '../../src/index.js';
import { MAX_MAX_FRAME, RELAY_HEADER_SIZE } from '../../src/protocol/frame.js';
import { integerIn, type RouterAddress } from '../args.js';
import { addAdmissionOptions, connectTimeoutOption, dial, exitQuietlyOnBrokenPipe, identity, printIncoming, routerOption, withTimeout, type IdentityOptions } from '../common.js';
import { ExitStatus } from '../output.js';

interface SendCommandOptions extends IdentityOptions {
  router: RouterAddress;
  timeout: number;
  seal?: boolean;
  toKey?: string;
  prove?: boolean;
  wait?: number;
  json?: boolean;
}

/** Adds `send` to `program`. */
export function addSendCommand(program: Command): void {
  const cmd = program
    .command('send')
    .description('send one message to an agent, wait until the router has routed it, and exit')
    .argument('<id>', 'destination: an agent ID (32 hex digits, as printed by "postern listen") or a reply handle')
    .argument('[message]', 'the message as UTF-8 text; read from stdin (raw bytes, until EOF) when omitted')
    .addOption(routerOption())
    .option('--seal', 'seal the message to the recipient\'s key: --to-key, else the key it registered in the router\'s directory')
    .option('--to-key <base64>', 'with --seal: the recipient\'s public key, pinned out of band (the directory is not asked)')
    .option('--anonymous', 'hide who sends: an anonymous connection (no ID; the recipient gets a reply handle)')
    .option('-k, --key <file>', 'key file (postern keygen): sealed messages carry your ID and the proof that you hold this key')
    .option('--prove', 'with --seal --anonymous --key: still prove your ID to the recipient (only routers see a reply handle)')
    .addOption(new Option('--wait <ms>', 'after sending, stay connected this long and print replies (0: until Ctrl-C)').argParser(integerIn(0, 86_400_000)))
    .option('--json', 'with --wait: print replies as JSON lines (as "postern listen --json")')
    .addOption(connectTimeoutOption());
  addAdmissionOptions(cmd)
    .addHelpText(
      'after',
      `
Exits 0 once the router has routed the message (its delivery is not acknowledged:
see README.md, "Delivery"). Exits 3 and prints the code when the router refused it,
e.g. "error: POSTERN_ERR_UNKNOWN_DESTINATION: …" for an ID no agent holds, or
POSTERN_ERR_NO_KEY for --seal to an agent that registered no key.

Sealed and anonymous:
  --seal                  only the recipient can read it (routers relay the envelope)
  --seal --key FILE       ... and it proves you wrote it: the recipient sees
                          "verified <your id>" while you are connected (use --wait;
                          after you leave, the directory no longer knows your key)
  --anonymous             the recipient gets a reply handle instead of your ID; your
                          address is never logged by the router
  --seal --anonymous --key FILE --prove
                          routers see only a reply handle; the recipient still
                          learns (and verifies) your ID
  --wait <ms>             stay for replies: they come back to this connection

Examples:
  postern send 00000bee6c1f9e0a4d2b7c5e81f3a9d2 hello
  echo "hello from a pipe" | postern send 00000bee6c1f9e0a4d2b7c5e81f3a9d2
  postern send --seal --anonymous --wait 0 <id> "who goes there?"
  postern send --router 10.0.0.5:7447 <id> < photo.jpg
                          # up to the router's maxFrame less 26 bytes: 1048550 bytes
                          # by default (less when sealed); larger input exits 3 with
                          # POSTERN_ERR_FRAME_TOO_LARGE naming the limit`,
    )
    .action(async (id: string, message: string | undefined, opts: SendCommandOptions) => runSend(id, message, opts));
}

async function runSend(id: string, message: string | undefined, opts: SendCommandOptions): Promise<void> {
  const to = formatId(parseId(id));
  const usage = (what: string): PosternError => new PosternError(ErrorCode.INVALID_ARGUMENT, what);
  if (opts.toKey !== undefined && opts.seal !== true) throw usage('--to-key needs --seal');
  if (opts.prove === true && (opts.seal !== true || opts.key === undefined)) throw usage('--prove needs --seal and --key');
  if (opts.json === true && opts.wait === undefined) throw usage('--json applies to --wait');
  const toKey = opts.toKey !== undefined ? parsePublicKey(opts.toKey) : undefined;
  let data: Buffer;
  if (message !== undefined) {
    data = Buffer.from(message, 'utf8');
  } else {
    if (process.stdin.isTTY === true) process.stderr.write('reading the message from stdin; end it with Ctrl-D\n');
    data = await readStdin(STDIN_LIMIT);
  }

  // --anonymous alone: an anonymous connection (no ID at all, address never logged). With
  // --prove there must be an ID to prove, so we register and send this message anonymously.
  const ident = await identity({ ...opts, anonymous: opts.anonymous === true && opts.prove !== true });
  const extra: AgentOptions = { ...ident };
  const agent = await dial(opts.router, opts.timeout, false, extra);
  // The router's limit is known once registered: say it, and how far over the input is.
  const limit = agent.routerInfo.maxPayload;
  if (data.length > limit) {
    await agent.close().catch(() => undefined);
    throw tooLarge(data.length, limit);
  }
  const refusals: PosternError[] = [];
  const wait = opts.wait;
  if (wait !== undefined) {
    exitQuietlyOnBrokenPipe();
    printIncoming(agent, { json: opts.json === true, base64: false });
  }
  agent.on('undeliverable', (err: PosternError) => refusals.push(err));
  try {
    const send: SendOptions = {};
    if (opts.anonymous === true && opts.prove === true) send.anonymous = true;
    if (opts.prove === true) send.prove = true;
    let seq: number;
    const routed = (p: Promise<number>): Promise<number> =>
      withTimeout(p, opts.timeout, () => new PosternError(ErrorCode.NOT_SENT, `the router did not answer within ${opts.timeout} ms`));
    if (opts.seal === true) {
      try {
        seq = await routed(agent.sendSealed(to, data, toKey !== undefined ? { ...send, seal: { publicKey: toKey } } : send));
      } catch (err) {
        // The directory's answer names no one: say whose key is missing.
        if ((err as PosternError).code !== ErrorCode.NO_KEY) throw err;
        throw new PosternError(ErrorCode.NO_KEY, `${to} registered no public key (it did not listen with --key); pass one with --to-key`, { cause: err, to, wireCode: (err as PosternError).wireCode });
      }
    }
    else seq = agent.send(to, data, send);
    // The agent drops a silent connection after the announced keepalive timeout; this bound
    // only keeps a stuck router from holding a script longer than the user asked.
    await withTimeout(agent.flush(), opts.timeout, () => new PosternError(ErrorCode.NOT_SENT, `the router did not answer within ${opts.timeout} ms`));
    const refusal = refusals.find((e) => e.seq === seq) ?? refusals[0];
    if (refusal !== undefined) {
      throw new PosternError(refusal.code, `the router refused the message to ${to}: ${refusal.message}`, { seq: refusal.seq, to: refusal.to, wireCode: refusal.wireCode });
    }
    if (wait !== undefined) await waitForReplies(wait, () => agent.closed());
  } finally {
    await agent.close().catch(() => undefined);
  }
}

/** Resolves after `ms` (never for 0), on SIGINT/SIGTERM, or when the connection ends. */
function waitForReplies(ms: number, closed: () => Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = ms > 0 ? setTimeout(resolve, ms) : setInterval(() => undefined, 0x7fffffff);
    const done = (): void => {
      clearTimeout(timer as NodeJS.Timeout);
      clearInterval(timer as NodeJS.Timeout);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    void closed().then(done);
  }).then(() => {
    process.exitCode = ExitStatus.OK;
  });
}

/** No router takes a larger message (its maxFrame is at most 64 MiB); stdin is not read beyond. */
const STDIN_LIMIT = MAX_MAX_FRAME - RELAY_HEADER_SIZE;

/** POSTERN_ERR_FRAME_TOO_LARGE (exit 3) naming the size and the limit. */
function tooLarge(size: number | string, limit: number): PosternError {
  return new PosternError(
    ErrorCode.FRAME_TOO_LARGE,
    `the message is ${size} bytes; this router takes at most ${limit} bytes per message (its maxFrame less a 26-byte header; sealing takes some of that)`,
  );
}

/** All of stdin, or FRAME_TOO_LARGE as soon as it passes `limit` bytes (memory stays bounded). */
function readStdin(limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        process.stdin.off('data', onData);
        process.stdin.destroy();
        reject(tooLarge(`more than ${limit}`, limit));
        return;
      }
      chunks.push(c);
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.once('error', reject);
  });
}
