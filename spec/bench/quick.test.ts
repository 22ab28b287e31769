import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The CI smoke run of the benchmarks: `run.js --quick` must finish, deliver every message
// in order (it exits non-zero otherwise) and say so. It asserts no speed.

const runJs = fileURLToPath(new URL('../../benchmarks/run.js', import.meta.url));

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runQuick(out: string): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [runJs, '--quick', '--out', out], { timeout: 90_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

test('bench --quick delivers every message in order and exits 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-'));
  try {
    const out = join(dir, 'quick.json');
    const r = await runQuick(out);
    assert.is(r.code, 0, `exit code ${r.code}\n${r.stdout}\n${r.stderr}`);
    const m = /RESULT: all in order \((\d+) messages sequence-checked\)/.exec(r.stdout);
    assert.ok(m !== null, r.stdout);
    assert.ok(Number(m![1]) > 0);

    const json = JSON.parse(readFileSync(out, 'utf8')) as {
      allInOrder: boolean;
      failures: string[];
      throughput: Array<{ system: string; inOrder: boolean; runs: Array<{ sent: number; received: number; lost: number; outOfOrder: number }> }>;
      scale: { agents: number; expired: number; lost: number } | null;
      e2e: { rows: Array<{ system: string; size: number; inOrder: boolean; runs: Array<{ sent: number; received: number; outOfOrder: number }> }> } | null;
      latency: Array<{
        system: string;
        fraction: number;
        probe: { p99: number };
        runs: Array<{ inOrder: boolean; latency?: { count: number } }>;
        probeRuns: Array<{ inOrder: boolean; latency?: { count: number } }>;
      }>;
    };
    assert.is(json.allInOrder, true);
    assert.equal(json.failures, []);
    const postern = json.throughput.filter((c) => c.system === 'postern');
    assert.ok(postern.length > 0, 'postern throughput cells ran');
    for (const c of json.throughput) {
      assert.ok(c.inOrder);
      for (const run of c.runs) {
        assert.ok(run.sent > 0);
        assert.is(run.received, run.sent);
        assert.is(run.lost, 0);
        assert.is(run.outOfOrder, 0);
      }
    }
    // Latency runs: the load's messages and the probe's were timed, and all arrived in order.
    assert.ok(json.latency.length > 0, 'latency cells ran');
    for (const row of json.latency) {
      assert.ok(row.probe.p99 > 0, `${row.system}: probe p99`);
      // fraction 0 is the probe alone, with no load
      assert.ok(row.probeRuns.length > 0 && row.runs.length === (row.fraction === 0 ? 0 : row.probeRuns.length));
      for (const run of [...row.runs, ...row.probeRuns]) {
        assert.ok(run.inOrder);
        assert.ok((run.latency?.count ?? 0) > 0);
      }
    }
    // End to end through the agent library: both receive styles and sealed, all in order.
    const e2e = json.e2e!.rows;
    for (const system of ['postern', 'postern-iter', 'sealed-anon', 'sealed-proof']) {
      assert.ok(e2e.some((r) => r.system === system), `e2e ${system} ran`);
    }
    for (const row of e2e) {
      assert.ok(row.inOrder, `e2e ${row.system} ${row.size} B in order`);
      for (const run of row.runs) {
        assert.ok(run.sent > 0);
        assert.is(run.received, run.sent);
        assert.is(run.outOfOrder, 0);
      }
    }
    assert.ok(json.scale !== null && json.scale.agents > 0);
    assert.is(json.scale!.expired, 0);
    assert.is(json.scale!.lost, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
