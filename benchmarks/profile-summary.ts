/**
 * Summarises a V8 `.cpuprofile` (from `npm run bench -- --profile`, which runs the router
 * under `node --cpu-prof`): self time by function and by file, and total (inclusive) time of
 * the router's own functions. `node dist/benchmarks/profile-summary.js <file> [top]`.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write('usage: profile-summary <file.cpuprofile> [top]\n');
  process.exit(2);
}
const top = Number(process.argv[3] ?? 25);
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const selfUs = new Map<number, number>();
for (let i = 0; i < p.samples.length; i++) {
  const id = p.samples[i]!;
  selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const short = (url: string): string => url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:') || '(native)';
const name = (n: Node): string => `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

const fnSelf = new Map<string, number>();
const fileSelf = new Map<string, number>();
const fnTotal = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  fnSelf.set(name(n), (fnSelf.get(name(n)) ?? 0) + us);
  const f = n.callFrame.url === '' ? `(${n.callFrame.functionName || 'native'})` : short(n.callFrame.url);
  fileSelf.set(f, (fileSelf.get(f) ?? 0) + us);
  // Inclusive time: every distinct function on the stack gets the sample once.
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = name(byId.get(cur)!);
    if (seen.has(k)) continue;
    seen.add(k);
    fnTotal.set(k, (fnTotal.get(k) ?? 0) + us);
  }
}

const pct = (us: number): string => `${((us / total) * 100).toFixed(1).padStart(5)} %`;
const show = (title: string, m: Map<string, number>, filter?: (k: string) => boolean): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...m].filter(([k]) => filter?.(k) ?? true).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`);
  }
};
process.stdout.write(`${file}: ${(total / 1e6).toFixed(2)} s sampled over ${((p.endTime - p.startTime) / 1e6).toFixed(2)} s\n`);
show('self time by function', fnSelf);
show('self time by file', fileSelf);
show('inclusive time, postern and node:net/stream functions', fnTotal, (k) => /dist\/src|node:/.test(k));
