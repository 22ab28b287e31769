import { test } from 'uvu';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { isHostPort, parseEndpoint, parseEndpoints, parseRouterAddress } from '../../src/net/address.js';
import { noProxyMatches, parseProxy, proxyFromEnv } from '../../src/net/proxy.js';
import { resolveTransport, spkiPin } from '../../src/net/dial.js';
import { hasToken, parseHead, refusalResponse, UPGRADE_RESPONSE, upgradeRequest } from '../../src/net/upgrade.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';

function ep(text: string): [string, string, number, string] {
  const e = parseEndpoint(text);
  return [e.scheme, e.host, e.port, e.path];
}

function invalid(f: () => unknown): void {
  try {
    f();
  } catch (err) {
    assert.instance(err, PosternError);
    assert.is((err as PosternError).code, ErrorCode.INVALID_OPTION);
    return;
  }
  assert.unreachable('accepted');
}

test('address forms and their defaults', () => {
  assert.equal(ep('example.org'), ['tcp', 'example.org', 7447, '']);
  assert.equal(ep('example.org:9'), ['tcp', 'example.org', 9, '']);
  assert.equal(ep('[::1]:8'), ['tcp', '::1', 8, '']);
  assert.equal(ep('tcp://h'), ['tcp', 'h', 7447, '']);
  assert.equal(ep('tls://h'), ['tls', 'h', 443, '']);
  assert.equal(ep('TLS://h:8443/'), ['tls', 'h', 8443, '']);
  assert.equal(ep('tls://[2001:db8::1]'), ['tls', '2001:db8::1', 443, '']);
  assert.equal(ep('ws://h'), ['ws', 'h', 80, '/postern']);
  assert.equal(ep('ws://h:80/x'), ['ws', 'h', 80, '/x']);
  assert.equal(ep('wss://h/'), ['wss', 'h', 443, '/']);
  assert.equal(ep('wss://h:443/a/b'), ['wss', 'h', 443, '/a/b']);
  assert.equal(ep('http://h'), ['http', 'h', 80, '/postern']);
  assert.equal(ep('https://h:8443'), ['https', 'h', 8443, '/postern']);
  assert.is(parseEndpoint('wss://[::1]:9/p').url, 'wss://[::1]:9/p');
  assert.is(parseEndpoint('h').url, 'tcp://h:7447');
  for (const bad of ['', 'ftp://h', 'tls://h/path', 'tcp://u:p@h', 'wss://h/?q=1', 'wss://h/#f', 'h:0', 'h:70000', 'tls://h:0', 'a b:1', 'tls://', 'ws://:80']) {
    invalid(() => parseEndpoint(bad));
  }
});

test('lists: commas or arrays, 1..16 entries, { host, port } is tcp', () => {
  assert.equal(
    parseEndpoints('tls://a, wss://b/p ,c:1').map((e) => e.url),
    ['tls://a:443', 'wss://b:443/p', 'tcp://c:1'],
  );
  assert.equal(
    parseEndpoints(['a', 'tls://b']).map((e) => e.scheme),
    ['tcp', 'tls'],
  );
  assert.is(parseEndpoints({ host: 'h', port: 5 })[0]!.url, 'tcp://h:5');
  invalid(() => parseEndpoints([]));
  invalid(() => parseEndpoints('a,'));
  invalid(() => parseEndpoints(Array.from({ length: 17 }, () => 'a')));
  invalid(() => parseEndpoints({ host: '', port: 5 }));
  invalid(() => parseEndpoints({ host: 'h', port: 0 }));
});

test('proxy URLs', () => {
  const p = parseProxy('http://us%40er:p%3Aw@proxy:3128');
  assert.equal([p.kind, p.host, p.port, p.username, p.password, p.display], ['http', 'proxy', 3128, 'us@er', 'p:w', 'http://proxy:3128']);
  assert.equal([parseProxy('proxy').kind, parseProxy('proxy').port], ['http', 80]);
  assert.equal([parseProxy('socks5://s').kind, parseProxy('socks5://s').port], ['socks5', 1080]);
  assert.is(parseProxy('socks5h://s:9').kind, 'socks5h');
  assert.is(parseProxy('socks://s').kind, 'socks5h');
  assert.is(parseProxy('http://[::1]:8').host, '::1');
  for (const bad of ['', 'https://p', 'socks4://p', 'http://']) invalid(() => parseProxy(bad));
});

test('proxy environment as curl reads it; the explicit option wins', () => {
  const tls = parseEndpoint('tls://r.example.com');
  const ws = parseEndpoint('ws://r.example.com');
  const tcp = parseEndpoint('10.1.2.3:7447');
  assert.is(proxyFromEnv(tls, { HTTPS_PROXY: 'http://a:1' }), 'http://a:1');
  assert.is(proxyFromEnv(tls, { https_proxy: 'http://low:1', HTTPS_PROXY: 'http://up:1' }), 'http://low:1');
  assert.is(proxyFromEnv(tcp, { HTTPS_PROXY: 'http://a:1' }), 'http://a:1');
  assert.is(proxyFromEnv(ws, { HTTPS_PROXY: 'http://a:1' }), undefined);
  assert.is(proxyFromEnv(ws, { http_proxy: 'http://b:1' }), 'http://b:1');
  assert.is(proxyFromEnv(ws, { HTTP_PROXY: 'http://b:1' }), undefined); // upper case ignored, as curl does
  assert.is(proxyFromEnv(ws, { ALL_PROXY: 'socks5h://c:1' }), 'socks5h://c:1');
  assert.is(proxyFromEnv(tls, { all_proxy: 'socks5://c:1', HTTPS_PROXY: 'http://a:1' }), 'http://a:1');
  assert.is(proxyFromEnv(tls, { HTTPS_PROXY: '  ' }), undefined);
  assert.is(proxyFromEnv(tls, { HTTPS_PROXY: 'http://a:1', NO_PROXY: 'example.com' }), undefined);
  assert.is(proxyFromEnv(tls, { HTTPS_PROXY: 'http://a:1', no_proxy: 'other.com', NO_PROXY: 'example.com' }), 'http://a:1');
  assert.is(proxyFromEnv(tcp, { HTTPS_PROXY: 'http://a:1', NO_PROXY: '10.0.0.0/8' }), undefined);
  // The option, when given, is used whatever the environment says.
  const t = resolveTransport({ proxy: 'http://x:1', env: { NO_PROXY: '*' } });
  assert.is(typeof t.proxy === 'object' && t.proxy !== null ? t.proxy.host : '', 'x');
  assert.is(resolveTransport({ proxy: false, env: { HTTPS_PROXY: 'http://a:1' } }).proxy, null);
  assert.is(resolveTransport({}).proxy, null);
});

test('NO_PROXY matching', () => {
  const yes: [string, string][] = [
    ['a.example.com', 'example.com'],
    ['example.com', 'example.com'],
    ['a.example.com', '.example.com'],
    ['EXAMPLE.com', 'example.COM'],
    ['x', '*'],
    ['10.1.2.3', '10.1.2.3'],
    ['10.1.2.3', '10.0.0.0/8'],
    ['::1', '::1'],
    ['fd00::5', 'fd00::/8'],
    ['a.example.com', 'foo, example.com:443'],
  ];
  const no: [string, string][] = [
    ['badexample.com', 'example.com'],
    ['example.com', 'a.example.com'],
    ['10.1.2.3', '10.1.2.4'],
    ['11.1.2.3', '10.0.0.0/8'],
    ['10.1.2.3', '10.1'],
    ['x', ''],
    ['x', 'junk/99'],
  ];
  for (const [h, l] of yes) assert.ok(noProxyMatches(h, l), `${h} in ${l}`);
  for (const [h, l] of no) assert.not.ok(noProxyMatches(h, l), `${h} not in ${l}`);
});

test('transport options are checked', () => {
  invalid(() => resolveTransport({ proxy: 5 as never }));
  invalid(() => resolveTransport({ ca: '/nonexistent/ca.pem' }));
  invalid(() => resolveTransport({ ca: Buffer.from('not pem') }));
  invalid(() => resolveTransport({ pin: 'sha1/abc' }));
  invalid(() => resolveTransport({ pin: 'sha256/short' }));
  invalid(() => resolveTransport({ insecure: 'yes' as never }));
  assert.is(resolveTransport({ pin: `sha256/${Buffer.alloc(32, 1).toString('base64')}` }).pin!.length, 32);
  assert.throws(() => spkiPin('nope'));
});

test('HTTP upgrade bytes are those of PROTOCOL.md §13.3', () => {
  assert.is(upgradeRequest('/postern', 'r.example.com').toString('latin1'), 'GET /postern HTTP/1.1\r\nHost: r.example.com\r\nConnection: Upgrade\r\nUpgrade: postern\r\n\r\n');
  assert.is(UPGRADE_RESPONSE.toString('latin1'), 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: postern\r\n\r\n');
  assert.match(refusalResponse(426).toString(), /^HTTP\/1\.1 426 Upgrade Required\r\nUpgrade: postern\r\n/);
  const h = parseHead('GET /p HTTP/1.1\r\nUpgrade: WebSocket, Postern\r\nX-A: 1\r\nx-a: 2');
  assert.equal(h!.line, ['GET', '/p', 'HTTP/1.1']);
  assert.is(h!.headers['x-a'], '1, 2');
  assert.ok(hasToken(h!.headers['upgrade'], 'postern'));
  assert.not.ok(hasToken(undefined, 'postern'));
  assert.is(parseHead('garbage'), null);
  assert.is(parseHead('GET / HTTP/1.1\r\nbad header line'), null);
});

test('the §13 vectors in PROTOCOL.md are the bytes the code sends', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../../PROTOCOL.md', import.meta.url)), 'utf8');
  const sec = doc.slice(doc.indexOf('## 13. Transports'), doc.indexOf('## Appendix A'));
  const hexAfter = (marker: string): string => {
    const at = sec.indexOf(marker);
    assert.ok(at >= 0, marker);
    const blocks = sec.slice(at).split('```');
    // the first code block after the marker that is hex
    for (let i = 1; i < blocks.length; i += 2) if (/^\s*([0-9a-f]{2}\s+)+$/.test(blocks[i]! + ' ')) return blocks[i]!.replace(/\s+/g, '');
    return '';
  };
  assert.is(hexAfter('vector `upgrade-request`'), upgradeRequest('/postern', 'router.example.com').toString('hex'));
  assert.is(hexAfter('vector\n`upgrade-response`'), UPGRADE_RESPONSE.toString('hex'));
  assert.is(hexAfter('ProtocolNameList'), '000a09' + Buffer.from('postern/1').toString('hex'));
  const text426 = sec.slice(sec.indexOf('vector `http-426`'));
  const block = text426.split('```')[1]!.replace(/^\n/, '').split('\n').join('').replace(/\\r\\n/g, '\r\n').replace(/\\n/g, '\n');
  assert.is(block, refusalResponse(426).toString('latin1'));
});

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
