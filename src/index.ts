/**
 * postern: peer-to-peer messaging through firewalls over raw TCP.
 *
 * The public surface: the router, the agent, IDs, errors and the clock/logger seams.
 * Codec internals for tests and benchmarks live in `postern/internal`.
 *
 * @module
 */
export { Router, type RouterEvents } from './router/router.js';
export { ROUTER_DEFAULTS, RELOADABLE, type RouterOptions } from './router/options.js';
export type { RouterStats } from './router/stats.js';
export type { LinkInfo, PeerInfo } from './router/mesh/mesh.js';
export { renderMetrics, startMetricsServer, type MetricsServer } from './router/metrics.js';
export { loadConfig, resolveConfig, describeConfig, type RouterConfig, type ResolvedConfig } from './router/config.js';
export { connect, Agent, AGENT_DEFAULTS, parseRouterAddress } from './agent/index.js';
export type { AgentOptions, AgentEvents, Message, RouterInfo, SendOptions, Status, StatusIterator, MessageSender, RejectedMessage, SealTo, Verification } from './agent/index.js';
export * from './crypto/index.js';
export { Stream } from './stream/stream.js';
export type { OpenStreamOptions, RequestOptions } from './stream/mux.js';
export { STREAM_DEFAULTS, type StreamOptions } from './stream/options.js';
export { ResetCode, RESET_CODE_NAMES } from './stream/frame.js';
export { stableIdFor } from './protocol/stable-id.js';
export { ErrorCode, PosternError, type PosternErrorDetails } from './protocol/errors.js';
export { DEFAULT_PORT, PROTOCOL_VERSION, WireCode } from './protocol/frame.js';
export { formatId, parseId, routerIdOf, ID_TEXT_LENGTH } from './protocol/id.js';
export { systemClock, ManualClock, type Clock, type Timer } from './net/clock.js';
export { createLogger, silentLogger, type Logger, type LogFields, type LogLevel, type CreateLoggerOptions } from './net/log.js';
