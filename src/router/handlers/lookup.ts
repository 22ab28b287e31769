import type { LookupBody, LookupResultBody } from '../../protocol/control.js';
import { answerLookup, passLookupResult } from '../keys.js';
import { Role, type FrameHandler } from './conn.js';

/** The key directory's frames [P-11.4]: LOOKUP from agents and links, LOOKUP_RESULT coming back over a link. */

export const lookup: FrameHandler = {
  roles: Role.AGENT | Role.LINK,
  handle(c, buf, start, end) {
    let q: LookupBody;
    try {
      q = c.ctx.codec.decodeLookup(buf, start, end);
    } catch (err) {
      c.fail(err);
      return;
    }
    answerLookup(c.ctx, c, q);
  },
};

export const lookupResult: FrameHandler = {
  roles: Role.LINK,
  handle(c, buf, start, end) {
    let r: LookupResultBody;
    try {
      r = c.ctx.codec.decodeLookupResult(buf, start, end);
    } catch (err) {
      c.fail(err);
      return;
    }
    passLookupResult(c.ctx, r);
  },
};
