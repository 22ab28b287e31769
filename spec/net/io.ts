/**
 * Line-oriented JSON I/O shared by the helper processes of spec/net/firewall.test.ts
 * (node-router, node-agent, node-probe): one JSON object per line each way.
 */
import { createInterface } from 'node:readline';

/** Writes one JSON line to stdout. */
export function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/**
 * Calls `onCommand` for each JSON line on stdin and `onEnd` when stdin ends. The test holds
 * our stdin open for as long as it wants us: when it ends (the test finished, failed or was
 * killed), the helper shuts down, so no helper outlives the test that started it.
 */
export function commands(onCommand: (cmd: Record<string, unknown>) => void | Promise<void>, onEnd: () => void | Promise<void>): void {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    let cmd: Record<string, unknown>;
    try {
      cmd = JSON.parse(line) as Record<string, unknown>;
    } catch {
      emit({ error: 'bad command line', line });
      return;
    }
    Promise.resolve(onCommand(cmd)).catch((err: unknown) => emit({ error: describe(err), tag: cmd.tag }));
  });
  rl.on('close', () => {
    Promise.resolve(onEnd()).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

/** A short description of an error: its code when it has one, and its message. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/**
 * A last-resort exit timer so a helper stuck in close() still ends. unref'd: it never keeps
 * the process alive by itself.
 */
export function exitWithin(ms: number): void {
  setTimeout(() => process.exit(2), ms).unref();
}
