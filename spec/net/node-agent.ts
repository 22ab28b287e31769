/**
 * Helper process for spec/net/firewall.test.ts: one postern agent, run by the test inside a
 * (firewalled) network namespace (`ip netns exec NS node dist/spec/net/node-agent.js H:P`).
 *
 * argv[2]: the router to dial, `host:port` or a URL, or a comma-separated list of them.
 * argv[3] (optional): more AgentOptions as a JSON object (ca, proxy, reconnectDelay, ...).
 *
 * stdout (JSON lines):
 * - `{"id":ID,"routerId":N}` once registered;
 * - `{"registered":ID,"routerId":N}` at each later registration (after a reconnect);
 * - `{"from":ID,"len":N,"sha256":HEX,"text":STR}` per message received (`text` only for
 *   payloads up to 1 KiB, as UTF-8);
 * - `{"undeliverable":{"code":C,"seq":S}}` per refused SEND;
 * - answers to stdin commands, each echoing the command's `tag`:
 *   `{"cmd":"send","to":ID,"text":STR}` or `{"cmd":"send","to":ID,"size":N}` (N random
 *   bytes) → sends, flushes, then `{"sent":SEQ,"len":N,"sha256":HEX}`.
 *
 * Ends (agent closed) when stdin ends.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect } from '../../src/agent/agent.js';
import { commands, describe, emit, exitWithin } from './io.js';

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function main(): Promise<void> {
  const router = process.argv[2];
  if (router === undefined) throw new Error('usage: node-agent.js HOST:PORT');
  // argv[3], optional: more AgentOptions as JSON (transports: ca, proxy, a router list...).
  const extra = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;
  const agent = await connect({ router: router.includes(',') ? router.split(',') : router, connectTimeout: 5000, ...extra });
  void (async () => {
    for await (const s of agent.status()) {
      if (s.type === 'registered') emit({ registered: s.id, routerId: s.router.routerId });
    }
  })();
  agent.on('undeliverable', (e) => emit({ undeliverable: { code: e.code, seq: e.seq, to: e.to } }));
  void (async () => {
    for await (const m of agent) {
      emit({ from: m.from, len: m.data.length, sha256: sha256(m.data), ...(m.data.length <= 1024 ? { text: m.data.toString('utf8') } : {}) });
    }
  })();
  commands(
    async (cmd) => {
      if (cmd.cmd !== 'send') {
        emit({ tag: cmd.tag, error: `unknown command ${String(cmd.cmd)}` });
        return;
      }
      const data = typeof cmd.text === 'string' ? Buffer.from(cmd.text, 'utf8') : randomBytes(Number(cmd.size));
      const seq = agent.send(String(cmd.to), data);
      await agent.flush();
      emit({ tag: cmd.tag, sent: seq, len: data.length, sha256: sha256(data) });
    },
    async () => {
      exitWithin(3000);
      await agent.close();
    },
  );
  emit({ id: agent.id, routerId: agent.routerInfo.routerId });
}

main().catch((err: unknown) => {
  emit({ fatal: describe(err) });
  process.exit(1);
});
