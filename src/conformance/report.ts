import { FrameType, FRAME_TYPE_NAMES, WIRE_CODE_NAMES } from '../protocol/frame.js';

/**
 * What a conformance run reports: one result per requirement ID of PROTOCOL.md, with what
 * the runner sent and what it got, so an implementer sees the failing rule and the bytes.
 */

/** pass, fail, or not testable from outside (with the reason). */
export type CheckStatus = 'pass' | 'fail' | 'untestable';

/** One requirement's outcome. */
export interface CheckResult {
  /** The requirement ID in PROTOCOL.md, e.g. `P-6.4-1`. */
  id: string;
  /** What the requirement says, in a line. */
  title: string;
  status: CheckStatus;
  /** What the runner sent (frames, in order). */
  sent: string[];
  /** What it got back. */
  got: string[];
  /** Why it failed, or why it cannot be tested from outside. */
  reason?: string;
  /** Milliseconds the check took. */
  ms: number;
}

/** A whole run. */
export interface ConformanceReport {
  /** What was tested: `router 127.0.0.1:7447` or `agent <command>`. */
  target: string;
  results: CheckResult[];
  /** Counts by status. */
  summary: Record<CheckStatus, number>;
  /** True when no check failed (untestable ones do not count against it). */
  ok: boolean;
}

/** Builds the report object from results. */
export function makeReport(target: string, results: CheckResult[]): ConformanceReport {
  const summary: Record<CheckStatus, number> = { pass: 0, fail: 0, untestable: 0 };
  for (const r of results) summary[r.status]++;
  return { target, results, summary, ok: summary.fail === 0 };
}

/** The report as text, one block per requirement, failures with what was sent and got. */
export function formatReport(report: ConformanceReport): string {
  const lines = [`postern conformance: ${report.target}`];
  for (const r of report.results) {
    const tag = r.status === 'pass' ? 'pass' : r.status === 'fail' ? 'FAIL' : 'n/a ';
    lines.push(`${tag}  [${r.id}] ${r.title}`);
    if (r.status !== 'pass') {
      if (r.reason !== undefined) lines.push(`        ${r.status === 'fail' ? 'why' : 'not testable from outside'}: ${r.reason}`);
      if (r.status === 'fail') {
        if (r.sent.length > 0) lines.push(`        sent: ${r.sent.join(' | ')}`);
        lines.push(`        got:  ${r.got.length > 0 ? r.got.join(' | ') : '(nothing)'}`);
      }
    }
  }
  const s = report.summary;
  lines.push(`${s.pass} passed, ${s.fail} failed, ${s.untestable} not testable from outside`);
  return lines.join('\n') + '\n';
}

/** A frame in a line: type name, the fields that matter, a hex prefix of the rest. */
export function describeFrame(bytes: Buffer): string {
  if (bytes.length < 6) return `short frame ${bytes.toString('hex')}`;
  const type = bytes[4]!;
  const flags = bytes[5]!;
  const name = FRAME_TYPE_NAMES[type] ?? `0x${type.toString(16).padStart(2, '0')}`;
  const f = flags !== 0 ? ` flags=0x${flags.toString(16)}` : '';
  const body = bytes.subarray(6);
  switch (type) {
    case FrameType.CLOSE:
    case FrameType.ERROR: {
      if (body.length < 2) break;
      const code = body.readUInt16BE(0);
      const codeName = WIRE_CODE_NAMES[code] ?? 'unknown';
      if (type === FrameType.CLOSE) return `CLOSE(${code} ${codeName}${f}) "${body.subarray(2).toString('utf8').slice(0, 60)}"`;
      if (body.length < 22) break;
      return `ERROR(${code} ${codeName}, seq=${body.readUInt32BE(2)}, id=${body.subarray(6, 22).toString('hex')}${f})`;
    }
    case FrameType.SEND:
    case FrameType.DELIVER:
      if (body.length < 20) break;
      return `${name}(id=${body.subarray(0, 16).toString('hex')}, seq=${body.readUInt32BE(16)}${f}, ${body.length - 20} payload bytes)`;
    case FrameType.PING:
    case FrameType.PONG:
      return `${name}(${body.toString('hex') || 'empty'}${f})`;
  }
  return `${name}(${bytes.length} bytes${f}: ${body.subarray(0, 40).toString('hex')}${body.length > 40 ? '…' : ''})`;
}
