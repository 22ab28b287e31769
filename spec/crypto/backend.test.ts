import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { blake2b } from '@noble/hashes/blake2.js';
import {
  cryptoBackend,
  nativeCryptoAvailable,
  nonceHash,
  secretboxInPlace,
  secretboxOpenInto,
  setCryptoBackend,
  type CryptoBackendName,
} from '../../src/crypto/backend.js';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { open, seal } from '../../src/crypto/seal.js';
import { openBox, sealBox } from '../../src/crypto/sealed-box.js';
import { isSmallOrder, x25519, x25519Base } from '../../src/crypto/x25519.js';
import type { PosternError } from '../../src/protocol/errors.js';
import { newAgentId } from '../../src/protocol/id.js';
import { VECTORS_JSON, buildVectors, checkStoredVectors, type EnvelopeVectors } from './vectors.js';
import { hex, unhex } from './helpers.js';
import { prng } from '../helpers/random.js';

// Both backends of the envelope's primitives (sodium-native and the portable tweetnacl +
// node:crypto path) against the same vectors, and against each other on random inputs.

const stored = JSON.parse(readFileSync(VECTORS_JSON, 'utf8')) as EnvelopeVectors;
const initial = cryptoBackend();
let installed = true;
try {
  createRequire(import.meta.url).resolve('sodium-native');
} catch {
  installed = false;
}
const backends: CryptoBackendName[] = installed ? ['native', 'portable'] : ['portable'];


function using<T>(name: CryptoBackendName, fn: () => T): T {
  assert.is(setCryptoBackend(name), name);
  try {
    return fn();
  } finally {
    setCryptoBackend(initial);
  }
}

test('sodium-native loads where it is installed, and is the default unless POSTERN_CRYPTO=portable', () => {
  assert.is(nativeCryptoAvailable(), installed);
  assert.is(initial, installed && process.env['POSTERN_CRYPTO'] !== 'portable' ? 'native' : 'portable');
});

for (const b of backends) {
  test(`${b}: the vectors of spec/vectors/envelope.json, made and opened`, () => {
    using(b, () => {
      assert.equal(buildVectors(), stored);
      checkStoredVectors(stored);
    });
  });
}

test('X25519 agrees across backends, and both refuse small-order keys', () => {
  if (backends.length < 2) return;
  for (let i = 0; i < 50; i++) {
    const sk = randomBytes(32);
    const pk = randomBytes(32);
    const a = using('native', () => [x25519(sk, pk), x25519Base(sk)]);
    const p = using('portable', () => [x25519(sk, pk), x25519Base(sk)]);
    assert.equal(a, p);
  }
  const small = unhex('0100000000000000000000000000000000000000000000000000000000000000');
  assert.ok(isSmallOrder(small));
  for (const b of backends) assert.is(using(b, () => x25519(randomBytes(32), small)), undefined, b);
});

test('sealed by one backend, opened by the other: random sizes, senders, bindings, padding', () => {
  if (backends.length < 2) return;
  const random = prng(Number(process.env['POSTERN_CRYPTO_SEED'] ?? 7));
  const recipient = generateKeyPair();
  const sender = generateKeyPair();
  const rid = newAgentId(3);
  const sid = newAgentId(4);
  for (let i = 0; i < 60; i++) {
    const size = random() < 0.7 ? Math.floor(random() * 600) : Math.floor(random() * 70_000);
    const content = randomBytes(size);
    const withSender = random() < 0.5;
    const bind = random() < 0.5;
    const pad = random() < 0.3;
    const [from, to]: CryptoBackendName[] = i % 2 === 0 ? ['native', 'portable'] : ['portable', 'native'];
    const env = using(from, () =>
      seal({
        content,
        recipientPublicKey: recipient.publicKey,
        sender: withSender ? { id: sid, keyPair: sender } : undefined,
        recipientId: bind ? rid : undefined,
        pad,
      }),
    );
    const opened = using(to, () => open(env, recipient, bind ? { recipientId: rid } : {}));
    assert.is(Buffer.compare(Buffer.from(opened.content), content), 0, `case ${i}`);
    assert.is(opened.verified, withSender);
    // One changed byte: neither backend opens it.
    const bad = Uint8Array.from(env);
    bad[Math.floor(random() * bad.length)]! ^= 1 << Math.floor(random() * 8);
    for (const b of backends) {
      let code: string | undefined;
      try {
        using(b, () => open(bad, recipient));
      } catch (err) {
        code = (err as PosternError).code;
      }
      assert.ok(code === 'POSTERN_ERR_SEAL_OPEN_FAILED' || code === 'POSTERN_ERR_SENDER_UNVERIFIED', `${b} case ${i}: ${code}`);
    }
    const box = using(from, () => sealBox(content, recipient.publicKey));
    assert.is(Buffer.compare(Buffer.from(using(to, () => openBox(box, recipient.publicKey, recipient.secretKey))), content), 0);
  }
});

for (const b of backends) {
  test(`${b}: the in-place secretbox is nacl's secretbox, and a failed open writes nothing`, () => {
    using(b, () => {
      const random = prng(11);
      for (const size of [0, 1, 15, 16, 17, 255, 4096, 70_000]) {
        const m = randomBytes(size);
        const nonce = randomBytes(24);
        const key = randomBytes(32);
        const buf = new Uint8Array(5 + 16 + size + 3);
        buf.set(m, 5 + 16);
        secretboxInPlace(buf, 5, size, nonce, key);
        const want = nacl.secretbox(m, nonce, key);
        assert.is(hex(buf.subarray(5, 5 + 16 + size)), hex(want), `size ${size}`);
        assert.is(hex(buf.subarray(0, 5)) + hex(buf.subarray(21 + size)), '00'.repeat(8), 'nothing written outside the box');
        // Opened into another array, then in place.
        const out = new Uint8Array(size);
        assert.ok(secretboxOpenInto(buf, 5, size, out, 0, nonce, key));
        assert.is(Buffer.compare(Buffer.from(out), m), 0);
        const before = hex(buf);
        assert.ok(secretboxOpenInto(buf, 5, size, buf, 21, nonce, key));
        assert.is(hex(buf.subarray(21, 21 + size)), hex(m));
        assert.is(hex(buf.subarray(0, 21)), before.slice(0, 42), 'the tag stays');
        // One flipped bit anywhere in tag or ciphertext: false, and the target untouched.
        const box = Uint8Array.from(want);
        box[Math.floor(random() * box.length)]! ^= 1 << Math.floor(random() * 8);
        const dst = new Uint8Array(size).fill(0xaa);
        assert.not.ok(secretboxOpenInto(box, 0, size, dst, 0, nonce, key));
        assert.ok(dst.every((x) => x === 0xaa), `size ${size}: nothing written on failure`);
        assert.not.ok(secretboxOpenInto(box, 0, -1, dst, 0, nonce, key), 'shorter than a tag');
      }
    });
  });

  test(`${b}: the nonce hash is unkeyed BLAKE2b-192 of the concatenation`, () => {
    using(b, () => {
      for (const [x, y, z] of [
        [randomBytes(32), randomBytes(32), undefined],
        [randomBytes(16), randomBytes(32), randomBytes(32)],
        [new Uint8Array(0), randomBytes(5), randomBytes(1)],
      ] as Array<[Uint8Array, Uint8Array, Uint8Array | undefined]>) {
        const all = Buffer.concat([x, y, ...(z === undefined ? [] : [z])]);
        assert.is(hex(nonceHash(x, y, z)), hex(blake2b(all, { dkLen: 24 })));
      }
    });
  });

  test(`${b}: open() never writes to the envelope it is given, whether it opens or not`, () => {
    // The agent opens envelopes in the socket's memory and hands a refused one to 'rejected'.
    using(b, () => {
      for (const v of stored.vectors) {
        if (v.layer === 'sealed-box') continue;
        const k = stored.keys[v.recipient]!;
        const env = unhex(v.envelope);
        try {
          open(env, { publicKey: unhex(k.publicKey), secretKey: unhex(k.secretKey) });
        } catch {
          // refused: the bytes must still be the ones received
        }
        assert.is(hex(env), v.envelope, v.name);
      }
    });
  });
}

test('X25519 operations per message (native): seal 1 fixed-base + 1 variable, open 1; static keys cached', () => {
  if (!installed) return;
  // Counted by wrapping the addon's exports, which backend.ts looks up at each call.
  // libsodium's crypto_box_seal makes a key pair (1 fixed-base) and agrees (1 variable);
  // crypto_box_seal_open agrees (1 variable).
  const na = createRequire(import.meta.url)('sodium-native') as Record<string, (...a: unknown[]) => unknown>;
  const count = { variable: 0, base: 0 };
  const costs: Record<string, [number, number]> = {
    crypto_scalarmult: [0, 1],
    crypto_scalarmult_base: [1, 0],
    crypto_box_seal: [1, 1],
    crypto_box_seal_open: [0, 1],
  };
  const orig: Record<string, (...a: unknown[]) => unknown> = {};
  for (const [name, [b, v]] of Object.entries(costs)) {
    const f = (orig[name] = na[name]!);
    na[name] = (...a: unknown[]) => {
      count.base += b;
      count.variable += v;
      return f(...a);
    };
  }
  const ops = (fn: () => unknown): string => {
    count.variable = 0;
    count.base = 0;
    fn();
    return `${count.base} base + ${count.variable} variable`;
  };
  try {
    using('native', () => {
      const r = generateKeyPair();
      const sender = { id: newAgentId(5), keyPair: generateKeyPair() };
      const content = randomBytes(256);
      const sealAnon = (): Uint8Array => seal({ content, recipientPublicKey: r.publicKey });
      const sealProof = (): Uint8Array => seal({ content, recipientPublicKey: r.publicKey, sender });
      assert.is(ops(sealAnon), '1 base + 1 variable', 'seal, anonymous');
      // The first envelope between two key pairs checks the sender's pair (1 base) and
      // computes the static box key (1 variable); later ones reuse both.
      assert.is(ops(sealProof), '2 base + 2 variable', 'seal with sender, first');
      assert.is(ops(sealProof), '1 base + 1 variable', 'seal with sender, later');
      const a = sealAnon();
      const p = sealProof();
      assert.is(ops(() => open(a, r)), '0 base + 1 variable', 'open, anonymous');
      // The static box key is cached per secret key: the recipient computes its side once.
      assert.is(ops(() => open(p, r)), '0 base + 2 variable', 'open with sender, first');
      assert.is(ops(() => open(p, r)), '0 base + 1 variable', 'open with sender, later');
    });
  } finally {
    Object.assign(na, orig);
  }
});

test.run();
