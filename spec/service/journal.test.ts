/**
 * Logs an operator can use under systemd: each line carries its syslog
 * priority when stdout is the journal (JOURNAL_STREAM names stdout), so `journalctl -p`
 * filters; never when stdout is something else; and the first line names the version.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, stdoutIsJournal } from '../../src/net/log.js';
import { BIN } from '../cli/proc.js';

const J = suite('service: syslog priorities for the journal, version at start');

J('priorityPrefix starts each line with <7>, <6>, <4>, <3> by level, in both formats', () => {
  for (const format of ['plain', 'json'] as const) {
    const lines: string[] = [];
    const log = createLogger({ format, level: 'debug', priorityPrefix: true, write: (l) => lines.push(l), now: () => 0 });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    assert.equal(
      lines.map((l) => l.slice(0, 3)),
      ['<7>', '<6>', '<4>', '<3>'],
      format,
    );
    if (format === 'json') assert.equal(JSON.parse(lines[2]!.slice(3)), { time: '1970-01-01T00:00:00.000Z', level: 'warn', msg: 'w' });
  }
  const plain: string[] = [];
  createLogger({ write: (l) => plain.push(l), now: () => 0 }).info('x');
  assert.is(plain[0], '1970-01-01T00:00:00.000Z INFO  x\n', 'no prefix unless asked');
});

J('stdoutIsJournal: only when JOURNAL_STREAM names stdout\'s device and inode', () => {
  const st = () => ({ dev: 2049, ino: 77 });
  assert.ok(stdoutIsJournal({ JOURNAL_STREAM: '2049:77' }, st));
  assert.not.ok(stdoutIsJournal({ JOURNAL_STREAM: '2049:78' }, st), 'stdout redirected elsewhere by the unit');
  assert.not.ok(stdoutIsJournal({}, st));
  assert.not.ok(stdoutIsJournal({ JOURNAL_STREAM: 'junk' }, st));
  assert.not.ok(
    stdoutIsJournal({ JOURNAL_STREAM: '1:1' }, () => {
      throw new Error('EBADF');
    }),
  );
});

/** Runs the router with stdout on a file; JOURNAL_STREAM names that file when `journal`. Returns its lines once it listens. */
async function routerLines(dir: string, journal: boolean, extra: string[] = []): Promise<string[]> {
  const path = join(dir, `out-${journal}-${extra.length}.log`);
  const fd = openSync(path, 'w');
  const st = fstatSync(fd);
  const env = { ...process.env, JOURNAL_STREAM: journal ? `${st.dev}:${st.ino}` : undefined, INVOCATION_ID: '0123456789abcdef0123456789abcdef' };
  const child = spawn(process.execPath, [BIN, 'router', '--host', '127.0.0.1', '--port', '0', '--metrics', '127.0.0.1:0', ...extra], { stdio: ['ignore', fd, 'pipe'], env });
  closeSync(fd);
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const text = readFileSync(path, 'utf8');
      if (text.includes('metrics listening')) return text.trimEnd().split('\n');
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no listening lines: ${text}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
  }
}

J('postern router: <6> before each line when stdout is the journal, none otherwise; the listening line names the version', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-journal-'));
  try {
    const version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    const journal = await routerLines(dir, true);
    assert.match(journal[0]!, new RegExp(`^<6>\\S+ INFO  listening host=127\\.0\\.0\\.1 port=\\d+ router=[0-9a-f]{8} version=${version.replaceAll('.', '\\.')}$`));
    assert.match(journal[1]!, /^<6>\S+ INFO  metrics listening /);
    const file = await routerLines(dir, false);
    assert.match(file[0]!, /^\d{4}-\S+ INFO  listening .* version=/, 'INVOCATION_ID alone is not the journal');
    const forced = await routerLines(dir, false, ['--log-prefix', 'syslog', '--log-format', 'json']);
    assert.is(forced[0]!.slice(0, 3), '<6>');
    assert.is((JSON.parse(forced[0]!.slice(3)) as { version: string }).version, version);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

J.run();
