/**
 * The connection's role modules on their own: the frame-handler table (which frame is
 * allowed in which role, PROTOCOL.md §3.4 and §10.1) and a link's SOURCE state (§10.4),
 * read and written against the vectors.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameType } from '../../src/protocol/frame.js';
import { HANDLERS, roleOf, type HandlerConn } from '../../src/router/handlers/index.js';
import { ANY_ROLE, Role } from '../../src/router/handlers/conn.js';
import { LinkSource, writeSenderSource } from '../../src/router/mesh/source.js';
import { hexBuf, vector } from '../protocol/helpers.js';

const S = suite('router roles');

/** Where each frame type is allowed, written out as the protocol states it. */
const ALLOWED: Record<string, number> = {
  PING: ANY_ROLE,
  PONG: ANY_ROLE,
  CLOSE: ANY_ROLE,
  REGISTER: Role.NEW | Role.AGENT, // an agent's second REGISTER is answered ALREADY_REGISTERED
  SEND: Role.NEW | Role.AGENT, // before REGISTER: NOT_REGISTERED; once open the relay takes it
  LOOKUP: Role.AGENT | Role.LINK,
  LOOKUP_RESULT: Role.LINK,
  LINK_HELLO: Role.NEW,
  LINK_CHALLENGE: Role.DIALLING,
  LINK_AUTH: Role.ACCEPTING,
  LINK_READY: Role.DIAL_AUTHED,
  SOURCE: Role.LINK,
  ROUTE_ERROR: Role.LINK,
};

S('every frame type is allowed exactly where the protocol says; router-to-agent frames nowhere', () => {
  const got: Record<string, number> = {};
  for (const [name, code] of Object.entries(FrameType)) {
    const h = HANDLERS[code];
    if (h !== undefined) got[name] = h.roles;
  }
  assert.equal(got, ALLOWED);
  for (const t of [FrameType.REGISTERED, FrameType.DELIVER, FrameType.ERROR]) assert.is(HANDLERS[t], undefined);
});

S('roleOf: one role for each step of a connection', () => {
  const c = (kind: '' | 'agent' | 'link', dialled: boolean, hs: null | { peer: null | object }): number =>
    roleOf({ kind, dialled, hs } as unknown as HandlerConn);
  assert.is(c('', false, null), Role.NEW);
  assert.is(c('', true, { peer: null }), Role.DIALLING);
  assert.is(c('', true, { peer: {} }), Role.DIAL_AUTHED);
  assert.is(c('', false, { peer: {} }), Role.ACCEPTING);
  assert.is(c('agent', false, null), Role.AGENT);
  assert.is(c('link', true, null), Role.LINK);
  assert.is(c('link', false, null), Role.LINK);
  // Each role is one bit, and ANY_ROLE is all of them.
  const bits = Object.values(Role);
  assert.is(bits.reduce((a, b) => a | b, 0), ANY_ROLE);
  for (const b of bits) assert.is(b & (b - 1), 0);
});

S('LinkSource reads a SOURCE frame (sender, words, hops, flags, version) and names it onward one hop further', () => {
  const s = new LinkSource<unknown>(9, 65536);
  for (const name of ['source-a-1', 'source-anonymous']) {
    const v = vector(name);
    const frame = hexBuf(v.hex);
    // At an offset, as inside a chunk read.
    const chunk = Buffer.concat([Buffer.alloc(3), frame]);
    const before = s.version;
    s.read(chunk, 3);
    assert.is(s.version, before + 1);
    assert.is(s.sender.toString('hex'), v.decoded!['id']);
    assert.is(s.hops, v.decoded!['hops']);
    assert.is(s.flags, v.decoded!['flags']);
    for (let i = 0; i < 4; i++) assert.is(s.senderWords[i], s.sender.readInt32LE(i * 4));
    const out = Buffer.alloc(frame.length);
    writeSenderSource(out, 0, Buffer.alloc(16), s);
    const onward = Buffer.from(frame);
    onward[6 + 16] = (v.decoded!['hops'] as number) + 1;
    assert.is(out.toString('hex'), onward.toString('hex'));
  }
  // An agent is named by its own ID, at one hop.
  const out = Buffer.alloc(26);
  writeSenderSource(out, 0, hexBuf(vector('source-a-1').decoded!['id'] as string), null);
  assert.is(out.toString('hex'), vector('source-a-1').hex);
});

S.run();
