import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode, PosternError, errorCodeForWire, errorFromWire, wireCodeForError } from '../../src/protocol/errors.js';
import { WIRE_CODE_NAMES, WireCode, isFatalCode } from '../../src/protocol/frame.js';

const LOCAL_ONLY = [
  'UNKNOWN_CODE',
  'INVALID_ID',
  'INVALID_OPTION',
  'INVALID_ARGUMENT',
  'CLOSED',
  'NOT_CONNECTED',
  'CONNECT_TIMEOUT',
  'CONNECTION_LOST',
  'SEND_BUFFER_FULL',
  'NOT_SENT',
];

test('every WireCode maps to POSTERN_ERR_<NAME> and back', () => {
  for (const [name, num] of Object.entries(WireCode)) {
    const code = errorCodeForWire(num);
    assert.is(code, `POSTERN_ERR_${name}`, name);
    assert.is(wireCodeForError(code), num, name);
    assert.is(WIRE_CODE_NAMES[num], name);
  }
});

test('every ErrorCode is POSTERN_ERR_<key>; codes without a wire code never come from the wire', () => {
  const wireNames = new Set(Object.keys(WireCode));
  const fromWire = new Set<string>(Object.values(WireCode).map((n) => errorCodeForWire(n)));
  let local = 0;
  for (const [key, code] of Object.entries(ErrorCode)) {
    assert.is(code, `POSTERN_ERR_${key}`);
    if (wireNames.has(key)) {
      assert.is(wireCodeForError(code), WireCode[key as keyof typeof WireCode], key);
    } else {
      local++;
      assert.is(wireCodeForError(code), undefined, key);
      assert.not.ok(fromWire.has(code), key);
      assert.is(new PosternError(code, 'x').wireCode, undefined, key);
    }
  }
  // The local codes the agent, router and CLI rely on exist.
  for (const key of LOCAL_ONLY) assert.ok(key in ErrorCode, key);
  assert.ok(local >= LOCAL_ONLY.length);
});

test('wire codes are unique u16 values in the documented ranges', () => {
  const nums = Object.values(WireCode);
  assert.is(new Set(nums).size, nums.length);
  for (const n of nums) assert.ok(Number.isInteger(n) && n >= 0 && n <= 127, String(n));
});

test('isFatalCode: 0 and 64.. end the connection, 1..63 do not', () => {
  assert.ok(isFatalCode(0));
  for (let c = 1; c < 64; c++) assert.not.ok(isFatalCode(c), String(c));
  for (const c of [64, 66, 74, 127]) assert.ok(isFatalCode(c), String(c));
  for (const [name, num] of Object.entries(WireCode)) {
    const inClose = num === 0 || num >= 64;
    assert.is(isFatalCode(num), inClose, name);
  }
});

test('unknown wire codes map to POSTERN_ERR_UNKNOWN_CODE, keeping the number', () => {
  const known = new Set<number>(Object.values(WireCode));
  const unknown = [7, 15, 21, 63, 77, 127, 128, 65535].filter((n) => !known.has(n));
  assert.ok(unknown.length >= 6);
  for (const n of unknown) {
    assert.is(errorCodeForWire(n), ErrorCode.UNKNOWN_CODE);
    const e = errorFromWire(n, 'whatever');
    assert.is(e.code, ErrorCode.UNKNOWN_CODE);
    assert.is(e.wireCode, n);
  }
});

test('errorFromWire carries code, wire code, seq and destination', () => {
  const e = errorFromWire(WireCode.UNKNOWN_DESTINATION, 'no such agent', { seq: 3, to: '00000007cccccccccccccccccccccccc' });
  assert.instance(e, PosternError);
  assert.instance(e, Error);
  assert.is(e.name, 'PosternError');
  assert.is(e.code, ErrorCode.UNKNOWN_DESTINATION);
  assert.is(e.wireCode, 1);
  assert.is(e.seq, 3);
  assert.is(e.to, '00000007cccccccccccccccccccccccc');
  assert.is(errorFromWire(WireCode.NORMAL, '').code, ErrorCode.NORMAL);
});

test('PosternError fills wireCode from the code, keeps cause', () => {
  const cause = new Error('x');
  const e = new PosternError(ErrorCode.FRAME_TOO_LARGE, 'm', { cause });
  assert.is(e.wireCode, 67);
  assert.is(e.cause, cause);
  const local = new PosternError(ErrorCode.CLOSED, 'm');
  assert.is(local.wireCode, undefined);
  assert.is(local.seq, undefined);
});

test.run();
