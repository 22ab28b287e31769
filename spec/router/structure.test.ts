/**
 * The shape of src/, checked: files small enough to read (a file over 500 lines says why
 * at its top), the router and the agent independent of each other, and no import cycle
 * among the router's files or among the agent's. Imports are read from the TypeScript
 * sources, `import type` included: a cycle of types is still a cycle for a reader.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const S = suite('structure');
const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));
const MAX_LINES = 500;


function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

const FILES = sources(SRC).map((p) => relative(SRC, p));
const TEXT = new Map(FILES.map((f) => [f, readFileSync(join(SRC, f), 'utf8')]));

/** The src-relative files `file` imports or re-exports (relative specifiers only). */
export function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  // `import ... from '...'`, `export ... from '...'`, `import '...'`; specifiers end in .js.
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'";]*?(?:\bfrom\s*)?['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    out.push(relative(SRC, resolve(SRC, dirname(file), m[1]!.replace(/\.js$/, '.ts'))));
  }
  return out;
}

const GRAPH = new Map(FILES.map((f) => [f, importsOf(f, TEXT.get(f)!)]));

/** Every cycle reachable among `files`, each as a path that returns to its start. */
export function cycles(graph: Map<string, string[]>, files: string[]): string[][] {
  const inSet = new Set(files);
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const g of graph.get(f) ?? []) {
      if (!inSet.has(g)) continue;
      if (state.get(g) === 'open') found.push([...stack.slice(stack.indexOf(g)), g]);
      else if (state.get(g) === undefined) visit(g);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (state.get(f) === undefined) visit(f);
  return found;
}

S('the import reader finds every kind of relative import', () => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    "export { c } from './c.js';",
    "export * from './d/e.js';",
    'import {',
    '  f,',
    "} from './f.js';",
    "import './side.js';",
    "import net from 'node:net';",
  ].join('\n');
  assert.equal(importsOf('router/x.ts', text), ['router/a.ts', 'b.ts', 'router/c.ts', 'router/d/e.ts', 'router/f.ts', 'router/side.ts']);
  assert.equal(
    cycles(
      new Map([
        ['a', ['b']],
        ['b', ['c']],
        ['c', ['a']],
        ['d', ['a']],
      ]),
      ['a', 'b', 'c', 'd'],
    ),
    [['a', 'b', 'c', 'a']],
  );
});

S(`no file under src/ is over ${MAX_LINES} lines unless its top says why`, () => {
  const long: string[] = [];
  for (const [f, text] of TEXT) {
    const lines = text.split('\n').length;
    if (lines <= MAX_LINES) continue;
    // The note: within the first 20 lines, a sentence naming the limit ("over 500 lines because ...").
    const top = text.split('\n').slice(0, 20).join('\n');
    if (!new RegExp(`\\b${MAX_LINES} lines\\b`).test(top)) long.push(`${f} (${lines} lines)`);
  }
  assert.equal(long, []);
});

S('the router and the agent do not import each other', () => {
  const crossing: string[] = [];
  for (const [f, deps] of GRAPH) {
    for (const d of deps) {
      if ((f.startsWith('router/') && d.startsWith('agent/')) || (f.startsWith('agent/') && d.startsWith('router/'))) crossing.push(`${f} -> ${d}`);
    }
  }
  assert.equal(crossing, []);
  assert.ok(FILES.filter((f) => f.startsWith('router/')).length >= 8, 'the router files were found');
});

S('no comment in src/ cites an issue number (say why, not which ticket)', () => {
  const citing = [...TEXT].filter(([, text]) => /\bissues? ?#?\d+/i.test(text)).map(([f]) => f);
  assert.equal(citing, []);
});

S('no import cycle among the router files', () => {
  const router = FILES.filter((f) => f.startsWith('router/'));
  assert.equal(
    cycles(GRAPH, router).map((c) => c.join(' -> ')),
    [],
  );
  // The graph is real: the router reaches its connection and the mesh.
  assert.ok(GRAPH.get('router/router.ts')!.includes('router/connection.ts'));
  assert.ok(GRAPH.get('router/router.ts')!.includes('router/mesh/mesh.ts'));
});

S('no import cycle among the agent files', () => {
  const agent = FILES.filter((f) => f.startsWith('agent/'));
  assert.equal(
    cycles(GRAPH, agent).map((c) => c.join(' -> ')),
    [],
  );
  // The graph is real: the facade reaches its connection lifecycle, which reaches the session.
  assert.ok(GRAPH.get('agent/agent.ts')!.includes('agent/lifecycle.ts'));
  assert.ok(GRAPH.get('agent/lifecycle.ts')!.includes('agent/session.ts'));
});

S.run();
