/**
 * Micro-benchmark of the sealed envelope (src/crypto): seal and open per second, next to a
 * plain copy of the same bytes (the floor any envelope costs) and tweetnacl's own
 * `box` (its pure-JS X25519, which src/crypto/x25519.ts replaces with node:crypto).
 *
 * Run: `npx tsc -p . && node dist/benchmarks/seal.js [--ms 150] [--sizes 64,1024,65536] [--json-only]`.
 * Bounded: a 0.4 s warm-up, then every cell runs for `--ms` (default 150 ms) after its own
 * short warm-up: about 6 s in all with the defaults.
 * Prints a table, then one JSON line (`{"bench":"seal",...}`) for scripts.
 *
 * How to read it: the per-message cost of seal/open is dominated by X25519: sealing makes
 * a fresh ephemeral key (1 fixed-base multiplication with sodium-native; the portable path
 * imports it into OpenSSL and multiplies twice) and agrees with the recipient (1), opening
 * agrees once; the box key between two static keys (the sender proof) is cached per pair,
 * so in a steady conversation a sender adds no multiplication, only a second
 * XSalsa20-Poly1305 pass over the content on each side (spec/crypto/backend.test.ts counts
 * the native calls). So ops/s is nearly flat up to a few KiB, and MB/s only matters for
 * large messages, where XSalsa20-Poly1305 takes over (tweetnacl's about 50 MB/s, libsodium's
 * over 1 GB/s).
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import nacl from 'tweetnacl';
import { generateKeyPair } from '../src/crypto/keys.js';
import { open, seal } from '../src/crypto/seal.js';
import { openBox, sealBox } from '../src/crypto/sealed-box.js';

const { values: flags } = parseArgs({
  options: {
    ms: { type: 'string', default: '150' },
    sizes: { type: 'string', default: '64,1024,65536' },
    'json-only': { type: 'boolean', default: false },
  },
});
const cellMs = Math.min(Math.max(Number(flags.ms) || 150, 20), 2000);
const sizes = flags.sizes!.split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 0 && n <= 1 << 20).slice(0, 6);

interface Row {
  op: string;
  size: number;
  opsPerSec: number;
  mbPerSec: number;
  usPerOp: number;
}

let sink = 0; // keeps results alive so nothing is optimised away

/** Runs `fn` repeatedly for `cellMs` (after a warm-up of a fifth of that) and reports the rate. */
function measure(op: string, size: number, fn: () => Uint8Array): Row {
  const warmEnd = performance.now() + cellMs / 5;
  while (performance.now() < warmEnd) sink ^= fn().length;
  let n = 0;
  const start = performance.now();
  const end = start + cellMs;
  let now = start;
  // Check the clock every few calls: a 64-byte copy is faster than performance.now().
  while (now < end) {
    for (let i = 0; i < 8; i++) sink ^= fn().length;
    n += 8;
    now = performance.now();
  }
  const secs = (now - start) / 1000;
  return { op, size, opsPerSec: n / secs, mbPerSec: (n * size) / secs / 1e6, usPerOp: (secs * 1e6) / n };
}

const recipient = generateKeyPair();
const sender = { id: '0000000100112233445566778899aabb', keyPair: generateKeyPair() };
const senderTweet = nacl.box.keyPair();
const rows: Row[] = [];

// One pass over every operation before any timing, so the first cells do not pay for the
// JIT and for OpenSSL's first-use setup (that alone halved the first rows' rates).
{
  const c = nacl.randomBytes(256);
  const warmEnd = performance.now() + 400;
  while (performance.now() < warmEnd) {
    const a = seal({ content: c, recipientPublicKey: recipient.publicKey, sender, pad: true });
    sink ^= open(a, recipient).content.length;
    sink ^= openBox(sealBox(c, recipient.publicKey), recipient.publicKey, recipient.secretKey).length;
    sink ^= open(seal({ content: c, recipientPublicKey: recipient.publicKey }), recipient).content.length;
  }
}

for (const size of sizes) {
  const content = nacl.randomBytes(size);
  const anon = seal({ content, recipientPublicKey: recipient.publicKey });
  const signed = seal({ content, recipientPublicKey: recipient.publicKey, sender });
  const box = sealBox(content, recipient.publicKey);
  const nonce = nacl.randomBytes(24);
  rows.push(measure('copy (Uint8Array.slice)', size, () => content.slice()));
  rows.push(measure('sealBox (crypto_box_seal)', size, () => sealBox(content, recipient.publicKey)));
  rows.push(measure('openBox', size, () => openBox(box, recipient.publicKey, recipient.secretKey)));
  rows.push(measure('seal anonymous', size, () => seal({ content, recipientPublicKey: recipient.publicKey })));
  rows.push(measure('open anonymous', size, () => open(anon, recipient).content));
  rows.push(measure('seal with sender', size, () => seal({ content, recipientPublicKey: recipient.publicKey, sender })));
  rows.push(measure('open with sender', size, () => open(signed, recipient).content));
  rows.push(measure('seal+open anonymous', size, () => open(seal({ content, recipientPublicKey: recipient.publicKey }), recipient).content));
  rows.push(measure('seal+open with sender', size, () => open(seal({ content, recipientPublicKey: recipient.publicKey, sender }), recipient).content));
  rows.push(measure('seal with sender, padded', size, () => seal({ content, recipientPublicKey: recipient.publicKey, sender, pad: true })));
  rows.push(measure('tweetnacl box (pure-JS X25519)', size, () => nacl.box(content, nonce, recipient.publicKey, senderTweet.secretKey)));
}

if (!flags['json-only']) {
  const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const header = ['op', 'bytes', 'ops/s', 'MB/s', 'µs/op'];
  const table = rows.map((r) => [r.op, String(r.size), fmt(r.opsPerSec), fmt(r.mbPerSec, 1), fmt(r.usPerOp, 1)]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`seal/open, node ${process.version}, ${cpus()[0]?.model ?? 'cpu'}; ${cellMs} ms per cell`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const t of table) console.log(line(t));
}
const round = (x: number): number => Math.round(x * 10) / 10;
console.log(
  JSON.stringify({
    bench: 'seal',
    node: process.version,
    cellMs,
    rows: rows.map((r) => ({ ...r, opsPerSec: round(r.opsPerSec), mbPerSec: round(r.mbPerSec), usPerOp: round(r.usPerOp) })),
    sink: sink & 1,
  }),
);
