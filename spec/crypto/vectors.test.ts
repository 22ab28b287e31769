import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import sodium from 'libsodium-wrappers';
import { VECTORS_JSON, buildVectors, checkStoredVectors, type EnvelopeVectors } from './vectors.js';
import { concat, hex, unhex } from './helpers.js';

await sodium.ready;

const stored = JSON.parse(readFileSync(VECTORS_JSON, 'utf8')) as EnvelopeVectors;
const keyPair = (name: string): { publicKey: Uint8Array; secretKey: Uint8Array } => ({
  publicKey: unhex(stored.keys[name]!.publicKey),
  secretKey: unhex(stored.keys[name]!.secretKey),
});

test('spec/vectors/envelope.json is exactly what the code produces now', () => {
  // On failure: if the change is intended, `node dist/spec/crypto/vectors.js --write` and update the docs.
  assert.equal(buildVectors(), stored);
});

test('every vector opens (or fails) as stated, read straight from the JSON', () => {
  assert.ok(stored.vectors.length >= 12);
  checkStoredVectors(stored);
});

test('libsodium alone reproduces the outer layer of every vector from its ephemeral key', () => {
  for (const v of stored.vectors) {
    if (v.plain === undefined) continue;
    const rpk = keyPair(v.recipient).publicKey;
    const epk = unhex(v.ephemeralPublicKey);
    const esk = unhex(v.ephemeralSecretKey);
    assert.is(hex(sodium.crypto_scalarmult_base(esk)), v.ephemeralPublicKey, v.name);
    const nonce = sodium.crypto_generichash(24, concat(epk, rpk), null);
    const outer = concat(epk, sodium.crypto_box_easy(unhex(v.plain), nonce, rpk, esk));
    assert.is(hex(outer), v.envelope, v.name);
  }
});

test('libsodium alone opens the inner box of every sender vector and finds the documented layout', () => {
  const label = new TextEncoder().encode('postern/inner/v1');
  for (const v of stored.vectors) {
    if (v.seal === undefined || !v.seal.sender) continue;
    const r = keyPair(v.recipient);
    const plain = unhex(v.plain!);
    assert.is(plain[0], 0x02, v.name);
    const spk = plain.subarray(1, 33);
    assert.is(hex(spk), stored.keys.sender!.publicKey, v.name);
    const nonce = sodium.crypto_generichash(24, concat(label, unhex(v.ephemeralPublicKey), r.publicKey), null);
    const inner = sodium.crypto_box_open_easy(plain.subarray(33), nonce, spk, r.secretKey);
    // senderId || recipientId-or-zeros || u32 length || content || zeros
    assert.is(hex(inner.subarray(0, 16)), v.seal.senderId ?? '00'.repeat(16), v.name);
    assert.is(hex(inner.subarray(16, 32)), v.seal.recipientId ?? '00'.repeat(16), v.name);
    const len = new DataView(inner.buffer, inner.byteOffset).getUint32(32);
    assert.is(hex(inner.subarray(36, 36 + len)), v.seal.content, v.name);
    assert.ok(inner.subarray(36 + len).every((b) => b === 0), v.name);
    // And the outer length is a size class when padded.
    if (v.seal.pad) assert.ok([128, 256, 512].includes(v.envelope.length / 2), v.name);
  }
});

const PROTOCOL_MD = fileURLToPath(new URL('../../../PROTOCOL.md', import.meta.url));

test('the hex in PROTOCOL.md Appendix D agrees with the JSON, vector by vector', () => {
  const doc = readFileSync(PROTOCOL_MD, 'utf8');
  const text = doc.slice(doc.search(/^## Appendix D\./m));
  assert.ok(text.length > 1000, 'PROTOCOL.md has Appendix D');
  for (const v of stored.vectors) {
    const at = text.indexOf(`\n#### Vector \`${v.name}\`\n`);
    assert.ok(at >= 0, `Appendix D has no heading for vector ${v.name}`);
    const next = text.indexOf('\n#### ', at + 5);
    const section = text.slice(at, next < 0 ? undefined : next);
    const blocks = [...section.matchAll(/```text\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const byLabel = new Map(blocks.map((b) => [b.split('\n', 1)[0]!.split(' ')[0]!, b.split('\n').slice(1).join('').trim()]));
    assert.is(byLabel.get('envelope'), v.envelope, `${v.name}: envelope hex`);
    if (v.plain !== undefined) assert.is(byLabel.get('plain'), v.plain, `${v.name}: plain hex`);
  }
  for (const k of Object.values(stored.keys)) {
    assert.ok(text.includes(k.secretKey) && text.includes(k.publicKey), `Appendix D lists key ${k.publicKey}`);
  }
});

test.run();
