import { test } from 'uvu';
import * as assert from 'uvu/assert';
import nacl from 'tweetnacl';
import sodium from 'libsodium-wrappers';
import { blake2b } from '@noble/hashes/blake2.js';
import { ANONYMOUS_OVERHEAD, SENDER_OVERHEAD, open, seal, sealWithEphemeral } from '../../src/crypto/seal.js';
import { STATIC_KEY_CACHE_SIZE, openBox, sealBox, staticBoxKey } from '../../src/crypto/sealed-box.js';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { codeOf, concat, counting, fixedKeyPair, hex, refEnvelope, testId } from './helpers.js';

await sodium.ready;

const A = generateKeyPair(); // sender
const B = generateKeyPair(); // recipient
const C = generateKeyPair(); // someone else
const A_ID = testId(7, 0xa0);
const B_ID = testId(7, 0xb0);
const B_ID_AFTER_RECONNECT = testId(7, 0xb1);
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

test('anonymous round trip: content back, no sender, not verified, 69 bytes of overhead', () => {
  for (const n of [0, 1, 100, 5000]) {
    const content = nacl.randomBytes(n);
    const env = seal({ content, recipientPublicKey: B.publicKey });
    assert.is(env.length, n + ANONYMOUS_OVERHEAD);
    const got = open(env, B);
    assert.is(hex(got.content), hex(content));
    assert.is(got.sender, undefined);
    assert.is(got.recipientId, undefined);
    assert.is(got.verified, false);
  }
  assert.is(ANONYMOUS_OVERHEAD, 69);
});

test('sender round trip: claimed ID and key come back verified, 133 bytes of overhead', () => {
  for (const n of [0, 1, 100, 5000]) {
    const content = nacl.randomBytes(n);
    const env = seal({ content, recipientPublicKey: B.publicKey, sender: { id: A_ID, keyPair: A } });
    assert.is(env.length, n + SENDER_OVERHEAD);
    const got = open(env, B);
    assert.is(hex(got.content), hex(content));
    assert.is(hex(got.sender!.id!), hex(A_ID));
    assert.is(hex(got.sender!.publicKey), hex(A.publicKey));
    assert.is(got.verified, true);
  }
  assert.is(SENDER_OVERHEAD, 133);
});

test('a sender without an ID (anonymous connection): the key is proven, no ID comes back', () => {
  const env = seal({ content: text('from nowhere'), recipientPublicKey: B.publicKey, sender: { keyPair: A }, recipientId: B_ID });
  assert.is(env.length, 12 + SENDER_OVERHEAD);
  const got = open(env, B, { recipientId: B_ID });
  assert.is(new TextDecoder().decode(got.content), 'from nowhere');
  assert.is(got.sender!.id, undefined);
  assert.ok(!('id' in got.sender!));
  assert.is(hex(got.sender!.publicKey), hex(A.publicKey));
  assert.is(got.verified, true);
  // The all-zero ID is how it is written, and it can only be said by leaving the ID out.
  assert.is(hex(openBox(env, B.publicKey, B.secretKey).subarray(1, 33)), hex(A.publicKey));
  assert.is(codeOf(() => seal({ content: text('x'), recipientPublicKey: B.publicKey, sender: { id: new Uint8Array(16), keyPair: A } })), ErrorCode.INVALID_ID);
  // Forging one still fails.
  const forged = refEnvelope({ content: text('x'), rpk: B.publicKey, sender: { id: new Uint8Array(16), keyPair: C, claimedPk: A.publicKey } });
  assert.is(codeOf(() => open(forged, B)), ErrorCode.SENDER_UNVERIFIED);
});

test('string content is UTF-8; IDs may be given as text', () => {
  const env = seal({
    content: 'grüß dich ✓',
    recipientPublicKey: B.publicKey,
    sender: { id: hex(A_ID), keyPair: A },
    recipientId: hex(B_ID).toUpperCase(),
  });
  const got = open(env, B, { recipientId: hex(B_ID) });
  assert.is(new TextDecoder().decode(got.content), 'grüß dich ✓');
  assert.is(hex(got.sender!.id!), hex(A_ID));
  assert.is(hex(got.recipientId!), hex(B_ID));
});

test('matches the reference encoder byte for byte (fixed ephemeral), every form', () => {
  const eph = fixedKeyPair(counting(0x41));
  const content = text('same bytes');
  for (const withSender of [false, true]) {
    for (const withRid of [false, true]) {
      const opts = {
        content,
        recipientPublicKey: B.publicKey,
        ...(withSender ? { sender: { id: A_ID, keyPair: A } } : {}),
        ...(withRid ? { recipientId: B_ID } : {}),
      };
      const ref = refEnvelope({
        content,
        rpk: B.publicKey,
        eph,
        ...(withSender ? { sender: { id: A_ID, keyPair: A } } : {}),
        ...(withRid ? { recipientId: B_ID } : {}),
      });
      assert.is(hex(sealWithEphemeral(opts, eph)), hex(ref), `sender ${withSender} rid ${withRid}`);
      // Padded: the reference with the same zeros appended.
      const overhead = withSender ? SENDER_OVERHEAD : ANONYMOUS_OVERHEAD;
      const padded = sealWithEphemeral({ ...opts, pad: true }, eph);
      const refPadded = refEnvelope({
        content,
        rpk: B.publicKey,
        eph,
        padding: new Uint8Array(padded.length - overhead - content.length),
        ...(withSender ? { sender: { id: A_ID, keyPair: A } } : {}),
        ...(withRid ? { recipientId: B_ID } : {}),
      });
      assert.is(hex(padded), hex(refPadded), `padded, sender ${withSender} rid ${withRid}`);
    }
  }
});

test('libsodium opens the outer layer of an envelope, and postern opens an envelope libsodium sealed', () => {
  const env = seal({ content: text('hi'), recipientPublicKey: B.publicKey, sender: { id: A_ID, keyPair: A } });
  const plain = sodium.crypto_box_seal_open(env, B.publicKey, B.secretKey);
  assert.is(plain[0], 0x02);
  assert.is(hex(plain.subarray(1, 33)), hex(A.publicKey));
  // Anonymous form made entirely by libsodium: 0x01 || zero recipient ID || u32 length || content.
  const body = concat(Uint8Array.of(0x01), new Uint8Array(16), Uint8Array.of(0, 0, 0, 3), text('abc'));
  const got = open(sodium.crypto_box_seal(body, B.publicKey), B);
  assert.is(new TextDecoder().decode(got.content), 'abc');
});

test('recipient ID binding: same ID opens, another ID is RECIPIENT_MISMATCH, unbound envelopes open anywhere', () => {
  for (const sender of [undefined, { id: A_ID, keyPair: A }]) {
    const bound = seal({ content: text('x'), recipientPublicKey: B.publicKey, recipientId: B_ID, ...(sender ? { sender } : {}) });
    assert.is(hex(open(bound, B, { recipientId: B_ID }).recipientId!), hex(B_ID));
    assert.is(codeOf(() => open(bound, B, { recipientId: B_ID_AFTER_RECONNECT })), ErrorCode.RECIPIENT_MISMATCH);
    // An opener that does not say who it is gets the bound ID to check itself.
    assert.is(hex(open(bound, B).recipientId!), hex(B_ID));
    const unbound = seal({ content: text('x'), recipientPublicKey: B.publicKey, ...(sender ? { sender } : {}) });
    const got = open(unbound, B, { recipientId: B_ID_AFTER_RECONNECT });
    assert.is(got.recipientId, undefined);
  }
});

test('replayed to another recipient key as is: SEAL_OPEN_FAILED', () => {
  const env = seal({ content: text('for B'), recipientPublicKey: B.publicKey, sender: { id: A_ID, keyPair: A } });
  assert.is(codeOf(() => open(env, C)), ErrorCode.SEAL_OPEN_FAILED);
});

test('re-sealed by the recipient to someone else, or to itself: SENDER_UNVERIFIED', () => {
  const env = seal({ content: text('for B only'), recipientPublicKey: B.publicKey, sender: { id: A_ID, keyPair: A } });
  const plain = openBox(env, B.publicKey, B.secretKey); // what B sees inside the seal
  // B forwards the inside to C, pretending A wrote to C.
  assert.is(codeOf(() => open(sealBox(plain, C.publicKey), C)), ErrorCode.SENDER_UNVERIFIED);
  // Re-wrapped under a new ephemeral key (to look like a new message): the inner nonce no longer matches.
  assert.is(codeOf(() => open(sealBox(plain, B.publicKey), B)), ErrorCode.SENDER_UNVERIFIED);
  // Anonymous envelopes carry no such proof: re-sealing one is just sending it again.
  const anon = seal({ content: text('anon'), recipientPublicKey: B.publicKey, recipientId: B_ID });
  const anonPlain = openBox(anon, B.publicKey, B.secretKey);
  assert.is(new TextDecoder().decode(open(sealBox(anonPlain, C.publicKey), C).content), 'anon');
  // ...but a bound recipient ID still betrays it.
  assert.is(codeOf(() => open(sealBox(anonPlain, C.publicKey), C, { recipientId: testId(9, 1) })), ErrorCode.RECIPIENT_MISMATCH);
});

test('a sender claiming a key it does not hold: SENDER_UNVERIFIED', () => {
  // C claims to be A: A's public key in the envelope, but the inner box made with C's secret key.
  const forged = refEnvelope({ content: text('I am A'), rpk: B.publicKey, sender: { id: A_ID, keyPair: C, claimedPk: A.publicKey } });
  assert.is(codeOf(() => open(forged, B)), ErrorCode.SENDER_UNVERIFIED);
  // Inner box made for another recipient key, or with the wrong nonce.
  const otherTo = refEnvelope({ content: text('x'), rpk: B.publicKey, sender: { id: A_ID, keyPair: A }, innerTo: C.publicKey });
  assert.is(codeOf(() => open(otherTo, B)), ErrorCode.SENDER_UNVERIFIED);
  const badNonce = refEnvelope({ content: text('x'), rpk: B.publicKey, sender: { id: A_ID, keyPair: A }, innerNonce: new Uint8Array(24) });
  assert.is(codeOf(() => open(badNonce, B)), ErrorCode.SENDER_UNVERIFIED);
  // The reference encoder itself is right: unaltered, it opens.
  const good = refEnvelope({ content: text('x'), rpk: B.publicKey, sender: { id: A_ID, keyPair: A } });
  assert.is(open(good, B).verified, true);
});

test('a sender key of small order (its box key is public, anyone can forge) is SENDER_UNVERIFIED', () => {
  const lowOrder = Uint8Array.from(Buffer.from('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157', 'hex'));
  const eph = nacl.box.keyPair();
  const publicKnownKey = nacl.box.before(lowOrder, nacl.randomBytes(32));
  const nonce = blake2b(concat(text('postern/inner/v1'), eph.publicKey, B.publicKey), { dkLen: 24 });
  const inner = nacl.secretbox(concat(A_ID, new Uint8Array(16), Uint8Array.of(0, 0, 0, 1), text('!')), nonce, publicKnownKey);
  assert.ok(nacl.box.open(inner, nonce, lowOrder, B.secretKey) !== null, 'tweetnacl alone would accept it');
  const plain = concat(Uint8Array.of(0x02), lowOrder, inner);
  const eNonce = blake2b(concat(eph.publicKey, B.publicKey), { dkLen: 24 });
  const env = concat(eph.publicKey, nacl.box(plain, eNonce, B.publicKey, eph.secretKey));
  assert.is(codeOf(() => open(env, B)), ErrorCode.SENDER_UNVERIFIED);
});

test('unknown type byte: UNSUPPORTED_ENVELOPE', () => {
  for (const type of [0x00, 0x03, 0x7f, 0x80, 0xff]) {
    const env = refEnvelope({ type, content: text('x'), rpk: B.publicKey });
    assert.is(codeOf(() => open(env, B)), ErrorCode.UNSUPPORTED_ENVELOPE, `type ${type}`);
  }
});

test('malformed inside a good seal: BAD_ENVELOPE', () => {
  const cases: Array<[string, Uint8Array]> = [
    ['empty plaintext', sealBox(new Uint8Array(0), B.publicKey)],
    ['anonymous body cut short', refEnvelope({ content: new Uint8Array(0), rpk: B.publicKey, truncatePlain: 20 })],
    ['sender form cut short', refEnvelope({ content: new Uint8Array(0), rpk: B.publicKey, sender: { id: A_ID, keyPair: A }, truncatePlain: 1 + 32 + 16 + 16 + 19 })],
    ['length past the end (anonymous)', refEnvelope({ content: text('abc'), rpk: B.publicKey, lengthField: 4 })],
    ['length past the end (sender)', refEnvelope({ content: text('abc'), rpk: B.publicKey, sender: { id: A_ID, keyPair: A }, lengthField: 0xffffffff })],
    ['non-zero padding (anonymous)', refEnvelope({ content: text('abc'), rpk: B.publicKey, padding: Uint8Array.of(0, 0, 1, 0) })],
    ['non-zero padding (sender)', refEnvelope({ content: text('abc'), rpk: B.publicKey, sender: { id: A_ID, keyPair: A }, padding: Uint8Array.of(0x80) })],
    ['sender ID with router ID 0', refEnvelope({ content: text('abc'), rpk: B.publicKey, sender: { id: testId(0, 5), keyPair: A } })],
    ['recipient ID with router ID 0', refEnvelope({ content: text('abc'), rpk: B.publicKey, recipientId: testId(0, 5) })],
  ];
  for (const [name, env] of cases) assert.is(codeOf(() => open(env, B)), ErrorCode.BAD_ENVELOPE, name);
  // Zero padding of any length is fine: the opener does not insist on size classes.
  const odd = refEnvelope({ content: text('abc'), rpk: B.publicKey, padding: new Uint8Array(7) });
  assert.is(new TextDecoder().decode(open(odd, B).content), 'abc');
});

// xorshift32, so a failure names a seed that reproduces it.
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

test('2,000 random single-byte changes and 300 random cuts all fail with SEAL_OPEN_FAILED', () => {
  const seed = 0x5eed1234;
  const next = rng(seed);
  const envelopes = [
    seal({ content: text('anonymous'), recipientPublicKey: B.publicKey }),
    seal({ content: text('padded anonymous'), recipientPublicKey: B.publicKey, recipientId: B_ID, pad: true }),
    seal({ content: nacl.randomBytes(300), recipientPublicKey: B.publicKey, sender: { id: A_ID, keyPair: A } }),
    seal({ content: text('padded with sender'), recipientPublicKey: B.publicKey, sender: { id: A_ID, keyPair: A }, recipientId: B_ID, pad: true }),
  ];
  let failures = 0;
  for (let i = 0; i < 2000; i++) {
    const env = envelopes[i % envelopes.length]!;
    const t = Uint8Array.from(env);
    const at = next() % t.length;
    t[at]! ^= (next() % 255) + 1; // never 0: always a change
    const code = codeOf(() => open(t, B, { recipientId: B_ID }));
    assert.is(code, ErrorCode.SEAL_OPEN_FAILED, `seed ${seed} iteration ${i} byte ${at}`);
    failures++;
  }
  for (let i = 0; i < 300; i++) {
    const env = envelopes[i % envelopes.length]!;
    const cut = next() % env.length;
    assert.is(codeOf(() => open(env.subarray(0, cut), B)), ErrorCode.SEAL_OPEN_FAILED, `cut ${cut}`);
    failures++;
  }
  assert.is(failures, 2300);
  // And the originals still open.
  for (const env of envelopes) assert.ok(open(env, B, { recipientId: B_ID }).content.length > 0);
});

test('2,000 mutated insides, properly sealed (a hostile sender): open returns or throws a coded error, nothing else', () => {
  const seed = 0x0badf00d;
  const next = rng(seed);
  const allowed = new Set<string>([ErrorCode.BAD_ENVELOPE, ErrorCode.UNSUPPORTED_ENVELOPE, ErrorCode.SENDER_UNVERIFIED, ErrorCode.RECIPIENT_MISMATCH]);
  const insides = [
    seal({ content: text('anonymous'), recipientPublicKey: B.publicKey, recipientId: B_ID, pad: [128] }),
    seal({ content: text('with sender'), recipientPublicKey: B.publicKey, sender: { id: A_ID, keyPair: A }, recipientId: B_ID }),
  ].map((env) => openBox(env, B.publicKey, B.secretKey));
  const seen = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    let p: Uint8Array = Uint8Array.from(insides[i % insides.length]!);
    const how = next() % 4;
    if (how === 0 || how === 1) {
      // one or two changed bytes, biased towards the headers where the checks are
      for (let k = 0; k <= how; k++) {
        const at = next() % 2 === 0 ? next() % Math.min(p.length, 40) : next() % p.length;
        p[at]! ^= (next() % 255) + 1;
      }
    } else if (how === 2) {
      p = p.subarray(0, next() % p.length);
    } else {
      p = concat(p, Uint8Array.from({ length: 1 + (next() % 8) }, () => next() & 0xff));
    }
    let outcome: string;
    try {
      open(sealBox(p, B.publicKey), B, { recipientId: B_ID });
      outcome = 'opened';
    } catch (err) {
      outcome = (err as { code?: string }).code ?? `uncoded ${String(err)}`;
      assert.ok(allowed.has(outcome), `seed ${seed} iteration ${i}: ${outcome}`);
    }
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
  }
  // The loop reaches every check, not just the first one.
  for (const code of [...allowed, 'opened']) assert.ok((seen.get(code) ?? 0) > 0, `never saw ${code}: ${JSON.stringify([...seen])}`);
});

test('500 random byte strings of every length up to 300: SEAL_OPEN_FAILED', () => {
  const next = rng(42);
  for (let i = 0; i < 500; i++) {
    const junk = Uint8Array.from({ length: i % 301 }, () => next() & 0xff);
    assert.is(codeOf(() => open(junk, B)), ErrorCode.SEAL_OPEN_FAILED, `length ${junk.length}`);
  }
});

test('static box keys are cached per secret key, bounded, and evicted ones are recomputed', () => {
  const r = generateKeyPair();
  const senders = Array.from({ length: STATIC_KEY_CACHE_SIZE + 20 }, (_, i) => ({ id: testId(5, i), keyPair: generateKeyPair() }));
  const first = staticBoxKey(senders[0]!.keyPair.publicKey, r.secretKey)!;
  assert.is(staticBoxKey(senders[0]!.keyPair.publicKey, r.secretKey), first, 'second lookup is the cached array');
  assert.is(hex(first), hex(nacl.box.before(senders[0]!.keyPair.publicKey, r.secretKey)), 'and the right key');
  const envs = senders.map((s) => seal({ content: text('x'), recipientPublicKey: r.publicKey, sender: s }));
  // Opening all of them pushes the first sender out of the cache; it is then recomputed.
  for (let round = 0; round < 2; round++) {
    envs.forEach((env, i) => assert.is(hex(open(env, r).sender!.id!), hex(senders[i]!.id)));
  }
  assert.is(hex(first), '00'.repeat(32), 'the evicted key was wiped');
  assert.is.not(staticBoxKey(senders[0]!.keyPair.publicKey, r.secretKey), first, 'a fresh array after eviction');
  assert.is(staticBoxKey(new Uint8Array(32), r.secretKey), undefined, 'small order is never cached');
});

test('bad arguments: INVALID_ARGUMENT, INVALID_ID, INVALID_OPTION', () => {
  const base = { content: text('x'), recipientPublicKey: B.publicKey };
  assert.is(codeOf(() => seal({ ...base, recipientPublicKey: new Uint8Array(31) })), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => seal({ ...base, recipientPublicKey: new Uint8Array(32) })), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => seal({ ...base, recipientPublicKey: new Uint8Array(32), sender: { id: A_ID, keyPair: A } })), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => seal({ ...base, content: 42 as unknown as Uint8Array })), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => seal(null as unknown as Parameters<typeof seal>[0])), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => seal({ ...base, sender: { id: new Uint8Array(15), keyPair: A } })), ErrorCode.INVALID_ID);
  assert.is(codeOf(() => seal({ ...base, sender: { id: A_ID, keyPair: { publicKey: A.publicKey, secretKey: C.secretKey } } })), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => seal({ ...base, sender: { id: A_ID, keyPair: null as unknown as typeof A } })), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => seal({ ...base, sender: 'me' as unknown as { id: string; keyPair: typeof A } })), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => seal({ ...base, recipientId: 'not an id' })), ErrorCode.INVALID_ID);
  assert.is(codeOf(() => seal({ ...base, pad: [] })), ErrorCode.INVALID_OPTION);
  const env = seal(base);
  assert.is(codeOf(() => open(env, B, { recipientId: new Uint8Array(16) })), ErrorCode.INVALID_ID);
  assert.is(codeOf(() => open(env, null as unknown as typeof B)), ErrorCode.INVALID_ARGUMENT);
  assert.is(codeOf(() => open(env, { publicKey: B.publicKey, secretKey: new Uint8Array(5) })), ErrorCode.INVALID_ARGUMENT);
});

test.run();
