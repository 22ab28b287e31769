/**
 * The latency probe: a worker thread that runs a small cell of its own (one sender→receiver
 * pair at a low fixed rate, every message timed) beside the load the main thread offers.
 *
 * Why a thread: the load's messages leave the generator in 1 ms bursts and come back while
 * the generator's one event loop is busy with the next burst, so their latency is mostly
 * the generator's own. The probe's event loop has nothing else to do: it reads a message
 * as soon as the system under test delivers it (the kernel wakes its thread), so its
 * latency is that of the system at the load the main thread offers. Both threads run on
 * the generator's core, so the probe still waits when the scheduler is running the load's
 * thread: its tail is the core's, its median the system's.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runCell, type CellSpec } from './lib/load.js';
import { natsWire, plainWire, posternWire, type SystemName } from './lib/wire.js';

export interface ProbeJob {
  system: SystemName;
  port: number;
  spec: CellSpec;
}

const job = workerData as ProbeJob;
const wire = job.system === 'plain' ? plainWire('127.0.0.1', job.port) : job.system === 'nats' ? natsWire('127.0.0.1', job.port) : posternWire('127.0.0.1', job.port);
try {
  const r = await runCell(wire, job.spec);
  parentPort!.postMessage({ ok: true, result: r });
} catch (err) {
  parentPort!.postMessage({ ok: false, error: (err as Error).message });
}
