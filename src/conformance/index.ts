/**
 * The conformance runner: checks a router (as its client) or an agent (as its router)
 * against PROTOCOL.md over the wire and reports by requirement ID. `postern conformance`
 * is its command-line face.
 *
 * @module
 */
export { checkRouter, type RouterCheckOptions } from './router.js';
export { checkAgent, type AgentCheckOptions } from './agent.js';
export { formatReport, type CheckResult, type CheckStatus, type ConformanceReport } from './report.js';
