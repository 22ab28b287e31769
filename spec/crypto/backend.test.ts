import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { cryptoBackend, nativeCryptoAvailable, setCryptoBackend, type CryptoBackendName } from '../../src/crypto/backend.js';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { open, seal } from '../../src/crypto/seal.js';
import { openBox, sealBox } from '../../src/crypto/sealed-box.js';
import { isSmallOrder, x25519, x25519Base } from '../../src/crypto/x25519.js';
import type { PosternError } from '../../src/protocol/errors.js';
import { newAgentId } from '../../src/protocol/id.js';
import { VECTORS_JSON, buildVectors, type EnvelopeVectors } from './vectors.js';
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
      for (const v of stored.vectors) {
        const k = stored.keys[v.recipient]!;
        const kp = { publicKey: unhex(k.publicKey), secretKey: unhex(k.secretKey) };
        const env = unhex(v.envelope);
        if (v.layer === 'sealed-box') {
          assert.is(hex(openBox(env, kp.publicKey, kp.secretKey)), v.plain, v.name);
          continue;
        }
        const opts = v.open.recipientId === null ? {} : { recipientId: v.open.recipientId };
        if ('error' in v.expect) {
          let code: string | undefined;
          try {
            open(env, kp, opts);
          } catch (err) {
            code = (err as PosternError).code;
          }
          assert.is(code, v.expect.error, v.name);
        } else {
          assert.is(hex(open(env, kp, opts).content), v.expect.content, v.name);
        }
      }
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

test.run();
