/**
 * Worker processes of the NATS benchmark (nats-worker.ts). Every process
 * started here is stopped by its PID in `stopAll()`, which the bench calls in
 * a `finally`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Warning } from './nats-log.js';
import { untilReady } from '../test/support/processes.js';

const WORKER_MAIN = fileURLToPath(new URL('./nats-worker.ts', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
/** Extra node flags for worker processes, e.g. `BENCH_WORKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'`. */
const EXTRA_NODE_ARGS = (process.env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean);

export type WorkerMode = 'tenaz' | 'nats' | 'jetstream' | 'bullmq';

export interface WorkerProcess {
  readonly pid: number;
  readonly mode: WorkerMode;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
  /** SIGKILL, now. */
  kill(): void;
}

export class WorkerProcesses {
  readonly #children = new Set<ChildProcess>();
  /** Warnings and errors the workers logged, with the mode of the worker. */
  readonly warnings: Array<Warning & { mode: WorkerMode }> = [];
  /** Other stderr output (crashes, stack traces), per mode. */
  readonly stderr: Array<{ mode: WorkerMode; text: string }> = [];

  /** Starts a worker; resolves once it takes work. */
  async start(mode: WorkerMode, where: string, concurrency: number): Promise<WorkerProcess> {
    const child = spawn(process.execPath, [...EXTRA_NODE_ARGS, '--import', 'tsx', WORKER_MAIN, mode, where, String(concurrency)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#children.add(child);
    let pending = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) this.#onStderr(mode, line);
    });
    const exited = new Promise<number | NodeJS.Signals | null>((resolve) => {
      child.once('exit', (code, signal) => {
        this.#children.delete(child);
        if (pending) this.#onStderr(mode, pending);
        resolve(code ?? signal);
      });
    });
    await untilReady(child, exited, READY_TIMEOUT_MS, () => `${mode} worker: ${this.stderr.map((s) => s.text).join('\n')}`);
    return { pid: child.pid!, mode, exited, kill: () => child.kill('SIGKILL') };
  }

  /** SIGTERM to every worker still running, SIGKILL to those not gone after `graceMs`; waits for all. */
  async stopAll(graceMs = 3_000): Promise<void> {
    await Promise.all(
      [...this.#children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }

  #onStderr(mode: WorkerMode, line: string): void {
    if (line.trim() === '') return;
    try {
      const parsed = JSON.parse(line) as Warning;
      if (typeof parsed === 'object' && parsed !== null && 'msg' in parsed) {
        this.warnings.push({ ...parsed, mode });
        return;
      }
    } catch {
      // Not one of our JSON lines: keep it as text.
    }
    this.stderr.push({ mode, text: line });
  }
}
