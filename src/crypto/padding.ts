import { RELAY_HEADER_SIZE } from '../protocol/frame.js';
import { ErrorCode, PosternError } from '../protocol/errors.js';

/**
 * Size classes for envelopes, so that the length a router sees says less about the message.
 * [P-D.4-1]
 *
 * An envelope is padded (with zero bytes inside the encryption) until its total length is
 * the smallest class that holds it. Past the largest class it is padded to the next multiple
 * of the largest class.
 */

/** The largest SEND payload at the default maxFrame (1 MiB): 1048576 - 26. */
export const DEFAULT_MAX_PAYLOAD = 1048576 - RELAY_HEADER_SIZE;

/**
 * The classes used for `pad: true`: powers of two from 64 to 512 KiB, then
 * {@link DEFAULT_MAX_PAYLOAD}, so that every envelope that fits in a SEND at the default
 * maxFrame still fits once padded. The smallest envelope is 69 bytes (anonymous, empty),
 * so in practice the first class used is 128.
 */
export const DEFAULT_SIZE_CLASSES: readonly number[] = Object.freeze([
  ...Array.from({ length: 14 }, (_, i) => 64 << i), // 64 .. 524288
  DEFAULT_MAX_PAYLOAD,
]);

/** How to pad: `false` (default) none, `true` {@link DEFAULT_SIZE_CLASSES}, or your own classes. */
export type PadOption = boolean | readonly number[];

/**
 * Checks a pad option and returns its classes (undefined for no padding).
 *
 * @throws PosternError INVALID_OPTION unless the classes are a non-empty list of strictly
 *   increasing positive safe integers.
 */
export function resolveSizeClasses(pad: PadOption | undefined): readonly number[] | undefined {
  if (pad === undefined || pad === false) return undefined;
  if (pad === true) return DEFAULT_SIZE_CLASSES;
  if (!Array.isArray(pad) || pad.length === 0) {
    throw new PosternError(ErrorCode.INVALID_OPTION, 'pad: want a boolean or a non-empty list of sizes');
  }
  let prev = 0;
  for (const size of pad as readonly unknown[]) {
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= prev) {
      throw new PosternError(ErrorCode.INVALID_OPTION, 'pad: sizes must be positive integers in increasing order');
    }
    prev = size;
  }
  return pad;
}

/**
 * The padded length of something `size` bytes long: the smallest class >= size, or past
 * the largest class, the next multiple of it. `classes` must come from
 * {@link resolveSizeClasses}.
 */
export function paddedSize(size: number, classes: readonly number[]): number {
  for (const c of classes) if (c >= size) return c;
  const last = classes[classes.length - 1]!;
  return Math.ceil(size / last) * last;
}
