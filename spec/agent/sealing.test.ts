import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { replyOptions, sealTarget } from '../../src/agent/sealing.js';
import type { Message } from '../../src/agent/message.js';
import { ErrorCode, PosternError } from '../../src/protocol/errors.js';

// The one resolver of seal options for send(), sendSealed() and replies.

const key = new Uint8Array(32).fill(7);
const pinned = new Uint8Array(32).fill(9);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof PosternError ? err.code : 'not coded';
  }
  return undefined;
}

test('send(): plain unless seal is given; prove/pad/bind without seal refused', () => {
  assert.is(sealTarget(undefined, undefined, 'send'), null);
  assert.is(sealTarget({ seal: false }, undefined, 'send'), null);
  assert.is(code(() => sealTarget({ prove: true }, undefined, 'send')), ErrorCode.INVALID_ARGUMENT);
  assert.is(code(() => sealTarget({ bind: false }, undefined, 'send')), ErrorCode.INVALID_ARGUMENT);
  assert.is(code(() => sealTarget({ seal: null as never }, undefined, 'send')), ErrorCode.INVALID_ARGUMENT);
});

test('send(): seal true needs a pin and binds; an explicit key does not bind', () => {
  assert.is(code(() => sealTarget({ seal: true }, undefined, 'send')), ErrorCode.INVALID_ARGUMENT);
  assert.equal(sealTarget({ seal: true }, pinned, 'send'), { key: pinned, bindByDefault: true });
  assert.equal(sealTarget({ seal: { publicKey: key } }, pinned, 'send'), { key, bindByDefault: false });
});

test('sendSealed(): seals by default, looks up without a pin, refuses seal false', () => {
  assert.equal(sealTarget({}, undefined, 'sendSealed'), { key: undefined, bindByDefault: true });
  assert.equal(sealTarget({ seal: null as never }, pinned, 'sendSealed'), { key: pinned, bindByDefault: true });
  assert.is(code(() => sealTarget({ seal: false }, pinned, 'sendSealed')), ErrorCode.INVALID_ARGUMENT);
  assert.is(code(() => sealTarget({ seal: 3 as never }, pinned, 'sendSealed')), ErrorCode.INVALID_ARGUMENT);
});

test('replies: sealed to the proven sender, bound unless anonymous', () => {
  const m = (anonymous: boolean, withSender: boolean): Message =>
    ({ from: 'a'.repeat(32), anonymous, sender: withSender ? { id: undefined, publicKey: Buffer.from(key) } : undefined }) as unknown as Message;
  assert.equal(replyOptions(m(false, true), undefined), { seal: { publicKey: Buffer.from(key) }, bind: true });
  assert.equal(replyOptions(m(true, true), undefined), { seal: { publicKey: Buffer.from(key) }, bind: false });
  assert.equal(replyOptions(m(false, false), undefined), {});
  assert.equal(replyOptions(m(false, false), { seal: true }), { seal: true, bind: true });
  assert.is(code(() => replyOptions(m(true, false), { seal: true })), ErrorCode.INVALID_ARGUMENT);
  assert.equal(replyOptions(m(false, true), { seal: false }), { seal: false });
});

test.run();
