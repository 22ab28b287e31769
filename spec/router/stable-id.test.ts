/**
 * Stable addresses (PROTOCOL.md §15): an agent proving its key at REGISTER gets the ID
 * derived from that key, again after a reconnect and after a router restart; a wrong proof
 * is refused; random IDs stay the default.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { connect, type Agent } from '../../src/agent/agent.js';
import { Router } from '../../src/router/router.js';
import { ErrorCode, type PosternError } from '../../src/protocol/errors.js';
import { formatId } from '../../src/protocol/id.js';
import { StableChallenge, stableIdFor, stableProof } from '../../src/protocol/stable-id.js';
import { decodeChallenge, encodeChallenge } from '../../src/protocol/stable-id.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../protocol/helpers.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { x25519Base } from '../../src/crypto/x25519.js';

function keyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const secretKey = randomBytes(32);
  return { secretKey, publicKey: x25519Base(secretKey) };
}

const routers: Router[] = [];
const agents: Agent[] = [];
test.after.each(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

async function router(port = 0, routerId = 0x51ab1e): Promise<Router> {
  const r = new Router({ host: '127.0.0.1', port, routerId });
  await r.listen();
  routers.push(r);
  return r;
}

test('an agent with stableId gets the ID of its key, across a reconnect and a router restart', async () => {
  const kp = keyPair();
  const r = await router();
  const port = r.address()!.port;
  const want = formatId(stableIdFor(0x51ab1e, kp.publicKey));
  const a = await connect({ router: `127.0.0.1:${port}`, keyPair: kp, stableId: true, reconnectDelay: 10, reconnectMaxDelay: 50 });
  agents.push(a);
  assert.is(a.id, want);
  // A plain agent next to it still gets a random ID, and can reach it by the stable ID.
  const b = await connect({ router: `127.0.0.1:${port}` });
  agents.push(b);
  assert.is.not(b.id, want);
  b.send(want, 'hi');
  assert.is((await a.messages().next()).value!.data.toString(), 'hi');
  // The directory has its key.
  assert.equal([...(await b.lookup(want))], [...kp.publicKey]);
  // Router restart: same router ID, fresh process state; the agent comes back to the same ID.
  await r.close();
  routers.splice(0);
  await new Promise((res) => setTimeout(res, 50));
  await router(port);
  await new Promise<void>((resolve) => {
    const check = (): void => (a.connected && a.id === want ? resolve() : void setTimeout(check, 10));
    check();
  });
  assert.is(a.id, want);
});

test('a second connection with the same key takes the stable ID over; the first is told to go', async () => {
  const kp = keyPair();
  const r = await router();
  const addr = `127.0.0.1:${r.address()!.port}`;
  const a1 = await connect({ router: addr, keyPair: kp, stableId: true, reconnect: false });
  agents.push(a1);
  const a2 = await connect({ router: addr, keyPair: kp, stableId: true, reconnect: false });
  agents.push(a2);
  assert.is(a2.id, a1.id);
  const err = await a1.closed();
  assert.is(err?.code, ErrorCode.GOING_AWAY);
});

test('the router side: challenge, proof, and every wrong proof refused', () => {
  const kp = keyPair();
  const c = new StableChallenge();
  const first = c.step({ key: kp.publicKey }, 7);
  assert.ok('frame' in first);
  const frame = Buffer.concat((first as { frame: Buffer[] }).frame);
  const nonce = decodeChallenge(frame, 0, frame.length);
  const proof = stableProof(kp.secretKey, kp.publicKey, nonce)!;
  const bad = Buffer.from(proof);
  bad[0] ^= 1;
  assert.equal(c.step({ key: kp.publicKey, proof: bad }, 7), { fail: 'the stable ID proof does not hold' });
  // one proof per challenge
  assert.ok('fail' in c.step({ key: kp.publicKey, proof }, 7));
  const c2 = new StableChallenge();
  const f2 = Buffer.concat((c2.step({ key: kp.publicKey }, 7) as { frame: Buffer[] }).frame);
  const p2 = stableProof(kp.secretKey, kp.publicKey, decodeChallenge(f2, 0, f2.length))!;
  const other = keyPair();
  assert.ok('fail' in c2.step({ key: other.publicKey, proof: p2 }, 7), 'proof for another key');
  const c3 = new StableChallenge();
  const f3 = Buffer.concat((c3.step({ key: kp.publicKey }, 7) as { frame: Buffer[] }).frame);
  const ok = c3.step({ key: kp.publicKey, proof: stableProof(kp.secretKey, kp.publicKey, decodeChallenge(f3, 0, f3.length)) }, 7);
  assert.equal(ok, { id: stableIdFor(7, kp.publicKey) });
  assert.ok('fail' in new StableChallenge().step({ key: Buffer.alloc(32) }, 7), 'small-order key');
  assert.ok('fail' in new StableChallenge().step({ proof: Buffer.alloc(32) }, 7), 'no key');
  assert.ok('fail' in new StableChallenge().step({ key: kp.publicKey, proof }, 7), 'proof without challenge');
});

test('the §15.4 vectors: stable ID, proof and CHALLENGE bytes from the fixed keys', () => {
  const f = (JSON.parse(readFileSync(join(ROOT, 'spec', 'vectors', 'streams.json'), 'utf8')) as { stable: Record<string, unknown> & { vectors: { name: string; hex: string }[] } }).stable;
  const hex = (k: string): Buffer => Buffer.from(f[k] as string, 'hex');
  assert.is(Buffer.from(x25519Base(hex('agentSecretKey'))).toString('hex'), f['agentPublicKey']);
  assert.is(stableIdFor(f['routerId'] as number, hex('agentPublicKey')).toString('hex'), f['stableId']);
  assert.is(stableProof(hex('agentSecretKey'), hex('agentPublicKey'), hex('nonce'))!.toString('hex'), f['proof']);
  const ch = f.vectors.find((v) => v.name === 'challenge')!;
  assert.is(Buffer.concat(encodeChallenge(hex('nonce'))).toString('hex'), ch.hex);
  const chBytes = Buffer.from(ch.hex, 'hex');
  assert.is(decodeChallenge(chBytes, 0, chBytes.length).toString('hex'), f['nonce']);
  assert.throws(() => decodeChallenge(Buffer.from('0000000308008100', 'hex'), 0, 8), RangeError);
  // The frame decoder knows type 0x08 and takes the vector whole, fed byte by byte.
  const seen: string[] = [];
  const d = new Decoder({ preamble: () => undefined, frame: (b, s0, e) => seen.push(b.subarray(s0, e).toString('hex')) }, { maxFrame: 4096, preamble: false });
  for (const byte of chBytes) d.push(Buffer.of(byte));
  assert.equal(seen, [ch.hex]);
});

test('stableId needs a key pair', async () => {
  const err = await connect({ stableId: true }).catch((e: PosternError) => e);
  assert.is((err as PosternError).code, ErrorCode.INVALID_OPTION);
});

test.run();
