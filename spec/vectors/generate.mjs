#!/usr/bin/env node
/**
 * Builds the protocol test vectors by hand, from the field layout in PROTOCOL.md and
 * without importing anything from src/, so the vectors check the codec instead of echoing
 * it. Writes spec/vectors/frames.json and rewrites the generated blocks of PROTOCOL.md
 * Appendix B and C. Run from the repo root: `node spec/vectors/generate.mjs`; `--check` exits 1
 * instead of writing when either file would change.
 */
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stableVectors, streamVectors } from './streams.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const check = process.argv.includes('--check');

// ---- byte helpers (deliberately naive) ----
const u8 = (n) => n.toString(16).padStart(2, '0');
const u16 = (n) => n.toString(16).padStart(4, '0');
const u32 = (n) => n.toString(16).padStart(8, '0');
const u64 = (n) => n.toString(16).padStart(16, '0');
const ascii = (s) => Buffer.from(s, 'utf8').toString('hex');
const bytes = (hex) => hex.replace(/\s+/g, '').length / 2;
const clean = (hex) => hex.replace(/\s+/g, '');

/** Header line: length counts type + flags + body. */
const header = (type, flags, bodyHex) => `${u32(2 + bytes(bodyHex))} ${u8(type)} ${u8(flags)}`;

// MessagePack, only the forms the vectors need, written out by hand.
const mpStr = (s) => {
  const n = Buffer.byteLength(s);
  if (n > 31) throw new Error('fixstr only');
  return u8(0xa0 | n) + ascii(s);
};
const mpBin = (hex) => `c4${u8(bytes(hex))} ${clean(hex)}`;
const mpUint = (n) => (n < 0x80 ? u8(n) : n < 0x100 ? `cc${u8(n)}` : n < 0x10000 ? `cd${u16(n)}` : `ce${u32(n)}`);
const mpUint64 = (n) => `cf${u64(n)}`;
/** A fixmap from [key, valueHex] pairs, in the given order. */
const mpMap = (pairs) => [u8(0x80 | pairs.length), ...pairs.map(([k, v]) => `${mpStr(k)} ${v}`)].join('\n');

const ROUTER = 7;
const ID = {
  A: `${u32(ROUTER)}${'aa'.repeat(12)}`,
  B: `${u32(ROUTER)}${'bb'.repeat(12)}`,
  C: `${u32(ROUTER)}${'cc'.repeat(12)}`,
  zero: '00'.repeat(16),
};
const MAGIC = '89505354 4e0d0a';
const MAX_FRAME = 1048576;

const T = {
  REGISTER: 1, REGISTERED: 2, ERROR: 3, CLOSE: 4, PING: 5, PONG: 6, SEND: 0x10, DELIVER: 0x11,
  LOOKUP: 0x12, LOOKUP_RESULT: 0x13, DRAIN: 0x07,
  LINK_HELLO: 0x20, LINK_CHALLENGE: 0x21, LINK_AUTH: 0x22, LINK_READY: 0x23, SOURCE: 0x24, ROUTE_ERROR: 0x25,
};
const TYPE_NAMES = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]));
const WIRE = {
  NORMAL: 0, UNKNOWN_DESTINATION: 1, NOT_REGISTERED: 2, ALREADY_REGISTERED: 3, UNSUPPORTED_FLAGS: 4,
  DESTINATION_SLOW: 5, BAD_MAGIC: 64, UNSUPPORTED_VERSION: 65, MALFORMED: 66, FRAME_TOO_LARGE: 67,
  UNKNOWN_FRAME: 68, KEEPALIVE_TIMEOUT: 69, SLOW_CONSUMER: 70, HANDSHAKE_TIMEOUT: 71, GOING_AWAY: 72,
  UNREACHABLE_ROUTER: 18, HOP_LIMIT: 20, MESSAGE_TOO_LARGE: 6, NO_KEY: 7, NOT_DELIVERED: 8, RATE_LIMITED: 16,
  TOO_MANY_CONNECTIONS: 74, ADMISSION_DENIED: 77,
};

/** @type {any[]} */
const vectors = [];
const common = (type, flags, bodyHex) => ({
  type: TYPE_NAMES[type],
  typeCode: type,
  flags,
  length: 2 + bytes(bodyHex),
  size: 6 + bytes(bodyHex),
});
/** Adds a frame vector; `lines` are the body's field groups. */
function frame(name, description, type, flags, lines, fields, extra = {}) {
  const body = lines.join(' ');
  vectors.push({
    name,
    kind: 'frame',
    description,
    ...extra,
    lines: [header(type, flags, body), ...lines.filter((l) => l.length > 0)],
    decoded: { ...common(type, flags, body), ...fields },
  });
}

// ---- preambles ----
vectors.push({
  name: 'preamble-v1',
  kind: 'preamble',
  description: 'The preamble both sides send first: magic 89 "PSTN" CR LF, version 1 (§2.1).',
  lines: [MAGIC, '01'],
  decoded: { magic: clean(MAGIC), version: 1 },
});
vectors.push({
  name: 'preamble-v2',
  kind: 'preamble',
  description: 'An agent offering version 2; a version-1 router answers with preamble-v1 (§2.3). The decoder reports the version unchecked.',
  lines: [MAGIC, '02'],
  decoded: { magic: clean(MAGIC), version: 2 },
});

// ---- registration ----
frame('register-empty', 'REGISTER with the empty map, the usual v1 body (§4.1).', T.REGISTER, 0, ['80'], { body: {} });
frame(
  'register-unknown-key',
  'REGISTER with a key v1 does not define; the router ignores it (§4.1).',
  T.REGISTER,
  0,
  [mpMap([['agent', mpStr('postern-js/0.1')]])],
  { body: { agent: 'postern-js/0.1' } },
);
const registeredBody = (id, router, maxFrame, keepalive, timeout, uint = mpUint) =>
  mpMap([
    ['id', mpBin(id)],
    ['router', uint(router)],
    ['maxFrame', uint(maxFrame)],
    ['keepalive', uint(keepalive)],
    ['timeout', uint(timeout)],
  ]);
frame(
  'registered-a',
  'REGISTERED giving agent A its ID with the five keys every REGISTERED carries, at their defaults (maxFrame 1 MiB, keepalive 30 s, timeout 45 s), as a router with resume disabled sends it; a default router also sends resume and resumeGrace (§12.3, registered-resumable) (§4.2).',
  T.REGISTERED,
  0,
  [registeredBody(ID.A, ROUTER, MAX_FRAME, 30000, 45000)],
  { body: { id: ID.A, router: ROUTER, maxFrame: MAX_FRAME, keepalive: 30000, timeout: 45000 } },
);
frame(
  'registered-small',
  'REGISTERED for agent B with the smallest maxFrame (1050) and a 5 ms keepalive: other integer widths (§4.2).',
  T.REGISTERED,
  0,
  [registeredBody(ID.B, ROUTER, 1050, 5, 7)],
  { body: { id: ID.B, router: ROUTER, maxFrame: 1050, keepalive: 5, timeout: 7 } },
);
frame(
  'registered-uint64',
  'REGISTERED with every integer written as uint64; receivers accept any integer width (§4.2). Not what this implementation writes.',
  T.REGISTERED,
  0,
  [registeredBody(ID.A, ROUTER, MAX_FRAME, 30000, 45000, mpUint64)],
  { body: { id: ID.A, router: ROUTER, maxFrame: MAX_FRAME, keepalive: 30000, timeout: 45000 } },
  { canonical: false },
);

// ---- errors ----
const errorFrame = (name, description, code, seq, id, text) =>
  frame(name, description, T.ERROR, 0, [u16(code), u32(seq), id, ascii(text)], { code, seq, id, text });
errorFrame('error-unknown-destination', 'ERROR for SEND seq 3 to C, which is not registered (§6.4).', WIRE.UNKNOWN_DESTINATION, 3, ID.C, 'no such agent');
errorFrame('error-not-registered', 'ERROR for SEND seq 1 sent before REGISTERED (§4.3).', WIRE.NOT_REGISTERED, 1, ID.B, '');
errorFrame('error-already-registered', 'ERROR for a second REGISTER: seq 0, zero ID (§4.4).', WIRE.ALREADY_REGISTERED, 0, ID.zero, '');
errorFrame('error-unsupported-flags', 'ERROR for SEND seq 4 that had a flag bit set (§6.4).', WIRE.UNSUPPORTED_FLAGS, 4, ID.B, '');
errorFrame('error-destination-slow', 'ERROR for SEND seq 5 held back while B was closed as a slow consumer (§9.3).', WIRE.DESTINATION_SLOW, 5, ID.B, '');

// ---- close ----
const closeFrame = (name, description, code, reason) =>
  frame(name, description, T.CLOSE, 0, [u16(code), ascii(reason)], { code, reason });
closeFrame('close-normal', 'CLOSE with code 0 and no reason (§9.1).', WIRE.NORMAL, '');
closeFrame('close-going-away', 'CLOSE sent by a router that shuts down (§9.2).', WIRE.GOING_AWAY, 'router shutting down');
closeFrame('close-bad-magic', 'CLOSE a router sends after its preamble to a peer with a wrong magic (§2.2).', WIRE.BAD_MAGIC, '');
closeFrame('close-keepalive-timeout', 'CLOSE after `timeout` ms of silence (§8.2).', WIRE.KEEPALIVE_TIMEOUT, '');

// ---- keepalive ----
const ping8 = '00 01 02 03 04 05 06 07'.replace(/ /g, '');
const ping64 = Array.from({ length: 64 }, (_, i) => u8(i)).join('');
frame('ping-empty', 'PING with no payload (§8.1).', T.PING, 0, [''], { payload: '' });
frame('ping-8', 'PING with an 8-byte payload (§8.1).', T.PING, 0, [ping8], { payload: ping8 });
frame('ping-64', 'PING with the longest payload, 64 bytes: total 70 (§8.1).', T.PING, 0, [ping64], { payload: ping64 });
frame('pong-8', 'PONG echoing ping-8 (§8.1).', T.PONG, 0, [ping8], { payload: ping8 });
frame('pong-empty', 'PONG echoing ping-empty (§8.1).', T.PONG, 0, [''], { payload: '' });

// ---- relay ----
const hello = ascii('hello');
frame('send-hello', 'SEND of "hello" to B with seq 1 (§6.2).', T.SEND, 0, [ID.B, u32(1), hello], { id: ID.B, seq: 1, payload: hello });
frame('send-empty', 'SEND of an empty payload to B with seq 2 (§6.2).', T.SEND, 0, [ID.B, u32(2), ''], { id: ID.B, seq: 2, payload: '' });
frame('send-max-seq', 'SEND to A (itself) with seq 2^32-1 (§6.2).', T.SEND, 0, [ID.A, u32(0xffffffff), ascii('x')], { id: ID.A, seq: 0xffffffff, payload: ascii('x') });
frame(
  'send-flag-set',
  'SEND with flag bit 0x80, which no version defines: valid framing, but the router answers ERROR(UNSUPPORTED_FLAGS) and does not relay it (§3.4, §6.4).',
  T.SEND,
  0x80,
  [ID.B, u32(4), hello],
  { id: ID.B, seq: 4, payload: hello },
);
frame('deliver-hello', 'DELIVER of send-hello to B: sender A, seq 0, same payload and length (§6.3, §6.4).', T.DELIVER, 0, [ID.A, u32(0), hello], { id: ID.A, seq: 0, payload: hello });
frame('deliver-empty', 'DELIVER of send-empty (§6.3).', T.DELIVER, 0, [ID.A, u32(0), ''], { id: ID.A, seq: 0, payload: '' });

// ---- anonymous senders and the key directory (§11) ----
const KEY_B = '5b'.repeat(32);
const H = `${u32(ROUTER)}${'e1'.repeat(12)}`;
frame('register-anonymous', 'REGISTER of an anonymous connection (§11.1).', T.REGISTER, 0, [mpMap([['anonymous', 'c3']])], { body: { anonymous: true } });
frame('register-key', 'REGISTER publishing the X25519 public key 32 x 0x5b in the key directory (§11.1, §11.4).', T.REGISTER, 0, [mpMap([['key', mpBin(KEY_B)]])], {
  body: { key: KEY_B },
});
frame(
  'registered-anonymous',
  'REGISTERED for an anonymous connection: the zero ID, then anonymous: true (§11.1).',
  T.REGISTERED,
  0,
  [
    mpMap([
      ['id', mpBin(ID.zero)],
      ['router', mpUint(ROUTER)],
      ['maxFrame', mpUint(MAX_FRAME)],
      ['keepalive', mpUint(30000)],
      ['timeout', mpUint(45000)],
      ['anonymous', 'c3'],
    ]),
  ],
  { body: { id: ID.zero, router: ROUTER, maxFrame: MAX_FRAME, keepalive: 30000, timeout: 45000, anonymous: true } },
);
frame('send-anonymous', 'SEND of "hello" to B with seq 6 under a fresh reply handle: flags ANONYMOUS (§11.2).', T.SEND, 0x01, [ID.B, u32(6), hello], { id: ID.B, seq: 6, payload: hello });
frame(
  'send-anonymous-sticky-sealed',
  'SEND to B with seq 7, flags ANONYMOUS | STICKY | SEALED: the sticky handle, payload a sealed envelope (§11.2).',
  T.SEND,
  0x07,
  [ID.B, u32(7), hello],
  { id: ID.B, seq: 7, payload: hello },
);
frame(
  'deliver-anonymous',
  `DELIVER of send-anonymous: the ID field is reply handle ${H}, flags ANONYMOUS (§11.2).`,
  T.DELIVER,
  0x01,
  [H, u32(0), hello],
  { id: H, seq: 0, payload: hello },
);
frame('deliver-sealed', 'DELIVER from A with flags SEALED, as sent (§11.2).', T.DELIVER, 0x04, [ID.A, u32(0), hello], { id: ID.A, seq: 0, payload: hello });
frame('source-anonymous', 'SOURCE on a link for one anonymous SEND: handle H, 1 link, flags ANONYMOUS (§11.2).', T.SOURCE, 0x01, [H, u8(1), '000000'], { id: H, hops: 1 });
frame('lookup', 'LOOKUP of B\'s key with ref 1 (§11.4).', T.LOOKUP, 0, [mpMap([['ref', mpUint(1)], ['id', mpBin(ID.B)]])], { body: { ref: 1, id: ID.B } });
frame(
  'lookup-result',
  'LOOKUP_RESULT for ref 1: B registered key 32 x 0x5b (§11.4).',
  T.LOOKUP_RESULT,
  0,
  [mpMap([['ref', mpUint(1)], ['id', mpBin(ID.B)], ['key', mpBin(KEY_B)]])],
  { body: { ref: 1, id: ID.B, key: KEY_B } },
);
errorFrame('error-no-key', 'ERROR for LOOKUP ref 2 of B when B registered no key (§11.4).', WIRE.NO_KEY, 2, ID.B, '');

// ---- drain and resume (§12) ----
const TOKEN = '7e'.repeat(32);
frame(
  'drain',
  'DRAIN: reconnect within 0..1000 ms to 10.0.0.2:7447, the router closes what is left after 10 s (§12.1).',
  T.DRAIN,
  0,
  [mpMap([['after', mpUint(1000)], ['grace', mpUint(10000)], ['alternates', `91 ${mpStr('10.0.0.2:7447')}`]])],
  { body: { after: 1000, grace: 10000, alternates: ['10.0.0.2:7447'] } },
);
frame('drain-here', 'DRAIN with no alternates: come back to the same address (§12.1).', T.DRAIN, 0, [mpMap([['after', mpUint(0)], ['grace', mpUint(5000)], ['alternates', '90']])], {
  body: { after: 0, grace: 5000, alternates: [] },
});
frame(
  'registered-resumable',
  'REGISTERED for A with resume enabled: token 32 x 0x7e, grace 30 s (§12.3).',
  T.REGISTERED,
  0,
  [
    mpMap([
      ['id', mpBin(ID.A)],
      ['router', mpUint(ROUTER)],
      ['maxFrame', mpUint(MAX_FRAME)],
      ['keepalive', mpUint(30000)],
      ['timeout', mpUint(45000)],
      ['resume', mpBin(TOKEN)],
      ['resumeGrace', mpUint(30000)],
    ]),
  ],
  { body: { id: ID.A, router: ROUTER, maxFrame: MAX_FRAME, keepalive: 30000, timeout: 45000, resume: TOKEN, resumeGrace: 30000 } },
);
frame('register-resume', 'REGISTER asking to take A back with its token (§12.3).', T.REGISTER, 0, [mpMap([['id', mpBin(ID.A)], ['resume', mpBin(TOKEN)]])], {
  body: { id: ID.A, resume: TOKEN },
});
frame(
  'registered-resumed',
  'REGISTERED granting the resume: the same ID, a token, resumed: true (§12.3).',
  T.REGISTERED,
  0,
  [
    mpMap([
      ['id', mpBin(ID.A)],
      ['router', mpUint(ROUTER)],
      ['maxFrame', mpUint(MAX_FRAME)],
      ['keepalive', mpUint(30000)],
      ['timeout', mpUint(45000)],
      ['resume', mpBin(TOKEN)],
      ['resumeGrace', mpUint(30000)],
      ['resumed', 'c3'],
    ]),
  ],
  { body: { id: ID.A, router: ROUTER, maxFrame: MAX_FRAME, keepalive: 30000, timeout: 45000, resume: TOKEN, resumeGrace: 30000, resumed: true } },
);
frame(
  'registered-alternates',
  'REGISTERED for A announcing two alternates to fail over to (§13.7).',
  T.REGISTERED,
  0,
  [
    mpMap([
      ['id', mpBin(ID.A)],
      ['router', mpUint(ROUTER)],
      ['maxFrame', mpUint(MAX_FRAME)],
      ['keepalive', mpUint(30000)],
      ['timeout', mpUint(45000)],
      ['alternates', `92 ${mpStr('tls://r2.example.com:443')} ${mpStr('10.0.0.3:7447')}`],
    ]),
  ],
  { body: { id: ID.A, router: ROUTER, maxFrame: MAX_FRAME, keepalive: 30000, timeout: 45000, alternates: ['tls://r2.example.com:443', '10.0.0.3:7447'] } },
);
errorFrame('error-not-delivered', 'ERROR for SEND seq 9 to B, held while B was parked, when B did not resume in time (§12.4).', WIRE.NOT_DELIVERED, 9, ID.B, '');

frame('register-token', 'REGISTER with the admission token "admit-me-please" (§12.7).', T.REGISTER, 0, [mpMap([['token', mpStr('admit-me-please')]])], {
  body: { token: 'admit-me-please' },
});
errorFrame('error-rate-limited', 'ERROR for a REGISTER over the per-address registration rate: seq 0, zero ID (§12.6).', WIRE.RATE_LIMITED, 0, ID.zero, '');
closeFrame('close-too-many-connections', 'CLOSE after the router\'s preamble, nothing read: connection limit reached (§12.5).', WIRE.TOO_MANY_CONNECTIONS, 'connection limit reached');
closeFrame('close-admission-denied', 'CLOSE for a REGISTER without a valid admission token (§12.7).', WIRE.ADMISSION_DENIED, '');

// ---- router links (§10) ----
const MESH = { secret: 'postern test mesh secret', dialer: ROUTER, acceptor: 9 };
const nD = '11'.repeat(32);
const nA = '22'.repeat(32);
const hmac = (label, ...hexes) => {
  const h = createHmac('sha256', Buffer.from(MESH.secret, 'utf8')).update(Buffer.from(label, 'ascii'));
  for (const x of hexes) h.update(Buffer.from(x, 'hex'));
  return h.digest('hex');
};
const pA = hmac('postern link v1 accept', nD, nA, u32(MESH.dialer), u32(MESH.acceptor));
const pD = hmac('postern link v1 dial', nA, nD, u32(MESH.acceptor), u32(MESH.dialer));
frame(
  'link-hello',
  `LINK_HELLO from dialer router 7 with nonce nD = 32 x 0x11 (§10.2).`,
  T.LINK_HELLO,
  0,
  [mpMap([['router', mpUint(MESH.dialer)], ['nonce', mpBin(nD)], ['maxFrame', mpUint(MAX_FRAME)]])],
  { body: { router: MESH.dialer, nonce: nD, maxFrame: MAX_FRAME } },
);
frame(
  'link-challenge',
  `LINK_CHALLENGE from acceptor router 9 with nonce nA = 32 x 0x22 and proof pA = HMAC-SHA256("${MESH.secret}", "postern link v1 accept" || nD || nA || u32(7) || u32(9)) (§10.2).`,
  T.LINK_CHALLENGE,
  0,
  [mpMap([['router', mpUint(MESH.acceptor)], ['nonce', mpBin(nA)], ['proof', mpBin(pA)], ['maxFrame', mpUint(MAX_FRAME)]])],
  { body: { router: MESH.acceptor, nonce: nA, proof: pA, maxFrame: MAX_FRAME } },
);
const instD = '33'.repeat(16);
frame(
  'link-hello-instance',
  `LINK_HELLO from dialer router 7 with nonce nD and its instance tag = 16 x 0x33 (§10.1, §10.3).`,
  T.LINK_HELLO,
  0,
  [mpMap([['router', mpUint(MESH.dialer)], ['nonce', mpBin(nD)], ['maxFrame', mpUint(MAX_FRAME)], ['instance', mpBin(instD)]])],
  { body: { router: MESH.dialer, nonce: nD, maxFrame: MAX_FRAME, instance: instD } },
);
frame(
  'link-auth',
  `LINK_AUTH from the dialer: pD = HMAC-SHA256("${MESH.secret}", "postern link v1 dial" || nA || nD || u32(9) || u32(7)) (§10.2).`,
  T.LINK_AUTH,
  0,
  [mpMap([['proof', mpBin(pD)]])],
  { body: { proof: pD } },
);
frame('link-ready', 'LINK_READY from the acceptor: the link is up (§10.2).', T.LINK_READY, 0, ['80'], { body: {} });
frame(
  'source-a-1',
  'SOURCE on a link: the SENDs that follow are from A and have crossed 1 link (§10.4).',
  T.SOURCE,
  0,
  [ID.A, u8(1), '000000'],
  { id: ID.A, hops: 1 },
);
const D9 = `${u32(9)}${'dd'.repeat(12)}`;
frame(
  'route-error-unknown-destination',
  'ROUTE_ERROR from router 9: A\'s SEND seq 3 to 00000009dddd… found no such agent there (§10.5).',
  T.ROUTE_ERROR,
  0,
  [u16(WIRE.UNKNOWN_DESTINATION), u32(3), D9, ID.A, ascii('no such agent')],
  { code: WIRE.UNKNOWN_DESTINATION, seq: 3, id: D9, src: ID.A, text: 'no such agent' },
);
frame(
  'route-error-hop-limit',
  'ROUTE_ERROR for SEND seq 4 of A that would have crossed a third link (§10.4, §10.5).',
  T.ROUTE_ERROR,
  0,
  [u16(WIRE.HOP_LIMIT), u32(4), D9, ID.A, ''],
  { code: WIRE.HOP_LIMIT, seq: 4, id: D9, src: ID.A, text: '' },
);

// ---- optional types ----
vectors.push({
  name: 'skip-optional-0x80',
  kind: 'skip',
  description: 'Unknown optional type 0x80 with a 3-byte body: a receiver skips it (§3.2).',
  lines: [header(0x80, 0, '010203'), '010203'],
  decoded: { typeCode: 0x80, flags: 0, length: 5, size: 9 },
});
vectors.push({
  name: 'skip-optional-0xff-flags',
  kind: 'skip',
  description: 'Unknown optional type 0xff, empty body, flags 0xff: skipped (§3.2, §3.4).',
  lines: [header(0xff, 0xff, '')],
  decoded: { typeCode: 0xff, flags: 0xff, length: 2, size: 6 },
});

// ---- invalid framing ----
function invalid(name, description, lines, error, failsAfter, decoder = {}) {
  vectors.push({
    name,
    kind: 'invalid',
    description,
    lines,
    decoder: { preamble: false, maxFrame: MAX_FRAME, ...decoder },
    expect: { error: `POSTERN_ERR_${error}`, wireCode: WIRE[error], failsAfter },
  });
}
const pre = { preamble: true };
invalid('bad-magic-http', 'An HTTP request where a preamble belongs: fails on byte 0 (§2.2).', [ascii('GET / HTTP/1.1\r\n')], 'BAD_MAGIC', 1, pre);
invalid('bad-magic-tls', 'A TLS ClientHello record header: fails on byte 0 (§2.2).', ['16 03 01 00 a5 01 00 00'], 'BAD_MAGIC', 1, pre);
invalid('bad-magic-png', 'The PNG signature shares the first two bytes: fails on byte 2 (§2.2).', ['89 50 4e 47 0d 0a 1a 0a'], 'BAD_MAGIC', 3, pre);
invalid('bad-magic-lf', 'The magic with CR LF turned into LF LF: fails on byte 5 (§2.2).', ['89 50 53 54 4e 0a 0a 01'], 'BAD_MAGIC', 6, pre);
invalid('length-zero', 'length 0: shorter than type and flags (§3.3 step 1).', ['00000000 05 00'], 'MALFORMED', 6);
invalid('length-one', 'length 1 (§3.3 step 1).', ['00000001 05 00'], 'MALFORMED', 6);
invalid('too-large-1gib', 'A SEND header declaring 1 GiB: fails on its header, before any body is buffered (§3.3 step 2).', ['40000000 10 00'], 'FRAME_TOO_LARGE', 6);
invalid('too-large-by-one', 'A SEND of total size maxFrame + 1 = 1048577 (§3.3 step 2).', [`${u32(MAX_FRAME + 1 - 4)} 10 00`], 'FRAME_TOO_LARGE', 6);
invalid('too-large-max-u32', 'length 2^32-1 (§3.3 step 2).', ['ffffffff 10 00'], 'FRAME_TOO_LARGE', 6);
invalid('too-large-before-register', 'A REGISTER of total size 4097 while the limit is 4096 (§4.1).', [`${u32(4097 - 4)} 01 00`], 'FRAME_TOO_LARGE', 6, { maxFrame: 4096 });
invalid('too-large-optional', 'An unknown optional type is skipped only within the size limit (§3.2, §3.3 step 2).', ['40000000 80 00'], 'FRAME_TOO_LARGE', 6);
invalid('unknown-critical-0x00', 'Type 0x00 is never assigned and critical (§3.2).', ['00000002 00 00'], 'UNKNOWN_FRAME', 6);
invalid('unknown-critical-0x5a', 'Unassigned critical type 0x5a (§3.2).', ['00000003 5a 00', '00'], 'UNKNOWN_FRAME', 6);
invalid('unknown-critical-0x7f', 'Unassigned critical type 0x7f, the last critical value (§3.2).', ['00000002 7f 00'], 'UNKNOWN_FRAME', 6);
invalid('register-too-short', 'REGISTER without a body: total 6 < 7 (§3.3 step 4).', ['00000002 01 00'], 'MALFORMED', 6);
invalid('registered-too-short', 'REGISTERED without a body (§3.3 step 4).', ['00000002 02 00'], 'MALFORMED', 6);
invalid('error-too-short', 'ERROR of total 27 < 28 (§3.3 step 4).', ['00000017 03 00'], 'MALFORMED', 6);
invalid('close-too-short', 'CLOSE with only one code byte: total 7 < 8 (§3.3 step 4).', ['00000003 04 00', '00'], 'MALFORMED', 6);
invalid('send-too-short', 'SEND of total 25 < 26 (§3.3 step 4).', ['00000015 10 00'], 'MALFORMED', 6);
invalid('deliver-too-short', 'DELIVER of total 25 < 26 (§3.3 step 4).', ['00000015 11 00'], 'MALFORMED', 6);
invalid('ping-too-long', 'PING with a 65-byte payload: total 71 > 70 (§3.3 step 4, §8.1).', ['00000043 05 00'], 'MALFORMED', 6);
invalid('pong-too-long', 'PONG with a 65-byte payload (§3.3 step 4, §8.1).', ['00000043 06 00'], 'MALFORMED', 6);
invalid('lookup-too-long', 'LOOKUP of total 257 > 256 (§3.3 step 4, §11.4).', [`${u32(257 - 4)} 12 00`], 'MALFORMED', 6);
invalid('source-too-short', 'SOURCE of total 25 (§3.3 step 4, §10.1).', ['00000015 24 00'], 'MALFORMED', 6);
invalid('source-too-long', 'SOURCE of total 27: its size is fixed (§3.3 step 4, §10.1).', ['00000017 24 00'], 'MALFORMED', 6);
invalid('route-error-too-short', 'ROUTE_ERROR of total 43 < 44 (§3.3 step 4, §10.1).', ['00000027 25 00'], 'MALFORMED', 6);
invalid('link-hello-too-long', 'LINK_HELLO of total 4097 > 4096, even when maxFrame is 1 MiB (§3.3 step 4, §10.1).', [`${u32(4097 - 4)} 20 00`], 'MALFORMED', 6);

// ---- invalid bodies (framing is fine) ----
function invalidBody(name, description, type, bodyLines) {
  const body = bodyLines.join(' ');
  vectors.push({
    name,
    kind: 'invalid-body',
    description,
    lines: [header(type, 0, body), ...bodyLines],
    decoded: common(type, 0, body),
    expect: { error: 'POSTERN_ERR_MALFORMED', wireCode: WIRE.MALFORMED },
  });
}
invalidBody('register-not-a-map', 'REGISTER whose body is an empty array, not a map (§4.1).', T.REGISTER, ['90']);
invalidBody('register-bad-msgpack', 'REGISTER whose body is 0xc1, a byte MessagePack never uses (§4.1).', T.REGISTER, ['c1']);
invalidBody('register-trailing-bytes', 'REGISTER with bytes after the map (§4.1).', T.REGISTER, ['80', '00']);
invalidBody('register-truncated-map', 'REGISTER whose map announces one pair and ends (§4.1).', T.REGISTER, ['81']);
invalidBody('register-anonymous-not-bool', 'REGISTER with anonymous: 1; never a visible registration (§11.1).', T.REGISTER, [mpMap([['anonymous', '01']])]);
invalidBody('register-anonymous-with-key', 'REGISTER with anonymous: true and a key: an anonymous connection has no ID to publish a key under (§11.1).', T.REGISTER, [
  mpMap([['anonymous', 'c3'], ['key', mpBin(KEY_B)]]),
]);
invalidBody('register-non-string-key', 'REGISTER whose map has the integer key 1 (§4.1).', T.REGISTER, ['81', '01', 'c3']);
invalidBody('lookup-ref-zero', 'LOOKUP with ref 0, which an ERROR could not name (§7.1, §11.4).', T.LOOKUP, [mpMap([['ref', mpUint(0)], ['id', mpBin(ID.B)]])]);
invalidBody('registered-id-15-bytes', 'REGISTERED whose id is 15 bytes (§4.2).', T.REGISTERED, [
  mpMap([['id', mpBin(ID.A.slice(0, 30))], ['router', mpUint(7)], ['maxFrame', mpUint(MAX_FRAME)], ['keepalive', mpUint(30000)], ['timeout', mpUint(45000)]]),
]);
invalidBody('registered-id-is-string', 'REGISTERED whose id is the text form, not bin (§4.2).', T.REGISTERED, [
  mpMap([['id', `d9${u8(32)}${ascii(ID.A)}`], ['router', mpUint(7)], ['maxFrame', mpUint(MAX_FRAME)], ['keepalive', mpUint(30000)], ['timeout', mpUint(45000)]]),
]);
invalidBody('registered-router-mismatch', 'REGISTERED whose router (8) differs from the ID\'s first 4 bytes (7) (§4.2).', T.REGISTERED, [
  registeredBody(ID.A, 8, MAX_FRAME, 30000, 45000),
]);
invalidBody('registered-router-zero', 'REGISTERED with router 0 and the zero ID (§4.2, §5.2).', T.REGISTERED, [
  registeredBody(ID.zero, 0, MAX_FRAME, 30000, 45000),
]);
invalidBody('registered-maxframe-too-small', 'REGISTERED with maxFrame 1049 < 1050 (§4.2).', T.REGISTERED, [
  registeredBody(ID.A, ROUTER, 1049, 30000, 45000),
]);
invalidBody('registered-maxframe-too-large', 'REGISTERED with maxFrame 64 MiB + 1 (§4.2).', T.REGISTERED, [
  registeredBody(ID.A, ROUTER, 64 * 1024 * 1024 + 1, 30000, 45000),
]);
invalidBody('registered-timeout-below-keepalive', 'REGISTERED with timeout 29999 < keepalive 30000 (§4.2).', T.REGISTERED, [
  registeredBody(ID.A, ROUTER, MAX_FRAME, 30000, 29999),
]);
invalidBody('registered-keepalive-zero', 'REGISTERED with keepalive 0 (§4.2).', T.REGISTERED, [
  registeredBody(ID.A, ROUTER, MAX_FRAME, 0, 0),
]);
invalidBody('registered-negative', 'REGISTERED with maxFrame -1 (int8 0xff) (§4.2).', T.REGISTERED, [
  mpMap([['id', mpBin(ID.A)], ['router', mpUint(7)], ['maxFrame', 'ff'], ['keepalive', mpUint(30000)], ['timeout', mpUint(45000)]]),
]);
invalidBody('registered-float', 'REGISTERED with keepalive 1.5 (float64) (§4.2).', T.REGISTERED, [
  mpMap([['id', mpBin(ID.A)], ['router', mpUint(7)], ['maxFrame', mpUint(MAX_FRAME)], ['keepalive', 'cb3ff8000000000000'], ['timeout', mpUint(45000)]]),
]);
invalidBody('registered-missing-timeout', 'REGISTERED without the timeout key (§4.2).', T.REGISTERED, [
  mpMap([['id', mpBin(ID.A)], ['router', mpUint(7)], ['maxFrame', mpUint(MAX_FRAME)], ['keepalive', mpUint(30000)]]),
]);
invalidBody('registered-anonymous-with-id', 'REGISTERED with anonymous: true but a non-zero id (§11.1).', T.REGISTERED, [
  mpMap([['id', mpBin(ID.A)], ['router', mpUint(7)], ['maxFrame', mpUint(MAX_FRAME)], ['keepalive', mpUint(30000)], ['timeout', mpUint(45000)], ['anonymous', 'c3']]),
]);
invalidBody('registered-anonymous-not-bool', 'REGISTERED with anonymous: 1 instead of a boolean (§11.1).', T.REGISTERED, [
  mpMap([['id', mpBin(ID.A)], ['router', mpUint(7)], ['maxFrame', mpUint(MAX_FRAME)], ['keepalive', mpUint(30000)], ['timeout', mpUint(45000)], ['anonymous', '01']]),
]);
invalidBody('registered-resume-too-short', 'REGISTERED with a 15-byte resume token (§12.3).', T.REGISTERED, [
  mpMap([['id', mpBin(ID.A)], ['router', mpUint(7)], ['maxFrame', mpUint(MAX_FRAME)], ['keepalive', mpUint(30000)], ['timeout', mpUint(45000)], ['resume', mpBin('7e'.repeat(15))]]),
]);
invalidBody('drain-alternates-not-strings', 'DRAIN whose alternates hold a number (§12.1).', T.DRAIN, [mpMap([['after', mpUint(0)], ['grace', mpUint(0)], ['alternates', '9107']])]);
invalidBody('drain-no-grace', 'DRAIN without grace (§12.1).', T.DRAIN, [mpMap([['after', mpUint(0)], ['alternates', '90']])]);
invalidBody('registered-alternates-not-strings', 'REGISTERED whose alternates hold a number (§13.7).', T.REGISTERED, [
  mpMap([['id', mpBin(ID.A)], ['router', mpUint(7)], ['maxFrame', mpUint(MAX_FRAME)], ['keepalive', mpUint(30000)], ['timeout', mpUint(45000)], ['alternates', '9107']]),
]);
invalidBody('registered-not-a-map', 'REGISTERED whose body is nil (§4.2).', T.REGISTERED, ['c0']);

// ---- output ----
for (const v of vectors) {
  v.hex = clean(v.lines.join(''));
  if (v.kind === 'frame' || v.kind === 'skip' || v.kind === 'invalid-body') {
    if (bytes(v.hex) !== v.decoded.size) throw new Error(`${v.name}: size ${bytes(v.hex)} != ${v.decoded.size}`);
  }
}
const names = new Set();
for (const v of vectors) {
  if (names.has(v.name)) throw new Error(`duplicate vector ${v.name}`);
  names.add(v.name);
}

const json = {
  protocol: 1,
  about: 'Test vectors of postern protocol v1; see PROTOCOL.md Appendix B. Generated by spec/vectors/generate.mjs.',
  ids: { router: ROUTER, A: ID.A, B: ID.B, C: ID.C, zero: ID.zero },
  mesh: { secret: MESH.secret, dialer: MESH.dialer, acceptor: MESH.acceptor, dialerNonce: nD, acceptorNonce: nA },
  defaultMaxFrame: MAX_FRAME,
  vectors: vectors.map(({ lines: _lines, ...v }) => ({
    name: v.name,
    kind: v.kind,
    description: v.description,
    hex: v.hex,
    ...(v.canonical === false ? { canonical: false } : {}),
    ...(v.decoder !== undefined ? { decoder: v.decoder } : {}),
    ...(v.decoded !== undefined ? { decoded: v.decoded } : {}),
    ...(v.expect !== undefined ? { expect: v.expect } : {}),
  })),
};

// ---- markdown ----
const SECTIONS = [
  ['B.1', 'Preambles', ['preamble']],
  ['B.2', 'Frames', ['frame']],
  ['B.3', 'Skipped optional frames', ['skip']],
  ['B.4', 'Invalid framing', ['invalid']],
  ['B.5', 'Invalid bodies', ['invalid-body']],
];
const fmt = (k, v) => {
  if (typeof v === 'string') return v === '' ? '(empty)' : `\`${v}\``;
  if (typeof v === 'object') return `\`${JSON.stringify(v)}\``;
  return String(v);
};
// A few vectors of each kind are printed in full as examples; every vector is listed by
// name, and the full set (hex and decoded fields) is spec/vectors/frames.json.
const EXAMPLES = new Set([
  'preamble-v1', 'register-empty', 'registered-a', 'error-unknown-destination', 'close-normal', 'ping-8', 'pong-8',
  'send-hello', 'deliver-hello', 'send-anonymous', 'lookup', 'skip-optional-0x80', 'bad-magic-http', 'too-large-by-one',
  'unknown-critical-0x5a', 'register-not-a-map', 'register-anonymous-not-bool',
]);
let md = '';
for (const [num, title, kinds] of SECTIONS) {
  md += `\n### ${num} ${title}\n`;
  const all = vectors.filter((x) => kinds.includes(x.kind));
  md += `\nIn \`frames.json\` (${all.length}): ${all.map((v) => `\`${v.name}\``).join(', ')}.\n`;
  for (const v of all.filter((x) => EXAMPLES.has(x.name))) {
    md += `\n#### \`${v.name}\`\n\n${v.description}\n\n\`\`\`hex\n${v.lines.filter((l) => l.length > 0).join('\n')}\n\`\`\`\n`;
    const rows = [];
    if (v.decoder !== undefined && (v.decoder.preamble || v.decoder.maxFrame !== MAX_FRAME)) {
      rows.push(['decoder', `${v.decoder.preamble ? 'expects a preamble' : 'frames only'}, maxFrame ${v.decoder.maxFrame}`]);
    }
    if (v.decoded !== undefined) for (const [k, val] of Object.entries(v.decoded)) rows.push([k, fmt(k, val)]);
    if (v.expect !== undefined) {
      rows.push(['error', `\`${v.expect.error}\` (wire code ${v.expect.wireCode})`]);
      if (v.expect.failsAfter !== undefined) rows.push(['fails after', `${v.expect.failsAfter} byte${v.expect.failsAfter === 1 ? '' : 's'}`]);
    }
    if (v.canonical === false) rows.push(['canonical', 'no: valid input, but not what an encoder writes']);
    md += `\n| field | value |\n|---|---|\n${rows.map(([k, val]) => `| ${k} | ${val} |`).join('\n')}\n`;
  }
}

// ---- Appendix C example session ----
const byName = Object.fromEntries(vectors.map((v) => [v.name, v]));
const steps = [
  ['A → R', 'preamble-v1', 'A opens TCP to port 7447 and sends its preamble, offering version 1.'],
  ['A → R', 'register-empty', 'A pipelines its REGISTER right behind the preamble (§2.1).'],
  ['R → A', 'preamble-v1', 'The router has read the whole preamble and answers with version min(1, 1) = 1.'],
  ['R → A', 'registered-a', 'A is now `00000007aaaaaaaaaaaaaaaaaaaaaaaa`; its limits become maxFrame 1 MiB, keepalive 30 s, timeout 45 s. (B has registered the same way on its own connection.)'],
  ['A → R', 'send-hello', 'A sends "hello" to B with seq 1.'],
  ['R → B', 'deliver-hello', 'The router rewrites the same 31 bytes in place: type 0x11, the ID field now holds A, seq 0. B learns A\'s ID and nothing else.'],
  ['A → R', 'send-empty', 'A sends an empty message to B with seq 2 …'],
  ['R → B', 'deliver-empty', '… and B receives it.'],
  ['A → R', '*send-c*', 'A sends "hello" to C, which is not registered, with seq 3 — the same frame as `send-hello` with C in bytes 6..21 and seq 3.'],
  ['A → R', 'ping-8', 'A flushes: a PING right after the SEND.'],
  ['R → A', 'error-unknown-destination', 'The router answers the SEND: code 1, seq 3, C. The connection stays open.'],
  ['R → A', 'pong-8', 'Then the PONG, after the ERROR (§6.5): every SEND before the PING has been handled.'],
  ['R → A', 'ping-empty', 'Later, after 30 s in which A sent nothing, the router checks that A is alive …'],
  ['A → R', 'pong-empty', '… and A answers at once.'],
  ['A → R', 'close-normal', 'A is done: CLOSE with code 0, then A ends its side of TCP. The router answers nothing, releases A\'s ID and closes; a SEND to A from now on gets UNKNOWN_DESTINATION.'],
];
let ex = `\nOne agent, A, talks to agent B through router 7. Each row is one frame (or preamble) in\nthe order it crosses the wire; the hex is that of the named vector in Appendix B.\n\n| # | direction | vector | what happens |\n|---|---|---|---|\n`;
steps.forEach(([dir, name, what], i) => {
  ex += `| ${i + 1} | ${dir} | ${name.startsWith('*') ? '—' : `\`${name}\``} | ${what} |\n`;
});
ex += '\nThe bytes A writes, in order (steps 1, 2, 5, 7, 9, 10, 14, 15):\n\n```text\n';
const sendC = `${header(T.SEND, 0, ID.C + u32(3) + hello)} ${ID.C} ${u32(3)} ${hello}`;
const wireLines = (v) => v.lines.filter((l) => l.length > 0).join(' ').replace(/\s+/g, ' ');
const aWrites = ['preamble-v1', 'register-empty', 'send-hello', 'send-empty', sendC, 'ping-8', 'pong-empty', 'close-normal'];
ex += aWrites.map((n) => (byName[n] ? wireLines(byName[n]) : n)).join('\n');
ex += '\n```\n\nThe bytes the router writes to A, in order (steps 3, 4, 11, 12, 13):\n\n```text\n';
ex += ['preamble-v1', 'registered-a', 'error-unknown-destination', 'pong-8', 'ping-empty'].map((n) => wireLines(byName[n])).join('\n');
ex += '\n```\n\nAnd to B (steps 6, 8):\n\n```text\n';
ex += ['deliver-hello', 'deliver-empty'].map((n) => wireLines(byName[n])).join('\n');
ex += '\n```\n';

const docPath = join(root, 'PROTOCOL.md');
const jsonPath = join(root, 'spec', 'vectors', 'frames.json');
const replaceBlock = (doc, tag, content) => {
  const re = new RegExp(`(<!-- BEGIN ${tag}[^>]*-->)[\\s\\S]*?(<!-- END ${tag} -->)`);
  if (!re.test(doc)) throw new Error(`PROTOCOL.md has no ${tag} block`);
  return doc.replace(re, (_m, a, b) => `${a}\n${content}\n${b}`);
};
const oldDoc = readFileSync(docPath, 'utf8');
const streams = streamVectors(ID);
const stable = await stableVectors(ROUTER);
const newDoc = replaceBlock(replaceBlock(replaceBlock(oldDoc, 'VECTORS', md), 'EXAMPLE', ex), 'STREAMS', streams.md);
const newDocAll = replaceBlock(newDoc, 'STABLE', stable.md);
const newJson = `${JSON.stringify(json, null, 2)}\n`;
// §14 stream-layer vectors: their own file, one block in PROTOCOL.md.
const streamsPath = join(root, 'spec', 'vectors', 'streams.json');
const newStreams = `${JSON.stringify({ about: 'Stream-layer (§14.9) and stable-address (§15.4) vectors; see PROTOCOL.md. Generated by spec/vectors/generate.mjs.', ids: { A: ID.A, B: ID.B }, vectors: streams.json, stable: { ...stable.facts, vectors: stable.json } }, null, 2)}\n`;
let oldStreams = '';
try {
  oldStreams = readFileSync(streamsPath, 'utf8');
} catch {
  // first run
}
let oldJson = '';
try {
  oldJson = readFileSync(jsonPath, 'utf8');
} catch {
  // first run
}
if (check) {
  const stale = [newDocAll !== oldDoc && 'PROTOCOL.md', newJson !== oldJson && 'frames.json', newStreams !== oldStreams && 'streams.json'].filter(Boolean);
  if (stale.length > 0) {
    console.error(`stale: ${stale.join(', ')}; run node spec/vectors/generate.mjs`);
    process.exit(1);
  }
} else {
  writeFileSync(docPath, newDocAll);
  writeFileSync(jsonPath, newJson);
  writeFileSync(streamsPath, newStreams);
  console.log(`${vectors.length} vectors written`);
}
