/**
 * Peak memory of TASKS task runs in flight in one process: one flow submits
 * them all, every body waits on one gate, and memory is read once all are
 * Running. Run in its own process (`node --expose-gc`) so nothing else counts.
 */
import { pino } from 'pino';
import { createOrchestrator, flow, getRunContext, task } from '../src/index.js';
import { nullLogDestination } from './measure.js';

const TASKS = Number(process.argv[2] ?? 100_000);
let openGate!: () => void;
const gate = new Promise<void>((resolve) => (openGate = resolve));
let running = 0;
let allRunning!: () => void;
const everyoneRunning = new Promise<void>((resolve) => (allRunning = resolve));

const held = task({ name: 'held' }, async (i: number) => {
  getRunContext();
  if (++running === TASKS) allRunning();
  await gate;
  return i;
});
const holder = flow({ name: 'holder' }, async (n: number) => {
  const futures = held.map(Array.from({ length: n }, (_, i) => i));
  return (await Promise.all(futures)).length;
});

const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const before = process.memoryUsage();
const orchestrator = createOrchestrator({ logger: pino({ level: 'info' }, nullLogDestination()) });
const run = orchestrator.start(holder, TASKS);
await everyoneRunning;
gc?.();
const during = process.memoryUsage();
openGate();
const count = await run.result();
await orchestrator.close();
process.stdout.write(
  JSON.stringify({
    tasks: TASKS,
    completed: count,
    rssMiB: during.rss / 2 ** 20,
    heapUsedMiB: during.heapUsed / 2 ** 20,
    heapPerTaskKiB: (during.heapUsed - before.heapUsed) / TASKS / 1024,
  }) + '\n',
);
