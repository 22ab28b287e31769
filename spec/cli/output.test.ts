/**
 * The CLI's formats and argument parsers, in process: message lines, error lines, exit
 * statuses, integers and router addresses.
 */
import { InvalidArgumentError } from 'commander';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { formatAddress, integerIn, parseListenPort, parseRouter } from '../../bin/args.js';
import { ExitStatus, codeOf, dialError, escapeLine, exitStatusFor, formatError, listenError, messageJson, messagePlain, utf8OrUndefined } from '../../bin/output.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';

const FROM = '00000bee6c1f9e0a4d2b7c5e81f3a9d2';

const messages = suite('cli output: messages');

messages('JSON: UTF-8 payloads as text, anything else as base64 with "encoding"', () => {
  assert.is(messageJson(FROM, Buffer.from('héllo\n'), false), `{"type":"message","from":"${FROM}","data":"héllo\\n"}`);
  assert.is(messageJson(FROM, Uint8Array.of(0xff, 0xfe), false), `{"type":"message","from":"${FROM}","data":"//4=","encoding":"base64"}`);
  assert.is(messageJson(FROM, Buffer.from('hi'), true), `{"type":"message","from":"${FROM}","data":"aGk=","encoding":"base64"}`);
  assert.is(messageJson(FROM, new Uint8Array(0), false), `{"type":"message","from":"${FROM}","data":""}`);
});

messages('JSON base64 of a view encodes only the view', () => {
  const backing = Buffer.from('xxhixx');
  assert.is(JSON.parse(messageJson(FROM, backing.subarray(2, 4), true)).data, 'aGk=');
});

messages('plain: one trailing newline dropped, non-UTF-8 as base64:', () => {
  assert.is(messagePlain(FROM, Buffer.from('hello\n'), false), `${FROM} hello`);
  assert.is(messagePlain(FROM, Buffer.from('hello\r\n'), false), `${FROM} hello`);
  assert.is(messagePlain(FROM, Buffer.from('a\n\n'), false), `${FROM} a\\n`, 'the second newline is escaped: one line per message');
  assert.is(messagePlain(FROM, Buffer.from('hello'), false), `${FROM} hello`);
  assert.is(messagePlain(FROM, Uint8Array.of(0xc3), false), `${FROM} base64:ww==`);
  assert.is(messagePlain(FROM, Buffer.from('hi'), true), `${FROM} base64:aGk=`);
});

messages('utf8OrUndefined is strict', () => {
  assert.is(utf8OrUndefined(Buffer.from('✓')), '✓');
  assert.is(utf8OrUndefined(Uint8Array.of(0xed, 0xa0, 0x80)), undefined); // a lone surrogate
  assert.is(utf8OrUndefined(Uint8Array.of(0xc0, 0x80)), undefined); // overlong NUL
});

messages.run();

const errors = suite('cli output: errors and exit statuses');

errors('formatError: one line, code first, no repeated code', () => {
  const e = new PosternError(ErrorCode.UNKNOWN_DESTINATION, 'no such agent');
  assert.is(formatError(e), 'error: POSTERN_ERR_UNKNOWN_DESTINATION: no such agent');
  const dup = new PosternError(ErrorCode.CLOSED, `${ErrorCode.CLOSED}: closed\nreally`);
  assert.is(formatError(dup), 'error: POSTERN_ERR_CLOSED: closed really');
  assert.is(formatError('plain string'), 'error: POSTERN_ERR_INTERNAL: plain string');
});

errors('formatError names a socket error behind a coded one, once', () => {
  const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  const e = new PosternError(ErrorCode.CONNECTION_LOST, 'could not connect', { cause });
  assert.is(formatError(e), 'error: POSTERN_ERR_CONNECTION_LOST: could not connect (ECONNREFUSED)');
  const named = new PosternError(ErrorCode.CONNECTION_LOST, 'connect ECONNREFUSED 127.0.0.1:1', { cause });
  assert.is(formatError(named), 'error: POSTERN_ERR_CONNECTION_LOST: connect ECONNREFUSED 127.0.0.1:1');
});

errors('formatError shortens Node system errors', () => {
  const e = Object.assign(new Error('listen EADDRINUSE: address already in use 0.0.0.0:7447'), { code: 'EADDRINUSE', syscall: 'listen' });
  assert.is(formatError(e), 'error: EADDRINUSE: listen: address already in use 0.0.0.0:7447');
});

errors('dialError and listenError turn system errors into documented codes', () => {
  const sys = (code: string): Error => Object.assign(new Error(`x ${code}`), { code });
  const lost = (code: string): PosternError => new PosternError(ErrorCode.CONNECTION_LOST, 'connection error', { cause: sys(code) });
  assert.is(codeOf(dialError(lost('ECONNREFUSED'), '127.0.0.1:1')), ErrorCode.CONNECT_FAILED);
  assert.is(codeOf(dialError(lost('EHOSTUNREACH'), '10.0.0.1:7447')), ErrorCode.CONNECT_FAILED);
  assert.is(codeOf(dialError(lost('ENOTFOUND'), 'nohost:7447')), ErrorCode.UNKNOWN_HOST);
  assert.is(codeOf(dialError(lost('ECONNRESET'), 'h:1')), ErrorCode.CONNECTION_LOST, 'a connection that opened and then broke is lost');
  assert.is(formatError(dialError(lost('ECONNREFUSED'), '127.0.0.1:1')), 'error: POSTERN_ERR_CONNECT_FAILED: router 127.0.0.1:1: connection refused: no router listens there (ECONNREFUSED)');
  assert.is(codeOf(listenError(sys('EADDRINUSE'), 'router', '0.0.0.0', 7447)), ErrorCode.LISTEN_FAILED);
  assert.is(codeOf(listenError(sys('EACCES'), 'router', '0.0.0.0', 80)), ErrorCode.LISTEN_FAILED);
  assert.is(codeOf(listenError(sys('EADDRNOTAVAIL'), 'router', '10.9.9.9', 7447)), ErrorCode.INVALID_OPTION);
  assert.is(codeOf(listenError(sys('ENOTFOUND'), 'metrics', 'nohost', 9447)), ErrorCode.UNKNOWN_HOST);
  assert.match(formatError(listenError(sys('EADDRINUSE'), 'metrics', '::1', 9447)), /^error: POSTERN_ERR_LISTEN_FAILED: metrics \[::1\]:9447: /);
  const other = sys('EIO');
  assert.is(listenError(other, 'router', 'h', 1), other);
});

errors('messagePlain keeps one message on one line: line breaks, controls and backslashes escaped', () => {
  const id = 'b081a71a5e0c2f94d1a3b6e7c8f90a12';
  assert.is(messagePlain(id, Buffer.from('a\nb\n'), false), `${id} a\\nb`);
  assert.is(messagePlain(id, Buffer.from('tab\there\r\n'), false), `${id} tab\there`);
  assert.is(escapeLine('x\\n\r\x00\x1b\x7f\u2028\u2029\u0085é'), 'x\\\\n\\r\\x00\\x1b\\x7f\\u2028\\u2029\\u0085é');
  assert.not.match(messagePlain(id, Buffer.from('1\n2\r3\u20284'), false), /[\n\r\u2028]/);
});

errors('exit statuses by code', () => {
  const status = (code: ErrorCode): number => exitStatusFor(new PosternError(code, 'x'));
  assert.is(status(ErrorCode.INVALID_ID), ExitStatus.USAGE);
  assert.is(status(ErrorCode.INVALID_OPTION), ExitStatus.USAGE);
  assert.is(status(ErrorCode.INVALID_ARGUMENT), ExitStatus.USAGE);
  assert.is(status(ErrorCode.UNKNOWN_DESTINATION), ExitStatus.REFUSED);
  assert.is(status(ErrorCode.UNREACHABLE_ROUTER), ExitStatus.REFUSED);
  assert.is(status(ErrorCode.FRAME_TOO_LARGE), ExitStatus.REFUSED);
  assert.is(status(ErrorCode.GOING_AWAY), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.CONNECTION_LOST), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.CONNECT_TIMEOUT), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.NOT_DELIVERED), ExitStatus.REFUSED);
  assert.is(status(ErrorCode.MESSAGE_TOO_LARGE), ExitStatus.REFUSED);
  assert.is(status(ErrorCode.SEND_BUFFER_FULL), ExitStatus.REFUSED);
  assert.is(status(ErrorCode.BAD_MAGIC), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.KEEPALIVE_TIMEOUT), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.NORMAL), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.NOT_SENT), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.CLOSED), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.CONFIG), ExitStatus.USAGE);
  assert.is(status(ErrorCode.KEY_FILE_INSECURE), ExitStatus.USAGE);
  assert.is(status(ErrorCode.SEAL_OPEN_FAILED), ExitStatus.FAILURE);
  assert.is(status(ErrorCode.INTERNAL), ExitStatus.FAILURE);
  assert.is(exitStatusFor(Object.assign(new Error('x'), { code: 'EADDRINUSE' })), ExitStatus.CONNECTION);
  // A wrong token is a refusal (a retrying script must not spin on it).
  assert.is(status(ErrorCode.ADMISSION_DENIED), ExitStatus.REFUSED);
  assert.is(status(ErrorCode.UNKNOWN_HOST), ExitStatus.USAGE);
  assert.is(status(ErrorCode.CONNECT_FAILED), ExitStatus.CONNECTION);
  assert.is(status(ErrorCode.LISTEN_FAILED), ExitStatus.CONNECTION);
  assert.is(exitStatusFor(new TypeError('bug')), ExitStatus.FAILURE);
  assert.is(exitStatusFor(Object.assign(new Error('x'), { code: 'ERR_SOMETHING' })), ExitStatus.FAILURE);
  assert.is(codeOf(null), ErrorCode.INTERNAL);
  assert.is(codeOf({ code: '' }), ErrorCode.INTERNAL);
});

errors('every code from the router has a deliberate status: ERROR codes 3, CLOSE codes 4', () => {
  for (const code of Object.values(ErrorCode)) {
    const e = new PosternError(code, 'x');
    // INTERNAL is a bug (1); FRAME_TOO_LARGE reaches the CLI only from send()'s own size check (3);
    // DRAINING (a reserved ERROR code on the wire) reaches it only as the agent's own reason
    // for leaving a draining router: the connection ends (4).
    if (e.wireCode === undefined || code === ErrorCode.INTERNAL || code === ErrorCode.FRAME_TOO_LARGE || code === ErrorCode.DRAINING) continue;
    // A CLOSE code, but a refusal: retrying with the same token cannot succeed.
    if (code === ErrorCode.ADMISSION_DENIED) {
      assert.is(exitStatusFor(e), ExitStatus.REFUSED, code);
      continue;
    }
    assert.is(exitStatusFor(e), e.wireCode >= 1 && e.wireCode <= 63 ? ExitStatus.REFUSED : ExitStatus.CONNECTION, code);
  }
});

errors('DRAINING ends the connection: status 4 (listen --no-reconnect on a draining router)', () => {
  assert.is(exitStatusFor(new PosternError(ErrorCode.DRAINING, 'x')), ExitStatus.CONNECTION);
});

errors.run();

const args = suite('cli arguments');

args('integerIn accepts plain decimals in range, hex only when asked', () => {
  const p = integerIn(1, 0xffffffff, true);
  assert.is(p('7'), 7);
  assert.is(p(' 4294967295 '), 0xffffffff);
  assert.is(p('0xBEE'), 0xbee);
  for (const bad of ['0', '4294967296', '-1', '+1', '1.5', '1e3', '', ' ', '0x', '0x100000000', '07', 'abc']) {
    assert.throws(() => p(bad), (e: unknown) => e instanceof InvalidArgumentError, bad);
  }
  assert.throws(() => integerIn(0, 10)('0x1'), (e: unknown) => e instanceof InvalidArgumentError);
  assert.is(parseListenPort('0'), 0);
  assert.throws(() => parseListenPort('65536'), (e: unknown) => e instanceof InvalidArgumentError);
});

args('parseRouter: host:port, host, [v6]:port; bad input is InvalidArgumentError', () => {
  assert.equal(parseRouter('10.0.0.5:9000'), { host: '10.0.0.5', port: 9000 });
  assert.equal(parseRouter('example.org'), { host: 'example.org', port: 7447 });
  assert.equal(parseRouter(' [::1]:7000 '), { host: '::1', port: 7000 });
  assert.equal(parseRouter('[::1]'), { host: '::1', port: 7447 });
  assert.equal(parseRouter('tls://r.example.com, wss://b/p'), { host: 'r.example.com', port: 443, list: ['tls://r.example.com', 'wss://b/p'] });
  assert.equal(parseRouter('a:1,b'), { host: 'a', port: 1, list: ['a:1', 'b'] });
  for (const bad of ['tls://h/p', 'ftp://h', 'a,', 'a b:1', 'h:0', 'h:65536', 'h:x', '::1:7447', '', ':7447']) {
    assert.throws(() => parseRouter(bad), (e: unknown) => e instanceof InvalidArgumentError, bad);
  }
});

args('formatAddress brackets IPv6', () => {
  assert.is(formatAddress('127.0.0.1', 7447), '127.0.0.1:7447');
  assert.is(formatAddress('::1', 7447), '[::1]:7447');
});

args.run();
