/**
 * Internals for tests, benchmarks and other implementations' conformance checks. Not a
 * stable API.
 *
 * @module
 */
export * from './protocol/frame.js';
export * from './protocol/encoder.js';
export * from './protocol/decoder.js';
export * from './protocol/control.js';
export * from './protocol/id.js';
export * from './protocol/errors.js';
export { RouterConnection, ConnState } from './router/connection.js';
export { Registry } from './router/registry.js';
export { resolveRouterOptions } from './router/options.js';
export { Mesh } from './router/mesh/mesh.js';
export * from './protocol/link.js';
export { sealWithEphemeral } from './crypto/seal.js';
export { sealBoxWithEphemeral, sealNonce } from './crypto/sealed-box.js';
export { x25519, isSmallOrder } from './crypto/x25519.js';
export { resolveSizeClasses } from './crypto/padding.js';
export { BoundedQueue, Heartbeat, ReconnectLoop, backoffDelay, resolveAgentOptions } from './agent/index.js';
export { cryptoBackend, nativeCryptoAvailable, setCryptoBackend, type CryptoBackendName } from './crypto/backend.js';
export * from './conformance/index.js';
