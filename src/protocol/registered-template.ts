/**
 * REGISTERED from a template. A router writes the same REGISTERED to every agent but for two
 * fields, the 16-byte ID and the resume token: everything else comes from its options. Packing
 * the map each time cost more per registration than anything else the router does for it, and
 * a registration flood is one of the ways to load a router; so the bytes of the common shape
 * (not anonymous, not resumed, with a resume token) are packed once, and each REGISTERED is
 * that template with the ID and token copied in, as one buffer (one write).
 *
 * The template's bytes are the reference encoder's: it is built by that encoder, and checked
 * once against it with a second, different ID and token, so a field whose encoding depends on
 * its value (which a fixed-length bin8 does not) disables it rather than producing other bytes.
 */
import type { RegisteredBody } from './control.js';

interface Template {
  router: number;
  maxFrame: number;
  keepalive: number;
  timeout: number;
  resumeGrace: number | undefined;
  alternates: readonly string[] | undefined;
  resumeLength: number;
  /** The whole frame, header included, and where the ID and the token go in it. */
  bytes: Buffer;
  idAt: number;
  resumeAt: number;
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  const n = a?.length ?? 0;
  if (n !== (b?.length ?? 0)) return false;
  for (let i = 0; i < n; i++) if (a![i] !== b![i]) return false;
  return true;
}

/** Where `value`, as a MessagePack bin8 (0xc4, length, bytes), is in `frame`; -1 when not exactly once. */
function binAt(frame: Buffer, value: Buffer): number {
  const needle = Buffer.concat([Buffer.of(0xc4, value.length), value]);
  const at = frame.indexOf(needle);
  if (at < 0 || frame.indexOf(needle, at + 1) >= 0) return -1;
  return at + 2;
}

/** REGISTERED frames from a template, rebuilt whenever the fixed fields change. */
export class RegisteredTemplate {
  private t: Template | null = null;
  // The shape of the last body that could not be templated, so it is not retried each time.
  private failed: Omit<Template, 'bytes' | 'idAt' | 'resumeAt'> | null = null;

  /** `reference`: the plain encoder, whose bytes the template reproduces. */
  constructor(private readonly reference: (body: RegisteredBody) => Buffer[]) {}

  /** The frame as one buffer, or null when `body` is not the templated shape (the caller then packs it). */
  encode(body: RegisteredBody): Buffer[] | null {
    const resume = body.resume;
    if (body.anonymous === true || body.resumed === true || resume === undefined || body.id.length !== 16 || resume.length === 0 || resume.length > 255) return null;
    let t = this.t;
    if (t === null || !this.fits(t, body, resume.length)) {
      if (this.failed !== null && this.fits(this.failed, body, resume.length)) return null;
      t = this.build(body, resume.length);
      if (t === null) return null;
    }
    const out = Buffer.allocUnsafe(t.bytes.length);
    t.bytes.copy(out);
    out.set(body.id, t.idAt);
    out.set(resume, t.resumeAt);
    return [out];
  }

  private fits(t: Omit<Template, 'bytes' | 'idAt' | 'resumeAt'>, b: RegisteredBody, resumeLength: number): boolean {
    return (
      t.router === b.router &&
      t.maxFrame === b.maxFrame &&
      t.keepalive === b.keepalive &&
      t.timeout === b.timeout &&
      t.resumeGrace === b.resumeGrace &&
      t.resumeLength === resumeLength &&
      sameList(t.alternates, b.alternates)
    );
  }

  private build(body: RegisteredBody, resumeLength: number): Template | null {
    const shape = {
      router: body.router,
      maxFrame: body.maxFrame,
      keepalive: body.keepalive,
      timeout: body.timeout,
      resumeGrace: body.resumeGrace,
      alternates: body.alternates === undefined ? undefined : [...body.alternates],
      resumeLength,
    };
    const frameWith = (idByte: number, resumeByte: number): { frame: Buffer; id: Buffer; resume: Buffer } => {
      const id = Buffer.alloc(16, idByte);
      const resume = Buffer.alloc(resumeLength, resumeByte);
      return { frame: Buffer.concat(this.reference({ ...body, id, resume })), id, resume };
    };
    const a = frameWith(0xa5, 0x5a);
    const idAt = binAt(a.frame, a.id);
    const resumeAt = binAt(a.frame, a.resume);
    const t: Template = { ...shape, bytes: a.frame, idAt, resumeAt };
    // The check: the template patched with another ID and token is the reference's bytes for them.
    const b = frameWith(0x3c, 0xc3);
    let ok = idAt >= 0 && resumeAt >= 0 && b.frame.length === a.frame.length;
    if (ok) {
      const patched = Buffer.from(a.frame);
      patched.set(b.id, idAt);
      patched.set(b.resume, resumeAt);
      ok = patched.equals(b.frame);
    }
    if (!ok) {
      this.failed = shape;
      return null;
    }
    this.t = t;
    return t;
  }
}
