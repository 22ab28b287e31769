/**
 * `postern listen`: register (or connect anonymously), print the assigned ID, then print
 * every message received; with `--key` sealed messages are opened, with `-i` lines read
 * from stdin are sent (replies included).
 *
 * @module
 */
import { Option, type Command } from 'commander';
import { createInterface } from 'node:readline';
import { ErrorCode, formatPublicKey, PosternError, type Agent, type Message } from '../../src/index.js';
import type { RouterAddress } from '../args.js';
import { addAdmissionOptions, connectTimeoutOption, dial, exitQuietlyOnBrokenPipe, identity, out, printIncoming, routerOption, withTimeout, type IdentityOptions } from '../common.js';
import { ExitStatus, exitStatusFor, formatError } from '../output.js';

interface ListenCommandOptions extends IdentityOptions {
  router: RouterAddress;
  json?: boolean;
  base64?: boolean;
  timeout: number;
  reconnect: boolean;
  interactive?: boolean;
  seal?: boolean;
}

/** Senders remembered for `-i` replies (so a reply is sealed to the key a message proved). */
const REMEMBERED = 1024;

/** Adds `listen` to `program`. */
export function addListenCommand(program: Command): void {
  const cmd = program
    .command('listen')
    .description('register with a router, print the assigned ID, then print every message received')
    .addOption(routerOption())
    .option('--json', 'one JSON object per line (see below)')
    .option('--base64', 'always print message data as base64, even when it is valid UTF-8')
    .option('-k, --key <file>', 'key file (postern keygen): publish its public key in the router\'s directory and open sealed messages')
    .addOption(new Option('--anonymous', 'connect without an ID: nothing can reach this listener except replies to what it sends (-i)'))
    .option('-i, --interactive', 'also read lines "<id or reply handle> <text>" from stdin and send each; exit 0 at end of input, once all are routed')
    .option('--seal', 'with -i: seal what is sent (to the key the message replied to proved, else the directory\'s key)')
    .option('--no-reconnect', 'exit (status 4, printing the code) when the connection is lost instead of reconnecting')
    .addOption(connectTimeoutOption());
  addAdmissionOptions(cmd)
    .addHelpText(
      'after',
      `
Output, plain (default):
  id <id>                      first (an anonymous listener prints "anonymous" instead),
                               and again when a reconnect brings a new ID
  key <base64>                 second, with --key: the public key others seal to
  <from> <text>                one line per message; one trailing newline of the
                               payload is dropped; in the rest, backslash, line breaks
                               and control characters are escaped (\\\\ \\n \\r \\xNN,
                               \\uNNNN for U+0085, U+2028, U+2029); a payload that is not
                               valid UTF-8 prints as <from> base64:<data>
  <from> [tags] <text>         a sealed or anonymous message; tags among: anonymous
                               (<from> is then a reply handle), sealed, verified <id>,
                               unverified(<why>), sender <id> (named but not verified)
Output, --json (one object per line):
  {"type":"registered","id":"<id>"}                       first ("anonymous":true and no
                                                          id for --anonymous; "publicKey"
                                                          with --key)
  {"type":"registered","id":"<id>","resumed":true|false}  after each reconnect
  {"type":"message","from":"<id>","data":"<text>"}        payload is valid UTF-8
  {"type":"message","from":"<id>","data":"<b64>","encoding":"base64"}
                                                          payload is not valid UTF-8,
                                                          or --base64 was given
  sealed or anonymous messages add "sealed", "anonymous", "verified", "verification"
  (pinned, directory, none, no-id, id-mismatch, key-mismatch, unknown-key, lookup-failed)
  and "sender":{"id","publicKey"} when the envelope names its sender.
  {"type":"rejected","from":"…","anonymous":…,"code":"POSTERN_ERR_…"}  a sealed message
                                                          that did not open with --key
  {"type":"sent","to":"…","seq":N}  {"type":"undeliverable","to":"…","seq":N,"code":"…"}
                                                          with -i
  {"type":"disconnected","code":"POSTERN_ERR_…","message":"…"}
  {"type":"reconnecting","attempt":1,"delay":250,"code":"POSTERN_ERR_…"}
In plain mode disconnects, reconnects and errors are reported on stderr.

"verified <id>" means the envelope proves its writer holds the key that <id> registered
in the key directory (see README.md, "Anonymous and sealed messages"). A message from an
anonymous sender shows a reply handle as <from>: send to it (with -i, or "postern send
<handle> <text>" from anywhere) while the sender is still connected.

The agent reconnects by itself after losing the router (with jittered exponential backoff).
It keeps its ID when the router lets it resume (same router, within the router's grace
period; messages held meanwhile are then delivered), and gets a new ID otherwise. With
--no-reconnect it exits 4 instead.
Stop with Ctrl-C (exits 0).

Examples:
  postern listen
  postern keygen --out me.key && postern listen --key me.key
  postern listen --router 10.0.0.5:7447 --json
  postern listen --anonymous -i          # then type: <id> hello
  POSTERN_ROUTER=[::1]:7447 postern listen --json | jq -r .data`,
    )
    .action(async (opts: ListenCommandOptions) => runListen(opts));
}

async function runListen(opts: ListenCommandOptions): Promise<void> {
  const json = opts.json === true;
  exitQuietlyOnBrokenPipe();
  if (opts.seal === true && opts.interactive !== true) throw new PosternError(ErrorCode.INVALID_ARGUMENT, '--seal applies to -i only');
  const id = await identity(opts);
  const agent = await dial(opts.router, opts.timeout, opts.reconnect, id);
  // The library's timers do not hold the process open (an embedding app decides its own
  // lifetime), so while the agent waits to reconnect nothing would: this does, until exit.
  setInterval(() => undefined, 0x7fffffff);
  let currentId = agent.id;
  const publicKey = id.keyPair !== undefined ? formatPublicKey(id.keyPair.publicKey) : undefined;
  if (json) out(JSON.stringify(id.anonymous === true ? { type: 'registered', anonymous: true } : { type: 'registered', id: currentId, publicKey }));
  else {
    out(id.anonymous === true ? 'anonymous' : `id ${currentId}`);
    if (publicKey !== undefined) out(`key ${publicKey}`);
  }

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
        if (json) out(JSON.stringify(id.anonymous === true ? { type: 'registered', anonymous: true } : { type: 'registered', id: s.id, resumed: s.resumed }));
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

  const recent = new Map<string, Message>();
  printIncoming(agent, { json, base64: opts.base64 === true }, (m) => {
    recent.delete(m.from);
    recent.set(m.from, m);
    if (recent.size > REMEMBERED) recent.delete(recent.keys().next().value!);
  });
  if (opts.interactive === true) {
    readCommands(agent, recent, json, opts.seal === true, () => {
      // End of input: what was sent is routed (or refused, and printed), then we are done.
      stopping = true;
      withTimeout(agent.flush(), opts.timeout, () => new PosternError(ErrorCode.NOT_SENT, `the router did not answer within ${opts.timeout} ms`)).then(
        () => agent.close().then(() => process.exit(ExitStatus.OK)),
        (err: unknown) => {
          process.stderr.write(formatError(err) + '\n');
          process.exit(exitStatusFor(err));
        },
      );
    });
  }

  // The agent closes by Ctrl-C (stop() exits), or because it gave up.
  const err = await agent.closed();
  if (!stopping) throw err ?? new PosternError(ErrorCode.CLOSED, 'the agent closed');
  await new Promise<never>(() => undefined); // stop() exits the process
}

/**
 * `-i`: each stdin line `<to> <text>` is sent. When `<to>` is the sender of a message
 * received earlier, it is that message's `reply()` (sealed to the key the message proved, if
 * any); else a plain send, or with --seal one sealed to the directory's key for `<to>`.
 * Errors are printed and reading goes on; at EOF, once everything sent has been routed or
 * refused, the command exits 0 (`printf '<id> hi\n' | postern listen -i` sends and ends).
 */
function readCommands(agent: Agent, recent: Map<string, Message>, json: boolean, seal: boolean, onEnd: () => void): void {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  // Sealed sends resolve later: end only once each has been handed to the agent.
  const pending = new Set<Promise<unknown>>();
  rl.once('close', () => void Promise.allSettled([...pending]).then(onEnd));
  const fail = (err: unknown): void => {
    const e = err as PosternError;
    if (json) out(JSON.stringify({ type: 'error', code: e.code ?? ErrorCode.INTERNAL, message: e.message }));
    else process.stderr.write(formatError(err) + '\n');
  };
  const sent = (to: string, seq: number): void => {
    if (json) out(JSON.stringify({ type: 'sent', to, seq }));
  };
  rl.on('line', (line) => {
    const m = /^\s*([0-9a-fA-F]{32})\s(.*)$/.exec(line);
    if (m === null) {
      if (line.trim() !== '') fail(new PosternError(ErrorCode.INVALID_ARGUMENT, 'expected "<id> <text>"'));
      return;
    }
    const to = m[1]!.toLowerCase();
    const text = m[2]!;
    try {
      const prev = recent.get(to);
      if (prev !== undefined && (!seal || prev.sender !== undefined)) sent(to, prev.reply(text, seal ? { seal: true } : undefined));
      else if (seal) {
        const p = agent.sendSealed(to, text).then((seq) => sent(to, seq), fail);
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
      else sent(to, agent.send(to, text));
    } catch (err) {
      fail(err);
    }
  });
}
