/**
 * PROTOCOL.md is normative: these tests keep it and the code in step. Its Appendix B vectors equal
 * spec/vectors/frames.json, every `[P-x.y]` tag in src/ names a section of it, and its code
 * and type tables list what src/protocol defines.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ErrorCode } from '../../src/protocol/errors.js';
import { DEFAULT_PORT, FrameType, MAX_FRAME_SIZE_BY_TYPE, MIN_FRAME_SIZE, WireCode } from '../../src/protocol/frame.js';
import { ROOT, VECTORS } from './helpers.js';

const DOC = readFileSync(join(ROOT, 'PROTOCOL.md'), 'utf8');

/** Text of section `num` ("7", "7.2", "C" for Appendix C), up to the next heading of that level or higher. */
function section(num: string): string {
  const level = num.includes('.') ? '###' : '##';
  const label = /^[A-Z]$/.test(num) ? `Appendix ${num}\\.` : `${num.replace('.', '\\.')}[. ]`;
  const start = DOC.search(new RegExp(`^${level} ${label}`, 'm'));
  assert.ok(start >= 0, `section ${num} exists`);
  const rest = DOC.slice(DOC.indexOf('\n', start) + 1);
  const stop = rest.search(level === '###' ? /^#{2,3} /m : /^## /m);
  return stop < 0 ? rest : rest.slice(0, stop);
}

/** Vectors in the document: a `#### \`name\`` heading, then the first ```hex block under it. */
function docVectors(): Map<string, string> {
  const out = new Map<string, string>();
  const re = /^#### `([a-z0-9-]+)`\n([\s\S]*?)```hex\n([\s\S]*?)```/gm;
  for (const m of DOC.matchAll(re)) {
    assert.not.ok(m[2]!.includes('\n#'), `vector ${m[1]} has its own hex block`);
    assert.not.ok(out.has(m[1]!), `vector ${m[1]} appears once`);
    out.set(m[1]!, m[3]!.replace(/\s+/g, ''));
  }
  return out;
}

test('PROTOCOL.md Appendix B and §14.9/§15.4 hold the vectors of frames.json and streams.json with the same bytes', () => {
  const doc = docVectors();
  // §14.9's stream-layer vectors are in PROTOCOL.md too, from their own file.
  type Vs = { name: string; hex: string }[];
  const sj = JSON.parse(readFileSync(join(ROOT, 'spec', 'vectors', 'streams.json'), 'utf8')) as { vectors: Vs; stable: { vectors: Vs } };
  const streams = [...sj.vectors, ...sj.stable.vectors];
  assert.ok(streams.length >= 18);
  const json = new Map([...VECTORS.vectors, ...streams].map((v) => [v.name, v.hex]));
  assert.ok(json.size >= 40);
  assert.ok(doc.size >= 12, `${doc.size} vectors printed as examples`);
  for (const [name, hex] of doc) assert.is(json.get(name), hex, `${name} in frames.json`);
  for (const hex of doc.values()) assert.ok(/^([0-9a-f]{2})+$/.test(hex), 'lowercase hex, whole bytes');
  const appendixB = section('B');
  for (const v of VECTORS.vectors) assert.ok(appendixB.includes(`\`${v.name}\``), `${v.name} listed in Appendix B`);
  // The stream and stable-address vectors are printed in full in their own sections.
  for (const v of streams) assert.is(doc.get(v.name), v.hex, `${v.name} in PROTOCOL.md`);
});

test('the vector blocks of PROTOCOL.md are exactly what the generator writes (tables included)', () => {
  try {
    execFileSync(process.execPath, [join(ROOT, 'spec', 'vectors', 'generate.mjs'), '--check'], { stdio: 'pipe' });
  } catch (err) {
    assert.unreachable(`generate.mjs --check failed: ${String((err as { stderr?: Buffer }).stderr ?? err)}`);
  }
});

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

// Section numbers: "## 7. ", "### 7.2 ", "## Appendix D. ", "### D.1 ".
const headings = new Set([...DOC.matchAll(/^#{2,3} (?:Appendix )?(\d+|[A-Z])(\.\d+)?[. ]/gm)].map((m) => m[1]! + (m[2] ?? '')));
const TAG = /\[P-((?:\d+|[A-Z])(?:\.\d+)?)\]/g;

test('every [P-x.y] tag in src/ and bin/ names a section of PROTOCOL.md', () => {
  let tags = 0;
  const missing: string[] = [];
  for (const dir of ['src', 'bin']) {
    let files: string[];
    try {
      files = sourceFiles(join(ROOT, dir));
    } catch {
      continue;
    }
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(TAG)) {
        tags++;
        if (!headings.has(m[1]!)) missing.push(`${relative(ROOT, file)}: [P-${m[1]}]`);
      }
    }
  }
  assert.ok(tags >= 20, `${tags} tags found`);
  assert.equal(missing, [], 'tags without a section');
});

test('every tag in PROTOCOL.md sits in the section it names, and every section with a MUST has its tag', () => {
  // The numbered sections and Appendix D (the envelope); appendices A-C are informative.
  const numbered = DOC.slice(DOC.search(/^## 2\./m), DOC.search(/^## Appendix A\./m));
  const envelope = DOC.slice(DOC.search(/^## Appendix D\./m));
  let checked = 0;
  for (const body of [numbered, envelope]) {
    const parts = body.split(/^(?=### (?:\d+|[A-Z])\.\d+ |## (?:\d+|Appendix [A-Z])\. )/m);
    for (const part of parts) {
      const m = /^#{2,3} (?:Appendix )?((?:\d+|[A-Z])(?:\.\d+)?)[. ]/.exec(part);
      assert.ok(m !== null, part.slice(0, 40));
      const num = m![1]!;
      for (const t of part.matchAll(/`\[P-([\dA-Z.]+)\]`/g)) assert.is(t[1], num, `tag [P-${t[1]}] inside section ${num}`);
      if (/\bMUST\b/.test(part.replace(/\*\*MUST\*\*/g, ''))) assert.ok(part.includes(`\`[P-${num}]\``), `section ${num} has a MUST but no [P-${num}] tag`);
      checked++;
    }
  }
  assert.ok(checked >= 50, `${checked} sections checked`);
});

test('§7.2 lists every wire code with its number; README.md "Error codes" lists every POSTERN_ERR code', () => {
  const s72 = section('7.2');
  for (const [name, num] of Object.entries(WireCode)) {
    assert.ok(new RegExp(`^\\| ${num} \\| ${name} \\|`, 'm').test(s72), `${num} ${name} in §7.2`);
  }
  const rows72 = s72.match(/^\| \d+ \| [A-Z_]+ \|/gm) ?? [];
  assert.is(rows72.length, Object.keys(WireCode).length, 'no extra codes in §7.2');
  // The JavaScript codes are not wire protocol: they live in README.md; §7.3 points there.
  assert.ok(section('7.3').includes('README.md'), '§7.3 points to README.md');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.search(/^## Error codes$/m);
  assert.ok(at >= 0, 'README.md has an "Error codes" section');
  const rest = readme.slice(at + 1);
  const codes = rest.slice(0, rest.search(/^## /m));
  for (const [name, code] of Object.entries(ErrorCode)) {
    const wire = (WireCode as Record<string, number>)[name];
    const cell = wire === undefined ? '— \\(local\\)' : String(wire);
    assert.ok(new RegExp(`^\\| \`${code}\` \\| ${cell} \\|`, 'm').test(codes), `${code} in README.md`);
  }
  const rows = codes.match(/^\| `POSTERN_ERR_[A-Z_]+` \|/gm) ?? [];
  assert.is(rows.length, Object.keys(ErrorCode).length, 'no extra codes in README.md');
});

test('§3.2 lists every frame type with the sizes the decoder enforces', () => {
  const s32 = section('3.2');
  for (const [name, t] of Object.entries(FrameType)) {
    const hex = `0x${t.toString(16).padStart(2, '0')}`;
    const row = new RegExp(`^\\| ${hex} \\| ${name} \\|[^|]*\\|[^|]*\\| (\\d+) \\| (\\w+) \\|`, 'm').exec(s32);
    assert.ok(row !== null, `${name} row`);
    assert.is(Number(row![1]), MIN_FRAME_SIZE[t], `${name} min`);
    const max = MAX_FRAME_SIZE_BY_TYPE[t];
    assert.is(row![2], max === undefined ? 'maxFrame' : String(max), `${name} max`);
  }
});

test('the default port and the examples use real vectors', () => {
  assert.ok(section('2.4').includes(`**${DEFAULT_PORT}**`));
  const ex = section('C');
  const names = new Set(VECTORS.vectors.map((v) => v.name));
  for (const m of ex.matchAll(/\| `([a-z0-9-]+)` \|/g)) assert.ok(names.has(m[1]!), `example step ${m[1]}`);
});

test.run();
