/**
 * Requirement IDs: every `[P-x.y-n]` in PROTOCOL.md sits in section x.y and appears once,
 * and every ID cited in src/, bin/ and spec/ (as a `[P-x.y]` section tag or a `P-x.y-n`
 * requirement ID, the conformance runner's included) exists in PROTOCOL.md.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROUTER_CHECK_IDS } from '../../src/conformance/router.js';
import { AGENT_CHECK_IDS } from '../../src/conformance/agent.js';
import { ROOT } from './helpers.js';

const DOC = readFileSync(join(ROOT, 'PROTOCOL.md'), 'utf8');

/** Requirement IDs defined in PROTOCOL.md, with the section each sits in. */
function defined(): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const line of DOC.split('\n')) {
    const h = /^#{2,3} (?:Appendix )?((?:\d+|[A-Z])(?:\.\d+)?)[. ]/.exec(line);
    if (h !== null) section = h[1]!;
    for (const m of line.matchAll(/`\[P-((?:\d+|[A-Z])\.\d+)-(\d+)\]`/g)) {
      const id = `P-${m[1]}-${m[2]}`;
      assert.is(m[1], section, `${id} sits in section ${section}`);
      assert.not.ok(out.has(id), `${id} is defined once`);
      out.set(id, section);
    }
  }
  return out;
}

const headings = new Set([...DOC.matchAll(/^#{2,3} (?:Appendix )?(\d+|[A-Z])(\.\d+)?[. ]/gm)].map((m) => m[1]! + (m[2] ?? '')));

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (/\.(ts|mjs|lua)$/.test(p)) out.push(p);
  }
  return out;
}

test('requirement IDs are numbered 1..n per section, each in its own section, once', () => {
  const ids = defined();
  assert.ok(ids.size >= 150, `${ids.size} requirement IDs`);
  const bySection = new Map<string, number[]>();
  for (const id of ids.keys()) {
    const [, sec, n] = /^P-(.+)-(\d+)$/.exec(id)!;
    bySection.set(sec!, [...(bySection.get(sec!) ?? []), Number(n)]);
  }
  // Each once (checked above), from 1 up; a dropped requirement may leave a gap (§1.1).
  for (const [sec, ns] of bySection) assert.is(Math.min(...ns), 1, `section ${sec} numbers its requirements from 1`);
});

test('every section or requirement ID cited in src/, bin/ and spec/ exists in PROTOCOL.md', () => {
  const ids = defined();
  const missing: string[] = [];
  let cited = 0;
  for (const dir of ['src', 'bin', 'spec']) {
    for (const file of files(join(ROOT, dir))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\bP-((?:\d+|[A-Z])\.\d+)-(\d+)\b/g)) {
        cited++;
        if (!ids.has(`P-${m[1]}-${m[2]}`)) missing.push(`${relative(ROOT, file)}: P-${m[1]}-${m[2]}`);
      }
      for (const m of text.matchAll(/\[P-((?:\d+|[A-Z])(?:\.\d+)?)\]/g)) {
        cited++;
        if (!headings.has(m[1]!)) missing.push(`${relative(ROOT, file)}: [P-${m[1]}]`);
      }
    }
  }
  assert.ok(cited >= 100, `${cited} citations`);
  assert.equal(missing, [], 'cited IDs missing from PROTOCOL.md');
});

test('the conformance runner reports under IDs PROTOCOL.md defines', () => {
  const ids = defined();
  for (const id of [...ROUTER_CHECK_IDS, ...AGENT_CHECK_IDS]) assert.ok(ids.has(id), `${id} is in PROTOCOL.md`);
});

test('every paragraph or list item of the numbered sections that states a MUST carries a requirement ID', () => {
  // The numbered sections, and the envelope appendix (normative); not the vectors.
  const envelopeAt = DOC.search(/^## Appendix [A-Z]\. Sealed envelope/m);
  assert.ok(envelopeAt > 0, 'the sealed envelope appendix exists');
  const envelope = DOC.slice(envelopeAt);
  const numbered = DOC.slice(DOC.search(/^## 2\./m), DOC.search(/^## Appendix A\./m)) + envelope.slice(0, envelope.search(/^### [A-Z]\.\d+ Test vectors/m));
  const untagged: string[] = [];
  let section = '';
  // Paragraphs, list items and table rows, outside code blocks.
  const text = numbered.replace(/```[\s\S]*?```/g, '');
  for (const block of text.split(/\n\s*\n|\n(?=- |\d+\. |\| )/)) {
    const h = /^#{2,3} (?:Appendix )?((?:\d+|[A-Z])(?:\.\d+)?)[. ]/m.exec(block);
    if (h !== null) section = h[1]!;
    if (!/\b(MUST|SHALL|REQUIRED)\b/.test(block)) continue;
    if (!/`\[P-[\dA-Z.]+-\d+\]`/.test(block)) untagged.push(`§${section}: ${block.replace(/\s+/g, ' ').slice(0, 90)}`);
  }
  assert.equal(untagged, [], 'requirements without an ID');
});

test.run();
