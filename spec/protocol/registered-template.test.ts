import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ControlCodec, type RegisteredBody } from '../../src/protocol/control.js';
import { RegisteredTemplate } from '../../src/protocol/registered-template.js';
import { prng } from '../helpers/random.js';

/** Random bytes from a seeded PRNG, so a failure replays. */
function bytes(rnd: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

const SHAPES: Array<Omit<RegisteredBody, 'id' | 'resume'>> = [
  { router: 7, maxFrame: 1048576, keepalive: 30000, timeout: 45000, resumeGrace: 30000 },
  { router: 0xffffffff, maxFrame: 2048, keepalive: 1, timeout: 1, resumeGrace: 1 },
  { router: 9, maxFrame: 1048576, keepalive: 60000, timeout: 90000, resumeGrace: 86_400_000, alternates: ['tcp://a:1', 'tls://b.example:7447'] },
  { router: 9, maxFrame: 1048576, keepalive: 60000, timeout: 90000, alternates: [] },
];

test('templated REGISTERED: the same bytes as the reference encoder, as one buffer, for every ID and token', () => {
  const rnd = prng(0x7e3);
  // One codec through every shape, so each change of the fixed fields rebuilds the template.
  const codec = new ControlCodec();
  for (const shape of [...SHAPES, ...SHAPES]) {
    for (let i = 0; i < 50; i++) {
      const id = bytes(rnd, 16);
      id.writeUInt32BE(shape.router, 0);
      const body: RegisteredBody = { ...shape, id, resume: bytes(rnd, i % 2 === 0 ? 32 : 16 + (i % 49)) };
      const fast = codec.encodeRegistered(body);
      const plain = Buffer.concat(codec.encodeRegisteredPlain(body));
      assert.is(fast.length, 1, 'one buffer, one write');
      assert.equal(fast[0], plain);
      // The frame decodes to what was asked.
      const back = codec.decodeRegistered(plain, 0, plain.length);
      assert.equal(Buffer.from(back.id), body.id);
      assert.equal(Buffer.from(back.resume!), body.resume);
    }
  }
});

test('templated REGISTERED: frames handed out earlier are not changed by later ones', () => {
  const codec = new ControlCodec();
  const shape = SHAPES[0]!;
  const a = { ...shape, id: Buffer.alloc(16, 1), resume: Buffer.alloc(32, 2) };
  const first = codec.encodeRegistered(a)[0]!;
  const copy = Buffer.from(first);
  codec.encodeRegistered({ ...shape, id: Buffer.alloc(16, 3), resume: Buffer.alloc(32, 4) });
  assert.equal(first, copy);
});

test('anonymous, resumed and token-less REGISTERED are packed as before, not from the template', () => {
  let calls = 0;
  const codec = new ControlCodec();
  const t = new RegisteredTemplate((b) => {
    calls++;
    return codec.encodeRegisteredPlain(b);
  });
  const shape = SHAPES[0]!;
  assert.is(t.encode({ ...shape, id: Buffer.alloc(16), anonymous: true, resume: Buffer.alloc(32) }), null);
  assert.is(t.encode({ ...shape, id: Buffer.alloc(16, 1), resumed: true, resume: Buffer.alloc(32) }), null);
  assert.is(t.encode({ ...shape, id: Buffer.alloc(16, 1) }), null);
  assert.is(calls, 0);
  // The common shape: built once (two reference encodings: the template and its check), then reused.
  for (let i = 0; i < 5; i++) assert.ok(t.encode({ ...shape, id: Buffer.alloc(16, i), resume: Buffer.alloc(32, i) }));
  assert.is(calls, 2);
  const c = new ControlCodec();
  for (const body of [
    { ...shape, id: Buffer.alloc(16), anonymous: true },
    { ...shape, id: Buffer.alloc(16, 5), resumed: true, resume: Buffer.alloc(32, 6) },
  ]) {
    assert.equal(Buffer.concat(c.encodeRegistered(body)), Buffer.concat(c.encodeRegisteredPlain(body)));
  }
});

test('a reference whose bytes the template cannot reproduce disables it (the reference is used)', () => {
  const codec = new ControlCodec();
  // A "reference" that writes a counter into the frame: patching ID and token cannot match it.
  let n = 0;
  const t = new RegisteredTemplate((b) => {
    const f = Buffer.concat(codec.encodeRegisteredPlain(b));
    f[f.length - 1] = n++;
    return [f];
  });
  const shape = SHAPES[0]!;
  assert.is(t.encode({ ...shape, id: Buffer.alloc(16, 1), resume: Buffer.alloc(32, 2) }), null);
  // Not retried for the same shape.
  assert.is(t.encode({ ...shape, id: Buffer.alloc(16, 3), resume: Buffer.alloc(32, 4) }), null);
  assert.is(n, 2);
});

test.run();
