import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AGENT_DEFAULTS, resolveAgentOptions, type AgentOptions } from '../../src/agent/options.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';
import { ManualClock } from '../../src/net/clock.js';
import { formatPublicKey, generateKeyPair } from '../../src/crypto/keys.js';

function invalid(o: unknown, option: string): void {
  try {
    resolveAgentOptions(o as AgentOptions);
  } catch (err) {
    assert.instance(err, PosternError);
    assert.is((err as PosternError).code, ErrorCode.INVALID_OPTION);
    // The option's name is part of the contract of INVALID_OPTION (not free text).
    assert.ok((err as Error).message.includes(option), `${(err as Error).message} names ${option}`);
    return;
  }
  assert.unreachable(`accepted ${JSON.stringify(o)}`);
}

test('defaults are frozen and resolved as documented', () => {
  assert.ok(Object.isFrozen(AGENT_DEFAULTS));
  const r = resolveAgentOptions();
  assert.is(r.host, '127.0.0.1');
  assert.is(r.port, 7447);
  assert.is(r.reconnect, true);
  assert.is(r.reconnectDelay, 250);
  assert.is(r.reconnectMaxDelay, 30000);
  assert.is(r.reconnectJitter, 'full');
  assert.is(r.maxReconnectAttempts, Infinity);
  assert.is(r.connectTimeout, 10000);
  assert.is(r.closeTimeout, 2000);
  assert.is(r.maxQueue, 1024);
  assert.is(r.maxStatusQueue, 64);
  assert.is(r.maxSendBuffer, 8 * 1024 * 1024);
  assert.is(r.resume, true);
  assert.is(r.anonymous, false);
  assert.is(r.token, undefined);
  assert.is(r.publicKey, undefined);
  assert.is(r.keyPair, undefined);
  assert.is(r.trustedKeys.size, 0);
  assert.is(r.verifyWithDirectory, true);
  assert.is(r.keyCacheSize, 256);
  assert.ok(Object.isFrozen(r));
});

test('overrides pass through', () => {
  const clock = new ManualClock();
  const r = resolveAgentOptions({ router: { host: 'h', port: 1 }, clock, maxQueue: 1, reconnectJitter: 'decorrelated', maxReconnectAttempts: 0, reconnect: false });
  assert.is(r.clock, clock);
  assert.is(r.host, 'h');
  assert.is(r.maxQueue, 1);
  assert.is(r.reconnectJitter, 'decorrelated');
  assert.is(r.maxReconnectAttempts, 0);
  assert.is(r.reconnect, false);
});

test('router addresses', () => {
  assert.equal(resolveAgentOptions({ router: '[::1]:8000' }).port, 8000);
  for (const bad of ['', 'h:0', 'h:65536', 'h:x', '::1:80', 'a b:1', 'h:1:2']) invalid({ router: bad }, 'router');
  invalid({ router: { host: '', port: 1 } }, 'router');
  invalid({ router: { host: 'h', port: 1.5 } }, 'router');
  invalid({ router: 7447 }, 'router');
});

test('each bad value names its option', () => {
  invalid({ reconnect: 'yes' }, 'reconnect');
  invalid({ reconnectDelay: -1 }, 'reconnectDelay');
  invalid({ reconnectDelay: 1.5 }, 'reconnectDelay');
  invalid({ reconnectDelay: 500, reconnectMaxDelay: 100 }, 'reconnectMaxDelay');
  invalid({ reconnectJitter: 'none' }, 'reconnectJitter');
  invalid({ maxReconnectAttempts: -1 }, 'maxReconnectAttempts');
  invalid({ connectTimeout: 0 }, 'connectTimeout');
  invalid({ connectTimeout: 2 ** 31 }, 'connectTimeout');
  invalid({ closeTimeout: NaN }, 'closeTimeout');
  invalid({ maxQueue: 0 }, 'maxQueue');
  invalid({ maxStatusQueue: 0 }, 'maxStatusQueue');
  invalid({ maxSendBuffer: -5 }, 'maxSendBuffer');
  invalid({ clock: {} }, 'clock');
  invalid({ createConnection: 5 }, 'createConnection');
  invalid({ signal: {} }, 'signal');
  invalid({ random: 1 }, 'random');
  invalid(null, 'options');
  invalid({ maxqueue: 5 }, 'maxqueue');
  invalid({ resume: 1 }, 'resume');
  invalid({ anonymous: 'no' }, 'anonymous');
  invalid({ token: 'short' }, 'token');
  invalid({ token: 'x'.repeat(257) }, 'token');
  invalid({ publicKey: new Uint8Array(31) }, 'publicKey');
});

test('keys: keyPair publishes its public key unless publishKey is false; pins are normalized', () => {
  const kp = generateKeyPair();
  const r = resolveAgentOptions({ keyPair: kp });
  assert.equal([...r.publicKey!], [...kp.publicKey]);
  assert.equal([...r.keyPair!.secretKey], [...kp.secretKey]);
  assert.is.not(r.keyPair!.secretKey, kp.secretKey, 'copied');
  assert.is(resolveAgentOptions({ keyPair: kp, publishKey: false }).publicKey, undefined);
  assert.equal([...resolveAgentOptions({ keyPair: kp, publicKey: Uint8Array.from(kp.publicKey) }).publicKey!], [...kp.publicKey]);
  const id = '0000000A' + 'ab'.repeat(12);
  const other = generateKeyPair().publicKey;
  const pins = resolveAgentOptions({ trustedKeys: { [id]: kp.publicKey, ['00000001' + '00'.repeat(12)]: formatPublicKey(other) } }).trustedKeys;
  assert.equal([...pins.keys()], [id.toLowerCase(), '00000001' + '00'.repeat(12)]);
  assert.equal([...pins.get('00000001' + '00'.repeat(12))!], [...other]);
  assert.is(resolveAgentOptions({ trustedKeys: new Map([[id, kp.publicKey]]) }).trustedKeys.size, 1);
});

test('bad key options name their option', () => {
  const kp = generateKeyPair();
  const id = '00000001' + 'ab'.repeat(12);
  invalid({ keyPair: { publicKey: kp.publicKey, secretKey: generateKeyPair().secretKey } }, 'keyPair');
  invalid({ keyPair: { publicKey: kp.publicKey } }, 'keyPair');
  invalid({ keyPair: 'file.key' }, 'keyPair');
  invalid({ keyPair: kp, publicKey: generateKeyPair().publicKey }, 'publicKey');
  invalid({ publicKey: kp.publicKey, publishKey: false }, 'publicKey');
  invalid({ publishKey: 1 }, 'publishKey');
  invalid({ trustedKeys: { nope: kp.publicKey } }, 'trustedKeys');
  invalid({ trustedKeys: { ['00000000' + 'ab'.repeat(12)]: kp.publicKey } }, 'trustedKeys');
  invalid({ trustedKeys: { [id]: new Uint8Array(31) } }, 'trustedKeys');
  invalid({ trustedKeys: { [id]: 'not base64' } }, 'trustedKeys');
  invalid({ trustedKeys: { [id]: new Uint8Array(32) } }, 'trustedKeys'); // small order
  invalid({ trustedKeys: 5 }, 'trustedKeys');
  invalid({ verifyWithDirectory: 'yes' }, 'verifyWithDirectory');
  invalid({ keyCacheSize: -1 }, 'keyCacheSize');
});

test.run();
