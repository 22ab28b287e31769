/**
 * The agent library: connect to a router, send and receive messages, stay connected.
 *
 * @module
 */
export { connect, Agent, isPermanentError } from './agent.js';
export type { AgentEvents, RouterInfo, Status, StatusIterator } from './agent.js';
export type { Message, MessageSender, RejectedMessage, SealTo, SendOptions, Verification } from './message.js';
export { KeyCache } from './key-cache.js';
export { AGENT_DEFAULTS, parseRouterAddress, resolveAgentOptions } from './options.js';
export type { AgentOptions, ResolvedAgentOptions } from './options.js';
export { backoffDelay, ReconnectLoop } from './reconnect.js';
export type { BackoffPolicy, JitterMode, ReconnectHooks, ReconnectLoopOptions } from './reconnect.js';
export { BoundedQueue } from './queue.js';
export type { BoundedQueueOptions, OverflowPolicy } from './queue.js';
export { Heartbeat } from './heartbeat.js';
export type { HeartbeatTarget } from './heartbeat.js';
