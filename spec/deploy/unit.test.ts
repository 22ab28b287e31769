import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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
  // No fixed routerId: copied to every host of a mesh, one ID would clash (issue 10, item 8).
  assert.not.ok('routerId' in (JSON.parse(readFileSync('example.json', 'utf8')) as object));
  assert.equal(c.metrics, { host: '127.0.0.1', port: 9447 });
});

test.run();
