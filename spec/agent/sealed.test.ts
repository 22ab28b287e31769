/**
 * Sealed messaging through the agent, end to end through a real router on 127.0.0.1:
 * sealing on send (pinned key, directory lookup), opening and checking the sender on
 * receipt, replies (also to anonymous senders), refused envelopes, and message order while
 * sender checks wait for the key directory.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { connect, type Agent, type Message, type RejectedMessage } from '../../src/agent/agent.js';
import { generateKeyPair, type KeyPair } from '../../src/crypto/keys.js';
import { open, seal } from '../../src/crypto/seal.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodePreamble } from '../../src/protocol/encoder.js';
import { ErrorCode, type PosternError } from '../../src/protocol/errors.js';
import { Flag, FrameType, MAX_MAX_FRAME, PROTOCOL_VERSION, RELAY_HEADER_SIZE, RELAY_ID_OFFSET } from '../../src/protocol/frame.js';
import { formatId } from '../../src/protocol/id.js';
import { Router } from '../../src/router/router.js';
import { encodeDeliver } from '../../src/protocol/encoder.js';
import { newAgentId } from '../../src/protocol/id.js';
import { RawClient } from '../helpers/raw.js';
import { FakeRouter, until } from './fake-router.js';

async function startRouter(): Promise<[Router, string, number]> {
  const router = new Router({ host: '127.0.0.1', port: 0 });
  const addr = await router.listen();
  return [router, `127.0.0.1:${addr.port}`, addr.port];
}

async function take(it: AsyncIterator<Message>, n: number): Promise<Message[]> {
  const out: Message[] = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done === true) break;
    out.push(r.value);
  }
  return out;
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as PosternError).code;
  }
  return undefined;
}

async function rejection(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: PosternError) => e.code,
  );
}

/** A TCP connection to the router that counts the frames the agent writes, by type. */
function countingConnection(port: number, counts: Map<number, number>): () => net.Socket {
  return () => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const decoder = new Decoder(
      {
        preamble: () => {},
        frame: (b, s) => {
          const type = b[s + 4]!;
          counts.set(type, (counts.get(type) ?? 0) + 1);
        },
      },
      { maxFrame: MAX_MAX_FRAME, preamble: true },
    );
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    socket.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
      decoder.push(chunk as Buffer);
      return write(chunk, ...rest);
    }) as typeof socket.write;
    return socket;
  };
}

test('sealed with the directory: the receiver opens it, the sender is verified, reply() comes back sealed and verified', async () => {
  const [router, addr, port] = await startRouter();
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const counts = new Map<number, number>();
  const a = await connect({ createConnection: countingConnection(port, counts), keyPair: ka });
  const b = await connect({ router: addr, keyPair: kb });
  assert.equal([...(await b.lookup(a.id))], [...ka.publicKey], 'keyPair publishes its public key');
  assert.equal([...a.publicKey!], [...ka.publicKey]);

  const seq1 = await a.sendSealed(b.id, 'hello, b');
  const seq2 = await a.sendSealed(b.id, Buffer.from('again'));
  assert.ok(seq2 > seq1);
  assert.is(counts.get(FrameType.LOOKUP), 1, 'the second seal used the cached key');
  const [m1, m2] = await take(b.messages(), 2);
  for (const m of [m1!, m2!]) {
    assert.is(m.sealed, true);
    assert.is(m.anonymous, false);
    assert.is(m.from, a.id);
    assert.is(m.sender?.id, a.id);
    assert.equal([...m.sender!.publicKey], [...ka.publicKey]);
    assert.is(m.verified, true);
    assert.is(m.verification, 'directory');
  }
  assert.is(m1!.data.toString(), 'hello, b');
  assert.is(m2!.data.toString(), 'again');
  assert.equal(JSON.parse(JSON.stringify(m1)), {
    from: a.id,
    anonymous: false,
    sealed: true,
    sender: { id: a.id, publicKey: Buffer.from(ka.publicKey).toString('base64') },
    verified: true,
    verification: 'directory',
    size: 8,
  });

  const rseq = m1!.reply('hello, a');
  assert.type(rseq, 'number');
  const [r] = await take(a.messages(), 1);
  assert.is(r!.sealed, true, 'reply() seals to the proven sender key by default');
  assert.is(r!.data.toString(), 'hello, a');
  assert.is(r!.from, b.id);
  assert.is(r!.sender?.id, b.id);
  assert.is(r!.verified, true);
  await a.close();
  await b.close();
  await router.close();
});

test('pinned keys: send({ seal: true }) is synchronous; a pin verifies without the directory and wins over it', async () => {
  const [router, addr] = await startRouter();
  const kr = generateKeyPair();
  const ks = generateKeyPair();
  // r keeps its key out of the directory: only a pin reaches it
  const r = await connect({ router: addr, keyPair: kr, publishKey: false });
  const s = await connect({ router: addr, keyPair: ks, trustedKeys: { [r.id]: kr.publicKey } });
  const kr2 = generateKeyPair();
  const r2 = await connect({ router: addr, keyPair: kr2, trustedKeys: new Map([[s.id.toUpperCase(), ks.publicKey]]), verifyWithDirectory: false });
  const r3 = await connect({ router: addr, keyPair: generateKeyPair(), trustedKeys: { [s.id]: generateKeyPair().publicKey } });
  assert.is(await rejection(s.lookup(r.id)), ErrorCode.NO_KEY);

  const seq = s.send(r.id, 'pinned', { seal: true });
  assert.type(seq, 'number');
  assert.is(code(() => s.send(r2.id, 'x', { seal: true })), ErrorCode.INVALID_ARGUMENT, 'nothing pinned for r2');
  s.send(r2.id, 'explicit key', { seal: { publicKey: kr2.publicKey }, bind: true });
  s.send(r3.id, 'to r3', { seal: { publicKey: r3.publicKey! } });

  const [m] = await take(r.messages(), 1);
  assert.is(m!.data.toString(), 'pinned');
  assert.is(m!.sender?.id, s.id);
  assert.is(m!.verification, 'directory', 'r pinned nothing: the directory has s');
  const [m2] = await take(r2.messages(), 1);
  assert.is(m2!.data.toString(), 'explicit key');
  assert.is(m2!.verified, true);
  assert.is(m2!.verification, 'pinned');
  const [m3] = await take(r3.messages(), 1);
  assert.is(m3!.verified, false, 'the pin says another key, whatever the directory says');
  assert.is(m3!.verification, 'key-mismatch');

  // r2 asks no directory: a sender it has not pinned is unknown
  const other = await connect({ router: addr, keyPair: generateKeyPair() });
  other.send(r2.id, 'who?', { seal: { publicKey: kr2.publicKey } });
  const [m4] = await take(r2.messages(), 1);
  assert.is(m4!.verification, 'unknown-key');
  assert.is(m4!.verified, false);
  for (const x of [r, s, r2, r3, other]) await x.close();
  await router.close();
});

test('impostors: another ID in the envelope, or a key the directory does not know for that ID, are not verified', async () => {
  const [router, addr] = await startRouter();
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const kx = generateKeyPair();
  const a = await connect({ router: addr, keyPair: ka });
  const b = await connect({ router: addr, keyPair: kb });
  const x = await connect({ router: addr, keyPair: kx });
  const y = await connect({ router: addr, keyPair: generateKeyPair(), publishKey: false });
  // x claims to be a, with its own key (the proof of possession holds: it is x's key)
  const claimA = (): Uint8Array => seal({ content: 'I am a', recipientPublicKey: kb.publicKey, sender: { id: a.id, keyPair: kx } });
  x.send(b.id, claimA(), { sealed: true });
  x.send(b.id, claimA(), { sealed: true, anonymous: true });
  // x claims its own ID with a key it did not register
  x.send(b.id, seal({ content: 'other key', recipientPublicKey: kb.publicKey, sender: { id: x.id, keyPair: generateKeyPair() } }), { sealed: true });
  await x.flush();
  // y registered no key: its proof is real, but nothing ties the key to its ID
  await y.sendSealed(b.id, 'no directory key');
  const ms = await take(b.messages(), 4);
  assert.equal(
    ms.map((m) => [m.sender?.id, m.verification, m.verified]),
    [
      [a.id, 'id-mismatch', false],
      [a.id, 'key-mismatch', false],
      [x.id, 'key-mismatch', false],
      [y.id, 'unknown-key', false],
    ],
  );
  assert.is(ms[0]!.from, x.id, 'the router stamps who really sent it');
  assert.is(ms[1]!.anonymous, true);
  for (const c of [a, b, x, y]) await c.close();
  await router.close();
});

test('anonymous sealed send: no sender inside, the reply reaches the anonymous sender (plain: no key to seal to)', async () => {
  const [router, addr] = await startRouter();
  const ka = generateKeyPair();
  const a = await connect({ router: addr, keyPair: ka });
  const b = await connect({ router: addr, keyPair: generateKeyPair() });
  await a.sendSealed(b.id, 'psst', { anonymous: true });
  const [m] = await take(b.messages(), 1);
  assert.is(m!.sealed, true);
  assert.is(m!.anonymous, true);
  assert.is.not(m!.from, a.id);
  assert.is(m!.data.toString(), 'psst');
  assert.is(m!.sender, undefined);
  assert.is(m!.verified, false);
  assert.is(m!.verification, 'none');
  assert.is(code(() => m!.reply('sealed?', { seal: true })), ErrorCode.INVALID_ARGUMENT, 'no key to seal to');
  m!.reply('heard you');
  const [r] = await take(a.messages(), 1);
  assert.is(r!.data.toString(), 'heard you');
  assert.is(r!.from, b.id);
  assert.is(r!.sealed, false);
  await a.close();
  await b.close();
  await router.close();
});

test('anonymous + prove: the receiver verifies the sender; the DELIVER holds only a reply handle; reply() is sealed back', async () => {
  const [router, addr, port] = await startRouter();
  const ka = generateKeyPair();
  const kr = generateKeyPair();
  const a = await connect({ router: addr, keyPair: ka });
  // the receiver is a raw client: we look at the exact bytes the router delivers
  const raw = await RawClient.tcp(port);
  raw.write(encodePreamble(PROTOCOL_VERSION), ...raw.codec.encodeRegister({ key: kr.publicKey }));
  const reg = await raw.next();
  const rawId = Buffer.from(raw.codec.decodeRegistered(reg.bytes, 0, reg.bytes.length).id);
  await a.sendSealed(formatId(rawId), 'secret words', { anonymous: true, prove: true, pad: true });
  const f = await raw.next();
  assert.is(f.type, FrameType.DELIVER);
  assert.is(f.flags, Flag.ANONYMOUS | Flag.SEALED);
  const handle = f.bytes.subarray(RELAY_ID_OFFSET, RELAY_ID_OFFSET + 16);
  assert.not.ok(handle.equals(a.idBytes), 'the ID field is a handle');
  assert.is(f.bytes.indexOf(a.idBytes), -1, 'the sender ID appears nowhere in the frame');
  assert.is(f.bytes.indexOf(Buffer.from(ka.publicKey)), -1, 'nor its key');
  assert.is(f.bytes.indexOf(Buffer.from('secret words')), -1, 'nor the content');
  const envelope = f.bytes.subarray(RELAY_HEADER_SIZE);
  assert.is(envelope.length, 256, '12 + 133 bytes padded to the 256 class');
  const opened = open(envelope, kr, { recipientId: rawId });
  assert.ok(Buffer.from(opened.sender!.id!).equals(a.idBytes), 'inside, the sender proves its ID');
  assert.ok(Buffer.from(opened.recipientId!).equals(rawId), 'bound to the directory-checked recipient');
  assert.is(Buffer.from(opened.content).toString(), 'secret words');
  raw.destroy();

  // the same through an agent: verified sender, anonymous delivery, reply sealed back
  const b = await connect({ router: addr, keyPair: generateKeyPair() });
  await a.sendSealed(b.id, 'it is me', { anonymous: true, prove: true });
  const [m] = await take(b.messages(), 1);
  assert.is(m!.anonymous, true);
  assert.is.not(m!.from, a.id);
  assert.is(m!.sender?.id, a.id);
  assert.is(m!.verified, true);
  assert.is(m!.verification, 'directory');
  m!.reply('hi, a');
  const [r] = await take(a.messages(), 1);
  assert.is(r!.sealed, true);
  assert.is(r!.data.toString(), 'hi, a');
  assert.is(r!.verified, true);
  await a.close();
  await b.close();
  await router.close();
});

test('anonymous connection with a key: publishes nothing, proves its key without an ID (no-id), gets sealed replies', async () => {
  const [router, addr] = await startRouter();
  const kn = generateKeyPair();
  const nobody = await connect({ router: addr, anonymous: true, keyPair: kn });
  const b = await connect({ router: addr, keyPair: generateKeyPair() });
  await nobody.sendSealed(b.id, 'keyed but nameless', { prove: true });
  await nobody.sendSealed(b.id, 'nothing at all');
  const [m1, m2] = await take(b.messages(), 2);
  assert.is(m1!.sender?.id, undefined);
  assert.equal([...m1!.sender!.publicKey], [...kn.publicKey]);
  assert.is(m1!.verification, 'no-id');
  assert.is(m1!.verified, false);
  assert.is(m2!.sender, undefined, 'an anonymous connection proves nothing by default');
  m1!.reply('sealed to your key');
  const [r] = await take(nobody.messages(), 1);
  assert.is(r!.sealed, true);
  assert.is(r!.data.toString(), 'sealed to your key');
  assert.is(r!.verified, true);
  await nobody.close();
  await b.close();
  await router.close();
});

test('refused envelopes: each a coded rejected event in order, never delivered; the good one after them is', async () => {
  const [router, addr] = await startRouter();
  const kb = generateKeyPair();
  const kc = generateKeyPair();
  const a = await connect({ router: addr, keyPair: generateKeyPair() });
  const b = await connect({ router: addr, keyPair: kb });
  const c = await connect({ router: addr, keyPair: kc });
  const rejected: RejectedMessage[] = [];
  b.on('rejected', (r) => rejected.push(r));
  const good = seal({ content: 'fine', recipientPublicKey: kb.publicKey });
  const tampered = Uint8Array.from(good);
  tampered[60]! ^= 1;
  const sends: Array<[Uint8Array, string]> = [
    [tampered, ErrorCode.SEAL_OPEN_FAILED],
    [good.subarray(0, 40), ErrorCode.SEAL_OPEN_FAILED],
    [seal({ content: 'for c', recipientPublicKey: kc.publicKey }), ErrorCode.SEAL_OPEN_FAILED],
    [seal({ content: 'replayed', recipientPublicKey: kb.publicKey, recipientId: c.id }), ErrorCode.RECIPIENT_MISMATCH],
    [Buffer.from('plain text with the sealed flag'), ErrorCode.SEAL_OPEN_FAILED],
  ];
  for (const [env] of sends) a.send(b.id, env, { sealed: true });
  a.send(b.id, good, { sealed: true });
  const [m] = await take(b.messages(), 1);
  assert.is(m!.data.toString(), 'fine');
  assert.equal(rejected.map((r) => r.error.code), sends.map(([, c]) => c));
  assert.ok(rejected.every((r) => r.from === a.id && !r.anonymous));
  assert.ok(Buffer.from(rejected[0]!.envelope).equals(Buffer.from(tampered)));
  assert.is(b.rejected, sends.length);
  assert.is(b.queued, 0, 'nothing else was delivered');
  for (const x of [a, b, c]) await x.close();
  await router.close();
});

test('order is kept while sender checks wait for the directory; sendSealed keeps call order', async () => {
  const [router, addr, port] = await startRouter();
  const kr = generateKeyPair();
  const counts = new Map<number, number>();
  // no key cache: every proven sender costs a LOOKUP, so plain messages arrive while they wait
  const r = await connect({ createConnection: countingConnection(port, counts), keyPair: kr, keyCacheSize: 0 });
  const s1 = await connect({ router: addr, keyPair: generateKeyPair() });
  const s2 = await connect({ router: addr, keyPair: generateKeyPair(), trustedKeys: { [r.id]: kr.publicKey } });
  const expected = sendMix(s2, r.id, 40);
  const got = await take(r.messages(), 40);
  inOrderPerSender(got, expected);
  for (const m of got) {
    if (Number(m.data.toString().slice(1)) % 3 === 1) assert.is(m.sealed, false);
    else assert.ok(m.verified && m.sender?.id === s2.id, `${m.data.toString()} verified`);
  }
  assert.ok((counts.get(FrameType.LOOKUP) ?? 0) >= 1, 'a lookup was made (concurrent ones for the same ID are shared)');

  // sendSealed keeps call order even when the first one waits for a lookup
  const order = [s1.sendSealed(r.id, 'first (lookup)'), s1.sendSealed(r.id, 'second'), s1.sendSealed(r.id, 'third', { seal: { publicKey: kr.publicKey } })];
  const seqs = await Promise.all(order);
  assert.ok(seqs[0]! < seqs[1]! && seqs[1]! < seqs[2]!);
  const got2 = await take(r.messages(), 3);
  assert.equal(got2.map((m) => m.data.toString()), ['first (lookup)', 'second', 'third']);
  for (const x of [r, s1, s2]) await x.close();
  await router.close();
});

test('the held-back messages are bounded by maxQueue: past it the oldest check gives up (lookup-failed), order still kept', async () => {
  const [router, addr] = await startRouter();
  const kr = generateKeyPair();
  const r = await connect({ router: addr, keyPair: kr, keyCacheSize: 0, maxQueue: 2 });
  const s = await connect({ router: addr, keyPair: generateKeyPair(), trustedKeys: { [r.id]: kr.publicKey } });
  const expected = sendMix(s, r.id, 40);
  const got = await take(r.messages(), 40);
  inOrderPerSender(got, expected);
  const verdicts = new Set(got.filter((m) => m.sealed).map((m) => m.verification));
  assert.ok(verdicts.has('lookup-failed'), 'a burst of 40 in one read overflows 2');
  for (const v of verdicts) assert.ok(v === 'lookup-failed' || v === 'directory', v);
  for (const x of [r, s]) await x.close();
  await router.close();
});

test('close while a sender check waits: the held-back messages are still delivered (lookup-failed), in order, before iteration ends', async () => {
  const router = new FakeRouter(); // never answers LOOKUP
  const kr = generateKeyPair();
  const r = await connect({ createConnection: router.connect, keyPair: kr });
  const from = newAgentId(router.routerId);
  const env = seal({ content: 'waiting', recipientPublicKey: kr.publicKey, sender: { id: from, keyPair: generateKeyPair() }, recipientId: r.id });
  router.last.write(Buffer.concat([...encodeDeliver(from, Buffer.from(env), Flag.SEALED), ...encodeDeliver(from, Buffer.from('behind it'))]));
  await until(() => router.last.of(FrameType.LOOKUP).length === 1, 2000, 'the LOOKUP');
  assert.is(r.queued, 0, 'both held back');
  await r.close();
  const got: Message[] = [];
  for await (const m of r) got.push(m);
  assert.equal(got.map((m) => [m.data.toString(), m.verification]), [['waiting', 'lookup-failed'], ['behind it', 'none']]);
});

/**
 * The inbox takes turns between senders (anonymous ones share a turn), so order is kept per
 * sender as the receiver sees it: the anonymous messages in order, the others in order.
 */
function inOrderPerSender(got: Message[], expected: string[]): void {
  const texts = (anonymous: boolean): string[] => got.filter((m) => m.anonymous === anonymous).map((m) => m.data.toString());
  const want = (anonymous: boolean): string[] => expected.filter((_, i) => (i % 3 === 2) === anonymous);
  assert.equal(texts(false), want(false));
  assert.equal(texts(true), want(true));
}

/** Sends `n` messages in one burst: sealed with proof, plain, anonymous sealed with proof, ... */
function sendMix(s: Agent, to: string, n: number): string[] {
  const expected: string[] = [];
  for (let i = 0; i < n; i++) {
    const text = `m${i}`;
    expected.push(text);
    if (i % 3 === 0) s.send(to, text, { seal: true });
    else if (i % 3 === 1) s.send(to, text);
    else s.send(to, text, { seal: true, anonymous: true, prove: true });
  }
  return expected;
}

test('sealing options are checked: codes for bad combinations and keys, NO_KEY from the directory', async () => {
  const [router, addr] = await startRouter();
  const plain = await connect({ router: addr });
  const keyed = await connect({ router: addr, keyPair: generateKeyPair() });
  const kp: KeyPair = generateKeyPair();
  assert.is(code(() => plain.send(keyed.id, 'x', { seal: { publicKey: keyed.publicKey! }, prove: true })), ErrorCode.INVALID_ARGUMENT, 'prove without keyPair');
  assert.is(code(() => keyed.send(plain.id, 'x', { pad: true })), ErrorCode.INVALID_ARGUMENT, 'pad without seal');
  assert.is(code(() => keyed.send(plain.id, 'x', { prove: false })), ErrorCode.INVALID_ARGUMENT, 'prove without seal');
  assert.is(code(() => keyed.send(plain.id, 'x', { seal: { publicKey: new Uint8Array(31) } })), ErrorCode.INVALID_ARGUMENT);
  assert.is(code(() => keyed.send(plain.id, 'x', { seal: 'yes' as unknown as boolean })), ErrorCode.INVALID_ARGUMENT);
  assert.is(code(() => keyed.send(plain.id, Buffer.alloc(keyed.routerInfo.maxPayload - 100), { seal: { publicKey: kp.publicKey } })), ErrorCode.FRAME_TOO_LARGE, 'the envelope counts');
  assert.is(await rejection(keyed.sendSealed(plain.id, 'x')), ErrorCode.NO_KEY);
  assert.is(await rejection(keyed.sendSealed(plain.id, 'x', { seal: false })), ErrorCode.INVALID_ARGUMENT);
  assert.is(await rejection(keyed.sendSealed('nope', 'x')), ErrorCode.INVALID_ID);
  // without a keyPair nothing is opened: the envelope arrives as sent, flagged sealed
  const env = seal({ content: 'opaque', recipientPublicKey: kp.publicKey });
  const seq = await keyed.sendSealed(plain.id, 'x', { seal: { publicKey: kp.publicKey } });
  assert.type(seq, 'number');
  keyed.send(plain.id, env, { sealed: true });
  const [m1, m2] = await take(plain.messages(), 2);
  assert.is(m1!.sealed, true);
  assert.is(m1!.verification, 'none');
  assert.is(open(m1!.data, kp).content.length, 1);
  assert.ok(m2!.data.equals(Buffer.from(env)));
  await plain.close();
  assert.is(await rejection(keyed.sendSealed(plain.id, 'x')), ErrorCode.UNKNOWN_DESTINATION);
  await keyed.close();
  assert.is(await rejection(keyed.sendSealed(plain.id, 'x')), ErrorCode.CLOSED);
  await router.close();
});

test.run();
