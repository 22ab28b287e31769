import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as crypto from '../../src/crypto/index.js';

test('the public surface of src/crypto: every promised name is there and works end to end', () => {
  for (const name of ['seal', 'open', 'sealBox', 'openBox', 'generateKeyPair', 'keyPairFromSecretKey', 'formatPublicKey', 'parsePublicKey', 'saveKeyFile', 'loadKeyFile', 'parseKeyFile', 'paddedSize']) {
    assert.type((crypto as Record<string, unknown>)[name], 'function', name);
  }
  assert.not.ok('sealWithEphemeral' in crypto, 'fixed-ephemeral sealing stays internal');
  assert.not.ok('sealBoxWithEphemeral' in crypto, 'fixed-ephemeral sealing stays internal');
  const alice = crypto.generateKeyPair();
  const bob = crypto.generateKeyPair();
  const env = crypto.seal({
    content: 'hi bob',
    recipientPublicKey: crypto.parsePublicKey(crypto.formatPublicKey(bob.publicKey)),
    sender: { id: '0000000100000000000000000000000a', keyPair: alice },
    pad: true,
  });
  assert.is(env.length, 256);
  const got = crypto.open(env, bob);
  assert.is(new TextDecoder().decode(got.content), 'hi bob');
  assert.is(crypto.formatPublicKey(got.sender!.publicKey), crypto.formatPublicKey(alice.publicKey));
  assert.ok(got.verified);
});

test.run();
