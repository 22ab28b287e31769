/**
 * The sealed envelope and keys: the public surface of src/crypto, for src/index.ts to
 * re-export. Test-vector helpers that take a fixed ephemeral key are in src/internal.ts
 * only (see the bottom of this file for what to export there).
 *
 * @module
 */
export { seal, open, ENVELOPE_ANONYMOUS, ENVELOPE_SENDER, ANONYMOUS_OVERHEAD, SENDER_OVERHEAD } from './seal.js';
export type { SealOptions, SealSender, OpenOptions, OpenedEnvelope, EnvelopeSender } from './seal.js';
export { sealBox, openBox, SEAL_OVERHEAD, type KeyPair } from './sealed-box.js';
export {
  generateKeyPair,
  keyPairFromSecretKey,
  formatPublicKey,
  parsePublicKey,
  saveKeyFile,
  loadKeyFile,
  parseKeyFile,
  KEY_FILE_TYPE,
  KEY_FILE_VERSION,
  type SaveKeyFileOptions,
} from './keys.js';
export { DEFAULT_SIZE_CLASSES, DEFAULT_MAX_PAYLOAD, paddedSize, type PadOption } from './padding.js';

// For src/internal.ts (not public): sealWithEphemeral (seal.js), sealBoxWithEphemeral,
// sealNonce (sealed-box.js), x25519, isSmallOrder (x25519.js), resolveSizeClasses (padding.js).
