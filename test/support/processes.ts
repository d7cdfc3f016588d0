/**
 * Worker processes and a hit-recording HTTP server for the NATS tests. Every
 * process started here is stopped by its PID in `stopAll()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const WORKER_MAIN = fileURLToPath(new URL('../fixtures/nats/worker-main.ts', import.meta.url));

export interface WorkerProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything written to stderr (JSON log lines). */
  readonly logs: () => string;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
}

export class Processes {
  readonly #children = new Set<ChildProcess>();

  /** Starts a worker process serving the fixture tasks; resolves once it consumes. */
  async startWorker(natsUrl: string, concurrency = 4, env: NodeJS.ProcessEnv = {}): Promise<WorkerProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER_MAIN, natsUrl, String(concurrency)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.#children.add(child);
    let logs = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (logs += chunk));
    const exited = new Promise<number | NodeJS.Signals | null>((resolve) => {
      child.once('exit', (code, signal) => {
        this.#children.delete(child);
        resolve(code ?? signal);
      });
    });
    await untilReady(child, exited, 15_000, () => `worker:\n${logs}`);
    return { pid: child.pid!, child, logs: () => logs, exited };
  }

  /** SIGKILLs every process still running (SIGCONT first, for stopped ones) and waits for them. */
  async stopAll(): Promise<void> {
    const waits = [...this.#children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGCONT');
          child.kill('SIGKILL');
        }),
    );
    await Promise.all(waits);
  }
}

/**
 * Resolves once the child writes READY on stdout; rejects when it exits first or
 * takes longer than `timeoutMs`, with `describe()` saying what it logged.
 */
export function untilReady(child: ChildProcess, exited: Promise<unknown>, timeoutMs: number, describe: () => string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`not ready in ${timeoutMs} ms: ${describe()}`)), timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`exited (${String(how)}) before it was ready: ${describe()}`));
    });
  });
}

export interface Hit {
  what: string;
  pid: number;
  attempt: number;
  task: string;
  at: number;
}

/** An HTTP server on loopback that records each GET's query as a hit. */
export class HitServer {
  readonly hits: Hit[] = [];
  readonly #waiters: Array<{ predicate: (hit: Hit) => boolean; resolve: (hit: Hit) => void }> = [];
  #server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      const query = new URL(req.url ?? '/', 'http://x').searchParams;
      const hit: Hit = {
        what: query.get('what') ?? '',
        pid: Number(query.get('pid')),
        attempt: Number(query.get('attempt')),
        task: query.get('task') ?? '',
        at: performance.now(),
      };
      this.hits.push(hit);
      for (const waiter of [...this.#waiters]) {
        if (waiter.predicate(hit)) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(hit);
        }
      }
      res.end('ok');
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hit`;
  }

  /** Resolves with the first hit (recorded or future) matching `predicate`. */
  until(predicate: (hit: Hit) => boolean, timeoutMs = 15_000): Promise<Hit> {
    const found = this.hits.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching hit in ${timeoutMs} ms; hits: ${JSON.stringify(this.hits)}`)), timeoutMs);
      this.#waiters.push({ predicate, resolve: (hit) => (clearTimeout(timer), resolve(hit)) });
    });
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}
