import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderUnit } from '../../bin/commands/unit.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { loadConfig, resolveConfig } from '../../src/router/config.js';

const UNIT = 'deploy/postern-router.service';

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

test('the systemd unit is hardened as documented', () => {
  const text = readFileSync(UNIT, 'utf8');
  for (const line of ['DynamicUser=yes', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'PrivateTmp=yes', 'LimitNOFILE=1048576', 'ExecReload=/bin/kill -HUP $MAINPID', 'KillSignal=SIGTERM']) {
    assert.ok(text.split('\n').includes(line), `missing ${line}`);
  }
});

test('systemd-analyze verify accepts the unit (where systemd-analyze exists)', () => {
  if (!has('systemd-analyze')) {
    console.log('  systemd-analyze not installed: unit not verified (see README for the manual check)');
    return;
  }
  const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.not.match(r.stderr, /Unknown (key|section)|Failed|invalid/i);
});

test('the shipped example config is valid and uses the defaults a user expects', () => {
  const c = resolveConfig(loadConfig('example.json'));
  assert.is(c.router.port, 7447);
  // No fixed routerId: copied to every host of a mesh, one ID would clash.
  assert.not.ok('routerId' in (JSON.parse(readFileSync('example.json', 'utf8')) as object));
  assert.equal(c.metrics, { host: '127.0.0.1', port: 9447 });
});

test('renderUnit: absolute, quoted ExecStart; refuses what the dynamic user could not read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-unit-'));
  try {
    chmodSync(dir, 0o755);
    const script = join(dir, 'my dir', 'postern.js');
    mkdirSync(dirname(script), { mode: 0o755 });
    writeFileSync(script, '', { mode: 0o644 });
    chmodSync(script, 0o644);
    const unit = renderUnit({ node: process.execPath, script, config: '/etc/postern/100%.json' });
    const exec = unit.split('\n').filter((l) => l.startsWith('ExecStart='));
    assert.equal(exec, [`ExecStart=${realpathSync(process.execPath)} "${script}" router --config /etc/postern/100%%.json`]);
    assert.ok(unit.includes('DynamicUser=yes'), 'the rest of the template is kept');

    const code = (f: () => unknown): string | undefined => {
      try {
        f();
        return undefined;
      } catch (err) {
        return (err as { code?: string }).code;
      }
    };
    // Under /root or /home: hidden by ProtectHome (exit 126 when the service starts).
    if (existsSync('/root')) assert.is(code(() => renderUnit({ node: '/root', script, config: 'x' })), ErrorCode.CONFIG);
    assert.is(code(() => renderUnit({ node: join(dir, 'missing'), script, config: 'x' })), ErrorCode.CONFIG);
    chmodSync(script, 0o600);
    assert.is(code(() => renderUnit({ node: process.execPath, script, config: 'x' })), ErrorCode.CONFIG, 'a script others cannot read');
    chmodSync(script, 0o644);
    chmodSync(dirname(script), 0o700);
    assert.is(code(() => renderUnit({ node: process.execPath, script, config: 'x' })), ErrorCode.CONFIG, 'a directory others cannot search');
    chmodSync(dirname(script), 0o755);
    assert.is(code(() => renderUnit({ node: process.execPath, script, config: 'x', template: '[Service]\n' })), ErrorCode.CONFIG, 'a template without ExecStart');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
