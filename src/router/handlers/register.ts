import { timingSafeEqual } from 'node:crypto';
import type { RegisterRequest } from '../../protocol/control.js';
import { RELAY_ID_OFFSET, RELAY_SEQ_OFFSET, WireCode } from '../../protocol/frame.js';
import { formatId, routerIdOf } from '../../protocol/id.js';
import { StableChallenge } from '../../protocol/stable-id.js';
import { Parked, type Held } from '../parked.js';
import { ConnState } from '../state.js';
import { Role, type FrameHandler, type HandlerConn } from './conn.js';

/**
 * REGISTER [P-4]: admission, the per-address registration rate, the stable-ID challenge,
 * resuming a parked or stale ID, then REGISTERED and the messages held for a resumed ID.
 * A SEND before it is refused with NOT_REGISTERED. [P-4.3]
 */

export const register: FrameHandler = {
  roles: Role.NEW | Role.AGENT,
  handle(c, buf, start, end) {
    const ctx = c.ctx;
    if (c.state === ConnState.OPEN) {
      c.writer.error(WireCode.ALREADY_REGISTERED, 0, null); // [P-4.4]
      return;
    }
    let body: RegisterRequest;
    try {
      body = ctx.codec.decodeRegister(buf, start, end); // [P-4.1] [P-11.1] typed and checked
    } catch (err) {
      c.fail(err);
      return;
    }
    // [P-12.7] admission, then the per-address registration rate
    if (!ctx.admits(body.token)) {
      ctx.stats.admissionDenied++;
      c.close(WireCode.ADMISSION_DENIED, 'registration needs a valid admission token');
      return;
    }
    if (!ctx.registrationAllowed(c.address)) {
      c.writer.error(WireCode.RATE_LIMITED, 0, null, 'too many registrations from this address; retry later');
      return;
    }
    const { anonymous, key } = body;
    const o = ctx.options;
    // [P-15.2] a stable ID: CHALLENGE first, then the proof; the ID is then taken over like a resume
    let stableId: Buffer | undefined;
    if (body.stable && !anonymous) {
      const r = (c.stable ??= new StableChallenge()).step(body, o.routerId);
      if ('frame' in r) return void c.writer.writeChunks(r.frame);
      if ('fail' in r) return void c.close(WireCode.ADMISSION_DENIED, r.fail);
      stableId = r.id;
      if (o.resumeGrace > 0) Object.assign(body, { id: stableId, resume: ctx.resumeToken(stableId) });
      else if (ctx.registry.lookup(stableId, 0) !== undefined) return void c.writer.error(WireCode.ALREADY_REGISTERED, 0, null, 'the stable ID is in use');
    }
    c.open('agent', o.maxFrame);
    ctx.stats.registrations++;
    if (anonymous) {
      // [P-11.1] no ID, nothing in the registry; never log where it comes from.
      c.anonymous = true;
      c.remote = undefined;
    }
    let held: Held[] = [];
    let resumed = false;
    if (!anonymous) {
      const r = tryResume(c, body);
      if (r !== null) {
        held = r.held;
        resumed = true;
      }
      const id = r !== null ? r.id : (stableId ?? ctx.registry.newId(o.routerId));
      c.id = id;
      c.idText = formatId(id);
      for (let i = 0; i < 4; i++) c.idWords[i] = id.readInt32LE(i * 4);
      ctx.registry.add(c);
      if (key !== undefined) c.publicKey = key;
    }
    const ka = o.keepaliveInterval;
    const resume = !anonymous && o.resumeGrace > 0 ? { resume: ctx.resumeToken(c.id), resumeGrace: o.resumeGrace } : {};
    // [P-4.2]
    c.writer.writeChunks(
      ctx.codec.encodeRegistered({ id: c.id, router: o.routerId, maxFrame: o.maxFrame, keepalive: ka, timeout: Math.floor(ka * 1.5), anonymous, ...resume, resumed, alternates: o.alternates }),
    );
    // [P-12.4] held messages first, in the order they came
    for (const h of held) c.writer.write(h.frame);
    if (resumed) ctx.stats.resumes++;
    ctx.log.info(anonymous ? 'anonymous agent connected' : resumed ? 'agent resumed' : 'agent registered', {
      agent: c.idText || undefined,
      remote: c.remote,
      held: resumed ? held.length : undefined,
    });
    ctx.onRegistered(c);
  },
};

/** A SEND before REGISTER (once registered, SENDs go to the relay and never reach here). [P-4.3] */
export const sendUnregistered: FrameHandler = {
  roles: Role.NEW | Role.AGENT,
  handle(c, buf, start) {
    c.writer.error(WireCode.NOT_REGISTERED, buf.readUInt32BE(start + RELAY_SEQ_OFFSET), buf.subarray(start + RELAY_ID_OFFSET, start + RELAY_ID_OFFSET + 16));
  },
};

/**
 * REGISTER with `resume` and `id`: takes the ID back when the token is the router's for
 * that ID and the ID is parked, held by a stale connection, or unknown while a restarted
 * router is within its restart window. Anything else registers afresh. [P-12.3]
 */
function tryResume(c: HandlerConn, body: RegisterRequest): { id: Buffer; held: Held[] } | null {
  const ctx = c.ctx;
  const { resume: token, id } = body;
  if (ctx.options.resumeGrace === 0 || token === undefined || id === undefined) return null;
  if (routerIdOf(id) !== ctx.options.routerId) return null;
  const want = ctx.resumeToken(id);
  if (token.length !== want.length || !timingSafeEqual(token, want)) {
    ctx.log.info('resume refused', { reason: 'bad token' });
    return null;
  }
  const entry = ctx.registry.lookup(id, 0);
  if (entry === undefined) return ctx.inRestartWindow() ? { id: Buffer.from(id), held: [] } : null;
  if (entry instanceof Parked) return { id: entry.id, held: entry.resume() };
  const old = entry.conn;
  if (old === null || old === c || !old.id.equals(Buffer.from(id))) return null; // a reply handle, not an agent
  // A stale connection (a NAT rebinding, a path that died silently): this one replaces it.
  old.close(WireCode.GOING_AWAY, 'replaced by a resumed connection');
  return { id: old.id, held: [] };
}
