/**
 * Stream-layer vectors (PROTOCOL.md §14.9), built by hand from the layout in §14.2 without
 * importing src/. Used by generate.mjs, which writes spec/vectors/streams.json and the
 * STREAMS block of PROTOCOL.md.
 */

const u8 = (n) => n.toString(16).padStart(2, '0');
const u32 = (n) => n.toString(16).padStart(8, '0');
const ascii = (s) => Buffer.from(s, 'utf8').toString('hex');
const clean = (hex) => hex.replace(/\s+/g, '');

const MARKER = '89535452';
const TYPE = { OPEN: 1, DATA: 2, WINDOW: 3, FIN: 4, RESET: 5, PING: 6, PONG: 7, REQUEST: 8, REPLY: 9 };
const TYPE_NAMES = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));
const ACCEPTOR = 1;

/** The 14-byte header line and the body line of a stream frame. */
const lines = (type, flags, id, value, bodyHex = '') => [`${MARKER} ${u8(type)} ${u8(flags)} ${u32(id)} ${u32(value)}`, bodyHex];

/** @returns {{ vectors: any[], md: string }} */
export function streamVectors(ids) {
  const vectors = [];
  const frame = (name, description, type, flags, id, value, bodyHex, extra = {}) => {
    const l = lines(type, flags, id, value, bodyHex);
    vectors.push({
      name,
      kind: 'stream',
      description,
      lines: l,
      hex: clean(l.join('')),
      decoded: { type: TYPE_NAMES[type], typeCode: type, flags, id, value, body: clean(bodyHex), ...extra },
    });
  };
  frame('stream-open-ssh', 'OPEN of stream 1 naming service "ssh"; the opener grants the acceptor 262144 bytes of credit (§14.3).', TYPE.OPEN, 0, 1, 262144, ascii('ssh'), { service: 'ssh' });
  frame('stream-open-plain', 'OPEN of stream 2 without a service name (§14.3).', TYPE.OPEN, 0, 2, 262144, '', { service: '' });
  frame('stream-window-accept', 'The acceptor\'s answer to the OPEN of stream 1: WINDOW with increment 0, flag ACCEPTOR (§14.3).', TYPE.WINDOW, ACCEPTOR, 1, 0, '');
  frame('stream-data-opener', 'DATA "hello" on stream 1 from its opener (§14.4).', TYPE.DATA, 0, 1, 0, ascii('hello'));
  frame('stream-data-acceptor', 'DATA "SSH-2.0-" on stream 1 from its acceptor: the ACCEPTOR flag says whose stream 1 it is (§14.2).', TYPE.DATA, ACCEPTOR, 1, 0, ascii('SSH-2.0-'));
  frame('stream-window-grow', 'WINDOW granting 524288 more bytes on stream 1, from its opener (§14.4).', TYPE.WINDOW, 0, 1, 524288, '');
  frame('stream-fin', 'FIN of stream 1 from its acceptor: it will send no more (§14.6).', TYPE.FIN, ACCEPTOR, 1, 0, '');
  frame('stream-reset-refused', 'RESET of stream 2 by its acceptor, code REFUSED (2), reason "key not allowed" (§14.6).', TYPE.RESET, ACCEPTOR, 2, 2, ascii('key not allowed'));
  frame('stream-reset-unknown-service', 'RESET of stream 3 by its acceptor, code UNKNOWN_SERVICE (3), no reason (§14.6).', TYPE.RESET, ACCEPTOR, 3, 3, '');
  frame('stream-ping', 'PING with token 7 on stream 1 from its opener (auto-tuning probe, §14.5).', TYPE.PING, 0, 1, 7, '');
  frame('stream-pong', 'PONG answering it, from the acceptor (§14.5).', TYPE.PONG, ACCEPTOR, 1, 7, '');
  frame('stream-keepalive', 'PING with token 0: a keepalive probe (§14.8).', TYPE.PING, ACCEPTOR, 1, 0, '');
  frame('stream-request', 'REQUEST 42 carrying "time?" (§14.7).', TYPE.REQUEST, 0, 42, 0, ascii('time?'));
  frame('stream-reply', 'REPLY to request 42 carrying "12:00", flag ACCEPTOR (§14.7).', TYPE.REPLY, ACCEPTOR, 42, 0, ascii('12:00'));
  // The same OPEN inside a SEND from A to B: routers see an ordinary payload.
  const open = vectors[0];
  const payload = clean(open.lines.join(''));
  const len = 2 + 16 + 4 + payload.length / 2;
  vectors.push({
    name: 'send-stream-open',
    kind: 'send',
    description: 'stream-open-ssh as the payload of a SEND to B with seq 1 (§6.2, §14.1): the router relays it like any payload.',
    lines: [`${u32(len)} 10 00`, ids.B, u32(1), ...open.lines.filter((l) => l !== '')],
    hex: clean(`${u32(len)}1000${ids.B}${u32(1)}${payload}`),
    decoded: { to: ids.B, seq: 1, payload },
  });
  const invalid = (name, description, hexLines, reason) => {
    vectors.push({ name, kind: 'invalid-stream', description, lines: hexLines, hex: clean(hexLines.join('')), expect: { reason } });
  };
  invalid('stream-too-short', 'The marker and 9 more bytes: shorter than the 14-byte header; dropped (§14.2).', [`${MARKER} 02 00 00000001 00`], 'short');
  invalid('stream-unknown-type', 'Type 0x0a, which §14.2 does not define; dropped.', lines(0x0a, 0, 1, 0).filter((l) => l !== ''), 'type');
  invalid('stream-reserved-flag', 'DATA with flag bit 0x02 set; dropped (§14.2).', lines(TYPE.DATA, 2, 1, 0, ascii('x')), 'flags');
  invalid('stream-window-body', 'WINDOW with a body; dropped (§14.2).', lines(TYPE.WINDOW, 0, 1, 1, '00'), 'body');

  let md = '';
  for (const v of vectors) {
    md += `\n#### \`${v.name}\`\n\n${v.description}\n\n\`\`\`hex\n${v.lines.filter((l) => l.length > 0).join('\n')}\n\`\`\`\n`;
  }
  const json = vectors.map(({ lines: _l, ...v }) => v);
  return { json, md };
}

/**
 * Stable-address vectors (PROTOCOL.md §15.4): REGISTER asking for a stable ID, the router's
 * CHALLENGE, and the REGISTER with the proof, with real X25519/HMAC values computed here
 * with node:crypto (not src/).
 */
export async function stableVectors(routerId) {
  const { createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman } = await import('node:crypto');
  const priv = (sk) => createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), sk]), format: 'der', type: 'pkcs8' });
  const pubOf = (sk) => createPublicKey(priv(sk)).export({ format: 'der', type: 'spki' }).subarray(-32);
  const pubKey = (pk) => createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), pk]), format: 'der', type: 'spki' });
  const LABEL = 'postern stable-id v1';
  const agentSecret = Buffer.alloc(32, 0x41);
  const routerSecret = Buffer.alloc(32, 0x52);
  const K = pubOf(agentSecret);
  const N = pubOf(routerSecret);
  const shared = diffieHellman({ privateKey: priv(agentSecret), publicKey: pubKey(N) });
  const shared2 = diffieHellman({ privateKey: priv(routerSecret), publicKey: pubKey(K) });
  if (!shared.equals(shared2)) throw new Error('x25519 disagrees');
  const proof = createHmac('sha256', shared).update(LABEL).update(N).update(K).digest();
  const id = Buffer.concat([Buffer.from(u32(routerId), 'hex'), createHash('sha256').update(LABEL).update(K).digest().subarray(0, 12)]);
  const str = (s) => u8(0xa0 | s.length) + ascii(s);
  const bin = (b) => `c420 ${b.toString('hex')}`;
  const frameLines = (type, bodyLines) => {
    const n = clean(bodyLines.join('')).length / 2;
    return [`${u32(2 + n)} ${u8(type)} 00`, ...bodyLines];
  };
  const vectors = [];
  const add = (name, description, type, bodyLines, decoded) => {
    const l = frameLines(type, bodyLines);
    vectors.push({ name, kind: 'frame', description, lines: l, hex: clean(l.join('')), decoded });
  };
  add('register-stable', 'REGISTER asking for the stable ID of key K (agent secret key 32 × 41): `key`, `stable: true` (§15.2).', 0x01,
    ['82', `${str('key')} ${bin(K)}`, `${str('stable')} c3`], { key: K.toString('hex'), stable: true });
  add('challenge', 'CHALLENGE: the nonce is the public key of the router\'s ephemeral secret 32 × 52 (§15.2).', 0x08,
    ['81', `${str('nonce')} ${bin(N)}`], { nonce: N.toString('hex') });
  add('register-stable-proof', 'The second REGISTER: the same keys and `proof` = HMAC-SHA256(X25519(agent secret, nonce), label || nonce || K) (§15.2).', 0x01,
    ['83', `${str('key')} ${bin(K)}`, `${str('stable')} c3`, `${str('proof')} ${bin(proof)}`], { key: K.toString('hex'), stable: true, proof: proof.toString('hex') });
  const facts = { routerId, agentSecretKey: agentSecret.toString('hex'), agentPublicKey: K.toString('hex'), routerEphemeralSecretKey: routerSecret.toString('hex'), nonce: N.toString('hex'), shared: shared.toString('hex'), proof: proof.toString('hex'), stableId: id.toString('hex') };
  let md = `\nWith router ID ${routerId}: agent secret key \`${facts.agentSecretKey}\`, public key K \`${facts.agentPublicKey}\`; router ephemeral secret \`${facts.routerEphemeralSecretKey}\`, nonce N \`${facts.nonce}\`; X25519 shared secret \`${facts.shared}\`; proof \`${facts.proof}\`; stable ID \`${facts.stableId}\`.\n`;
  for (const v of vectors) md += `\n#### \`${v.name}\`\n\n${v.description}\n\n\`\`\`hex\n${v.lines.filter((l) => l.length > 0).join('\n')}\n\`\`\`\n`;
  return { json: vectors.map(({ lines: _l, ...v }) => v), facts, md };
}
