import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isHostPort, parseRouterAddress } from '../../src/net/address.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';

test('router addresses: host:port, [v6]:port, the default port, { host, port }', () => {
  assert.equal(parseRouterAddress('example.org:9000'), { host: 'example.org', port: 9000 });
  assert.equal(parseRouterAddress('example.org'), { host: 'example.org', port: 7447 });
  assert.equal(parseRouterAddress('[::1]:8000'), { host: '::1', port: 8000 });
  assert.equal(parseRouterAddress('[::1]'), { host: '::1', port: 7447 });
  assert.equal(parseRouterAddress({ host: 'h', port: 1 }), { host: 'h', port: 1 });
});

test('a bad address is INVALID_OPTION', () => {
  for (const bad of ['', 'h:0', 'h:65536', 'h:x', '::1:80', 'a b:1', 'h:1:2']) {
    try {
      parseRouterAddress(bad, 'peers');
      assert.unreachable(bad);
    } catch (err) {
      assert.is((err as PosternError).code, ErrorCode.INVALID_OPTION, bad);
    }
  }
});

test('isHostPort: a port is required', () => {
  for (const ok of ['h:1', 'example.org:65535', '[::1]:80']) assert.ok(isHostPort(ok), ok);
  for (const bad of ['h', 'h:0', 'h:65536', '[::1]', ':80', 'a b:1', 7447, null]) assert.not.ok(isHostPort(bad), String(bad));
});

test.run();
