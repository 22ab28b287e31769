/**
 * Router-link vectors (PROTOCOL.md §10): the proofs in the vectors are the HMACs §10.2
 * defines, and the router's handshake code computes and accepts exactly those.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHmac } from 'node:crypto';
import { ControlCodec } from '../../src/protocol/control.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { FrameType } from '../../src/protocol/frame.js';
import { acceptProof, dialProof, encodeLinkAuth, encodeLinkChallenge, encodeLinkHello, encodeLinkReady, proofMatches, readLinkAuth, readLinkHello } from '../../src/protocol/link.js';
import { VECTORS, hexBuf, throwsCode, vector } from './helpers.js';

const codec = new ControlCodec();
const M = VECTORS.mesh;
const secret = Buffer.from(M.secret, 'utf8');
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const body = (name: string): Record<string, any> => vector(name).decoded!['body'] as Record<string, any>;

test('the vector proofs are the HMAC-SHA256 values of §10.2', () => {
  const nD = hexBuf(M.dialerNonce);
  const nA = hexBuf(M.acceptorNonce);
  const pA = createHmac('sha256', secret).update('postern link v1 accept').update(nD).update(nA).update(u32(M.dialer)).update(u32(M.acceptor)).digest('hex');
  const pD = createHmac('sha256', secret).update('postern link v1 dial').update(nA).update(nD).update(u32(M.acceptor)).update(u32(M.dialer)).digest('hex');
  assert.is(body('link-challenge')['proof'], pA);
  assert.is(body('link-auth')['proof'], pD);
  assert.is.not(pA, pD, 'the two directions differ');
});

test('the router handshake computes the vector proofs', () => {
  const nD = hexBuf(M.dialerNonce);
  const nA = hexBuf(M.acceptorNonce);
  assert.is(acceptProof(secret, nD, nA, M.dialer, M.acceptor).toString('hex'), body('link-challenge')['proof']);
  assert.is(dialProof(secret, nA, nD, M.acceptor, M.dialer).toString('hex'), body('link-auth')['proof']);
  assert.ok(proofMatches(hexBuf(body('link-auth')['proof']), dialProof(secret, nA, nD, M.acceptor, M.dialer)));
  assert.not.ok(proofMatches(hexBuf(body('link-challenge')['proof']), dialProof(secret, nA, nD, M.acceptor, M.dialer)), 'no reflection');
  assert.not.ok(proofMatches(hexBuf(body('link-auth')['proof']).subarray(0, 31), dialProof(secret, nA, nD, M.acceptor, M.dialer)));
  const other = Buffer.from('another mesh secret!', 'utf8');
  assert.is.not(acceptProof(other, nD, nA, M.dialer, M.acceptor).toString('hex'), body('link-challenge')['proof']);
});

test('the router handshake encodes the link vectors byte for byte', () => {
  const nD = hexBuf(M.dialerNonce);
  const nA = hexBuf(M.acceptorNonce);
  const hex = (c: Buffer[]): string => Buffer.concat(c).toString('hex');
  assert.is(hex(encodeLinkHello(codec, M.dialer, nD, 1048576)), vector('link-hello').hex);
  assert.is(hex(encodeLinkChallenge(codec, M.acceptor, nA, hexBuf(body('link-challenge')['proof']), 1048576)), vector('link-challenge').hex);
  assert.is(hex(encodeLinkAuth(codec, hexBuf(body('link-auth')['proof']))), vector('link-auth').hex);
  assert.is(hex(encodeLinkReady(codec)), vector('link-ready').hex);
});

test('LINK_HELLO / LINK_CHALLENGE shape checks fail with MALFORMED', () => {
  const hello = hexBuf(vector('link-hello').hex);
  const h = readLinkHello(codec, hello, 0, hello.length, false);
  assert.equal({ router: h.router, nonce: h.nonce.toString('hex'), maxFrame: h.maxFrame }, body('link-hello'));
  const ch = hexBuf(vector('link-challenge').hex);
  assert.is(readLinkHello(codec, ch, 0, ch.length, true).proof!.toString('hex'), body('link-challenge')['proof']);
  const bad: [string, Record<string, unknown>][] = [
    ['router 0', { router: 0, nonce: hexBuf(M.dialerNonce), maxFrame: 1048576 }],
    ['nonce 31 bytes', { router: 7, nonce: Buffer.alloc(31), maxFrame: 1048576 }],
    ['maxFrame too small', { router: 7, nonce: hexBuf(M.dialerNonce), maxFrame: 1049 }],
    ['no nonce', { router: 7, maxFrame: 1048576 }],
  ];
  for (const [what, b] of bad) {
    const f = Buffer.concat(codec.encodeMap(FrameType.LINK_HELLO, b));
    throwsCode(() => readLinkHello(codec, f, 0, f.length, false), ErrorCode.MALFORMED, what);
  }
  // LINK_CHALLENGE without a proof
  throwsCode(() => readLinkHello(codec, hello, 0, hello.length, true), ErrorCode.MALFORMED, 'no proof');
});

test('LINK_AUTH reads its proof from the vector; a missing or non-bytes proof reads as none', () => {
  const auth = hexBuf(vector('link-auth').hex);
  assert.is(Buffer.from(readLinkAuth(codec, auth, 0, auth.length).proof!).toString('hex'), body('link-auth')['proof']);
  for (const b of [{}, { proof: 'not bytes' }]) {
    const f = Buffer.concat(codec.encodeMap(FrameType.LINK_AUTH, b));
    assert.is(readLinkAuth(codec, f, 0, f.length).proof, null);
  }
});

test.run();
