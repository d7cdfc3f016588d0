/**
 * A real nats-server for tests: started on a random loopback port with its
 * own temporary JetStream store, stopped by its PID. It can be stopped and
 * started again on the same port and store, which is how tests restart the
 * server in the middle of a flow.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServerOptions {
  /** Enable JetStream with a temporary store. @default true */
  jetstream?: boolean;
  /** Extra command-line arguments, e.g. `['-c', configFile]`. */
  args?: string[];
  /** How long to wait for "Server is ready". @default 10000 */
  readyTimeoutMs?: number;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** PID of the running server, or undefined while stopped. */
  readonly pid: number | undefined;
  /** Everything the server wrote to stderr since it last started. */
  readonly output: string;
  /** Sends a signal to the server process. */
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /** Starts the server again on the same port and store. */
  start(): Promise<void>;
  /** Stops the server and removes its store. */
  dispose(): Promise<void>;
}

/** Asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const jetstream = options.jetstream ?? true;
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const storeDir = mkdtempSync(join(tmpdir(), 'tenaz-nats-'));
  let port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';

  const argsFor = (p: number): string[] => [
    '-a', '127.0.0.1', '-p', String(p),
    ...(jetstream ? ['-js', '-sd', storeDir] : []),
    ...(options.args ?? []),
  ];

  const launch = async (): Promise<void> => {
    output = '';
    const proc = spawn('nats-server', argsFor(port), { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`nats-server not ready after ${readyTimeoutMs} ms:\n${output}`));
      }, readyTimeoutMs);
      proc.stderr?.setEncoding('utf8');
      proc.stderr?.on('data', (chunk: string) => {
        output += chunk;
        if (output.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code ?? signal}) before it was ready:\n${output}`));
      });
      proc.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          error.code === 'ENOENT'
            ? new Error('nats-server is not installed: `apt-get install -y nats-server` (bash .ci/run does it), then run the tests again', { cause: error })
            : error,
        );
      });
    });
  };

  const stop = async (graceMs = 5_000): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) {
      child = undefined;
      return;
    }
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    child = undefined;
  };

  // A port that was free a moment ago may have been taken since: try a few.
  for (let tries = 0; ; tries += 1) {
    try {
      await launch();
      break;
    } catch (error) {
      if (tries >= 4 || !output.includes('address already in use')) {
        rmSync(storeDir, { recursive: true, force: true });
        throw error;
      }
      port = await freePort();
    }
  }

  return {
    get url() { return `nats://127.0.0.1:${port}`; },
    get port() { return port; },
    storeDir,
    get pid() { return child?.pid; },
    get output() { return output; },
    signal(signal) { child?.kill(signal); },
    stop,
    start: launch,
    async dispose() {
      await stop(2_000);
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
