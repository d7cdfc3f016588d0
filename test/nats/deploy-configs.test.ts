/**
 * The server configs in deploy/nats, started for real. Each test copies the
 * config files into a temporary directory, rewrites every loopback port in
 * them (consistently across the files of a cluster, so routes still point at
 * the right nodes) to a free random port and every store_dir to a temporary
 * directory, starts nats-server from the copies and checks what tenaz needs
 * with the real client. The originals are never touched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
} from '@nats-io/jetstream';
import {
  AuthorizationError,
  connect,
  PermissionViolationError,
  type NatsConnection,
} from '@nats-io/transport-node';
import { freePort } from '../support/nats-server.js';
import { pino } from 'pino';
import { connectOrchestrator, flow, task } from '../../src/index.js';

import { TenazProcesses } from '../fixtures/nats/tenaz-process.js';
import { ensureTasksStream } from '../../src/remote/streams.js';
import { createSubjects } from '../../src/subjects.js';
import { poll } from '../support/poll.js';

const NATS_DIR = fileURLToPath(new URL('../../deploy/nats/', import.meta.url));
const SINGLE = join(NATS_DIR, 'single.conf');
const AUTH = join(NATS_DIR, 'auth.conf');
const CLUSTER = ['node-a', 'node-b', 'node-c'].map((n) => join(NATS_DIR, 'cluster', `${n}.conf`));
const READY_TIMEOUT_MS = 10_000;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// Launching servers from rewritten copies of the config files

interface ConfigServer {
  readonly name: string;
  readonly url: string;
  readonly monitorUrl: string;
  readonly child: ChildProcess;
  output: string;
}

interface Launched {
  readonly servers: ConfigServer[];
  readonly dir: string;
}

/** What a test (or a describe block) started, released by PID and path. */
class Resources {
  readonly children = new Set<ChildProcess>();
  readonly dirs = new Set<string>();
  readonly connections = new Set<NatsConnection>();

  async release(): Promise<void> {
    const connections = [...this.connections];
    this.connections.clear();
    await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    const children = [...this.children];
    this.children.clear();
    await Promise.all(children.map((child) => stopByPid(child)));
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
    this.dirs.clear();
  }
}

/** Released after every test, pass or fail. */
const perTest = new Resources();

/** SIGTERM by PID, SIGKILL after `graceMs`; resolves once the process has exited. */
async function stopByPid(child: ChildProcess, graceMs = 3_000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = (signal: NodeJS.Signals): void => {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  };
  kill('SIGTERM');
  const timer = setTimeout(() => kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Maps every `127.0.0.1:<port>` found in `texts` to a distinct free port. */
async function portMap(texts: string[]): Promise<Map<string, number>> {
  const map = new Map<string, number>();
  const taken = new Set<number>();
  for (const text of texts) {
    for (const [, port] of text.matchAll(/127\.0\.0\.1:(\d+)/g)) {
      if (port === undefined || map.has(port)) continue;
      let fresh = await freePort();
      while (taken.has(fresh)) fresh = await freePort();
      taken.add(fresh);
      map.set(port, fresh);
    }
  }
  return map;
}

function topLevelAddress(text: string, key: 'listen' | 'http', file: string): string {
  const match = new RegExp(`^${key}:\\s*(127\\.0\\.0\\.1:\\d+)\\s*$`, 'm').exec(text);
  if (match?.[1] === undefined) throw new Error(`${file}: no top-level ${key}: 127.0.0.1:<port>`);
  return match[1];
}

function spawnServer(
  res: Resources,
  configFile: string,
  name: string,
  url: string,
  monitorUrl: string,
): Promise<ConfigServer> {
  const child = spawn('nats-server', ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  res.children.add(child);
  const server: ConfigServer = { name, url, monitorUrl, child, output: '' };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${name}: nats-server not ready after ${READY_TIMEOUT_MS} ms:\n${server.output}`));
    }, READY_TIMEOUT_MS);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      server.output += chunk;
      if (server.output.includes('Server is ready')) {
        clearTimeout(timer);
        resolve(server);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name}: nats-server exited (${code ?? signal}) before it was ready:\n${server.output}`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * Starts one nats-server per config file from rewritten copies: ports to free
 * random ones, store_dir into a temporary directory. Retries with new ports if
 * a port was taken between being found free and being bound.
 */
async function launchFromConfigs(files: string[], owner: Resources = perTest): Promise<Launched> {
  const originals = files.map((file) => readFileSync(file, 'utf8'));
  for (let attempt = 1; ; attempt += 1) {
    const dir = mkdtempSync(join(tmpdir(), 'tenaz-deploy-'));
    const ports = await portMap(originals);
    const copies = files.map((file, i) => {
      const name = basename(file, '.conf');
      const storeDir = join(dir, `store-${name}`);
      mkdirSync(storeDir);
      const text = (originals[i] ?? '')
        .replace(/127\.0\.0\.1:(\d+)/g, (_, port: string) => `127.0.0.1:${ports.get(port) ?? port}`)
        .replace(/^(\s*store_dir:\s*).*$/m, (_, key: string) => `${key}${JSON.stringify(storeDir)}`);
      if (!text.includes(storeDir)) throw new Error(`${file}: no store_dir to rewrite`);
      const copy = join(dir, `${name}.conf`);
      writeFileSync(copy, text);
      return {
        name,
        copy,
        url: `nats://${topLevelAddress(text, 'listen', file)}`,
        monitorUrl: `http://${topLevelAddress(text, 'http', file)}`,
      };
    });
    // This attempt's processes and files: handed to `owner` on success, released on failure.
    const res = new Resources();
    res.dirs.add(dir);
    const results = await Promise.allSettled(
      copies.map((c) => spawnServer(res, c.copy, c.name, c.url, c.monitorUrl)),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed === undefined) {
      for (const child of res.children) owner.children.add(child);
      owner.dirs.add(dir);
      return { dir, servers: results.map((r) => (r as PromiseFulfilledResult<ConfigServer>).value) };
    }
    await res.release();
    if (attempt >= 3 || !String(failed.reason).includes('address already in use')) throw failed.reason;
  }
}

/** Every node sees the two others as routes and agrees on a meta leader: resolves with each node's leader. */
async function untilMetaLeader(servers: ConfigServer[]): Promise<Array<string | undefined>> {
  return poll('a JetStream meta leader on every node', 15_000, async () => {
    const views = await Promise.all(
      servers.map(async (s) => {
        const routez = (await (await fetch(`${s.monitorUrl}/routez`)).json()) as { num_routes: number };
        const jsz = (await (await fetch(`${s.monitorUrl}/jsz`)).json()) as {
          meta_cluster?: { name?: string; leader?: string; cluster_size?: number };
        };
        return { routes: routez.num_routes, meta: jsz.meta_cluster };
      }),
    );
    const ready = views.every(
      (v) => v.routes >= 2 && v.meta?.cluster_size === 3 && v.meta.leader !== undefined && v.meta.leader !== '',
    );
    return ready ? views.map((v) => v.meta?.leader) : undefined;
  });
}

// ---------------------------------------------------------------------------
// Small helpers

async function open(url: string, user?: string, pass?: string): Promise<NatsConnection> {
  const nc = await connect({
    servers: url,
    ...(user === undefined ? {} : { user, pass }),
    reconnect: false,
    timeout: 5_000,
  });
  perTest.connections.add(nc);
  return nc;
}

/** Resolves with the next permissions violation the server reports on `nc`. */
function nextPermissionViolation(nc: NatsConnection, timeoutMs = 3_000): Promise<PermissionViolationError> {
  const statuses = nc.status()[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no permissions violation reported')), timeoutMs);
  });
  const violation = (async () => {
    for (;;) {
      const next = await statuses.next();
      if (next.done === true) throw new Error('connection closed without a permissions violation');
      const s = next.value;
      if (s.type === 'error' && s.error instanceof PermissionViolationError) return s.error;
    }
  })();
  return Promise.race([violation, timeout]).finally(() => {
    clearTimeout(timer);
    void statuses.return?.();
  });
}

async function addTasksStream(jsm: JetStreamManager, replicas = 1): Promise<void> {
  await jsm.streams.add({
    name: 'tenaz_tasks',
    subjects: ['tenaz.task.>'],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: replicas,
  });
}

afterEach(() => perTest.release());

// ---------------------------------------------------------------------------

describe('deploy/nats configs', () => {
  it('bind only to loopback and keep their stores under deploy/nats/.data', () => {
    for (const file of [SINGLE, AUTH, ...CLUSTER]) {
      const text = readFileSync(file, 'utf8').replace(/#.*$/gm, '');
      const addresses = [...text.matchAll(/(\d+\.\d+\.\d+\.\d+)(?::\d+)?/g)].map((m) => m[1]);
      expect(addresses.length, file).toBeGreaterThan(0);
      expect(new Set(addresses), file).toEqual(new Set(['127.0.0.1']));
      expect(text, file).toMatch(/^\s*store_dir:\s*"deploy\/nats\/\.data\//m);
    }
  });
});

describe('single.conf', () => {
  it('runs JetStream: a work-queue stream takes a task and a pull consumer drains it', async () => {
    const { servers } = await launchFromConfigs([SINGLE]);
    const server = servers[0]!;
    const nc = await open(server.url);
    expect(nc.info?.jetstream).toBe(true);
    expect(nc.info?.max_payload).toBe(8 * MiB);

    const jsm = await jetstreamManager(nc);
    await addTasksStream(jsm);
    const js = jetstream(nc);
    const ack = await js.publish('tenaz.task.p.t', 'input');
    expect(ack.stream).toBe('tenaz_tasks');

    await jsm.consumers.add('tenaz_tasks', {
      durable_name: 'p_t',
      filter_subject: 'tenaz.task.p.t',
      ack_policy: AckPolicy.Explicit,
    });
    const consumer = await js.consumers.get('tenaz_tasks', 'p_t');
    const msg = await consumer.next({ expires: 2_000 });
    expect(msg?.string()).toBe('input');
    expect(await msg?.ackAck()).toBe(true);
    expect((await jsm.streams.info('tenaz_tasks')).state.messages).toBe(0);

    const health = await fetch(`${server.monitorUrl}/healthz`);
    expect(health.status).toBe(200);
  });
});

describe('cluster/node-{a,b,c}.conf', () => {
  it('form a three-node JetStream cluster that takes R3 streams', async () => {
    const { servers } = await launchFromConfigs(CLUSTER);
    expect(servers.map((s) => s.name)).toEqual(['node-a', 'node-b', 'node-c']);

    const leaders = await untilMetaLeader(servers);
    expect(new Set(leaders).size).toBe(1);
    expect(['tenaz-a', 'tenaz-b', 'tenaz-c']).toContain(leaders[0]);

    const [a, b, c] = await Promise.all(servers.map((s) => open(s.url)));
    const jsmA = await jetstreamManager(a!);
    // Peers may still be catching up with the meta leader right after election.
    await poll('an R3 stream to be created', 10_000, async () => {
      await addTasksStream(jsmA, 3);
      return true;
    });
    const info = await poll('the R3 stream to have a leader and two current replicas', 10_000, async () => {
      const si = await jsmA.streams.info('tenaz_tasks');
      const current = si.cluster?.replicas?.filter((r) => r.current) ?? [];
      return si.cluster?.leader !== undefined && current.length === 2 ? si : undefined;
    });
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.name).toBe('tenaz');

    // A task published through one node is visible through another.
    await jetstream(b!).publish('tenaz.task.p.t', 'input');
    const jsmC = await jetstreamManager(c!);
    expect((await jsmC.streams.info('tenaz_tasks')).state.messages).toBe(1);
  });

  it('holds every stream and KV bucket tenaz makes with replicas: 3 on all three nodes, and a flow completes with a node killed', async () => {
    const { servers } = await launchFromConfigs(CLUSTER);
    await untilMetaLeader(servers);
    const nats = { servers: servers.map((s) => s.url), maxReconnectAttempts: -1, reconnectTimeWait: 100 };
    const logger = pino({ level: 'silent' });
    const double = task({ name: 'cluster-double' }, async (x: number) => x * 2);
    const doubled = flow({ name: 'cluster-doubled' }, async (n: number) => (await Promise.all(double.map(Array.from({ length: n }, (_, i) => i)))).reduce((a, b) => a + b, 0));
    // Peers may still be catching up with the meta leader right after election: R3 creations may fail at first.
    const owner = await poll('an orchestrator whose R3 streams are made', 15_000, async () => connectOrchestrator({ nats, logger, replicas: 3 }));
    const workers = await connectOrchestrator({ nats, logger, execution: 'local', durable: false, replicas: 3 });
    try {
      workers.worker({ tasks: [double] });
      await owner.serveFlows({ flows: [doubled] });
      expect(await owner.start(doubled, 4).result()).toBe(12);
      const jsm = await jetstreamManager(owner.nats!);
      const replicas = new Map<string, number>();
      for await (const info of jsm.streams.list()) replicas.set(info.config.name, info.config.num_replicas);
      for (const name of ['tenaz_tasks', 'tenaz_flows', 'tenaz_events', 'KV_tenaz_runs', 'KV_tenaz_journal', 'KV_tenaz_active', 'KV_tenaz_owners']) {
        expect(replicas.get(name), name).toBe(3);
      }
      // Losing any one node loses nothing and stops nothing.
      await stopByPid(servers[2]!.child, 0);
      expect(await owner.start(doubled, 6).result()).toBe(30);
    } finally {
      await workers.close();
      await owner.close();
    }
  }, 60_000);
});

describe('auth.conf', () => {
  let url = '';
  const as = (user: 'client' | 'worker' | 'observer') => open(url, user, `change-me-${user}`);

  // One server for the whole block, stopped in afterAll even if beforeAll fails half-way.
  const suite = new Resources();
  beforeAll(async () => {
    const { servers } = await launchFromConfigs([AUTH], suite);
    url = servers[0]!.url;
  });
  afterAll(() => suite.release());
  // Each test starts with no streams.
  afterEach(async () => {
    if (url === '') return;
    const nc = await connect({ servers: url, user: 'client', pass: 'change-me-client', reconnect: false });
    try {
      const jsm = await jetstreamManager(nc);
      for await (const name of jsm.streams.names()) await jsm.streams.delete(name);
    } finally {
      await nc.close();
    }
  });

  it('runs tenaz as each role: a worker, a watcher and a flow run, with no permission violation', async (context) => {
    const processes = new TenazProcesses();
    context.onTestFinished(() => processes.killAll());
    const as_ = (user: string) => url.replace('nats://', `nats://${user}:change-me-${user}@`);
    // The worker role serves tasks only: serving flows takes the client role's rights.
    const worker = processes.spawn(['worker', 'test/fixtures/nats/chain.ts', '--no-flows', '--nats', as_('worker')]);
    await worker.waitFor('stderr', /^tenaz: serving /m);
    const watch = processes.spawn(['watch', '--json', '--nats', as_('observer')]);
    await watch.waitFor('stderr', /^tenaz: watching /m);
    const run = processes.spawn(['run', 'test/fixtures/nats/chain.ts', '--flow', 'chain', '--param', 'n=2', '--nats', as_('client')]);
    expect(await run.exited, run.stderr).toEqual({ code: 0, signal: null });
    await watch.waitFor('stdout', /^(?=.*"type":"flow\.state")(?=.*"name":"Completed").*$/m);
    const replay = processes.spawn(['watch', '--since', '1', '--json', '--nats', as_('observer')]);
    await replay.waitFor('stdout', /^(?=.*"type":"flow\.state")(?=.*"name":"Completed").*$/m);
    for (const p of [worker, watch, replay]) p.signal('SIGINT');
    for (const p of [worker, watch, replay]) await p.exited;
    for (const p of [worker, watch, run, replay]) expect(p.stdout + p.stderr).not.toMatch(/Permissions Violation/);
  }, 30_000);

  it('serves flows and tasks as the service role, and starts runs by name as the client role, with no permission violation', async (context) => {
    const processes = new TenazProcesses();
    context.onTestFinished(() => processes.killAll());
    const client = url.replace('nats://', 'nats://client:change-me-client@');
    const service = url.replace('nats://', 'nats://service:change-me-service@');
    const server = processes.spawn(['worker', 'test/fixtures/nats/chain.ts', '--nats', service]);
    await server.waitFor('stderr', /^tenaz: serving flow\(s\) /m);
    const start = processes.spawn(['start', 'chain', '--param', 'n=2', '--wait', '--nats', client]);
    expect(await start.exited, start.stderr).toEqual({ code: 0, signal: null });
    expect(JSON.parse(start.stdout)).toMatchObject({ total: 3 });
    const ls = processes.spawn(['runs', 'ls', '--nats', client]);
    expect(await ls.exited, ls.stderr).toEqual({ code: 0, signal: null });
    expect(ls.stdout).toMatch(/chain\s+Completed/);
    server.signal('SIGINT');
    await server.exited;
    for (const p of [server, start, ls]) expect(p.stdout + p.stderr).not.toMatch(/Permissions Violation/);
  }, 30_000);

  it('says in one line, without a stack, that the server refused a role what it may not do', async (context) => {
    const processes = new TenazProcesses();
    context.onTestFinished(() => processes.killAll());
    const observer = url.replace('nats://', 'nats://observer:change-me-observer@');
    const ls = processes.spawn(['runs', 'ls', '--nats', observer]);
    expect((await ls.exited).code).toBe(2);
    // One line, before anything is done, naming the role to use.
    expect(ls.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^tenaz: the NATS user may not publish to '\$KV\.tenaz_runs\.\*', which tenaz runs ls needs to .*: run it as the client or service role; see deploy\/nats\/auth\.conf for what each role may do$/)]);
    // A role that may not run flows trying to: one line, exit 2, before any run is made.
    const run = processes.spawn(['run', 'test/fixtures/nats/chain.ts', '--flow', 'chain', '--param', 'n=2', '--nats', observer]);
    expect((await run.exited).code).toBe(2);
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(/^tenaz: the NATS user may not subscribe to 'tenaz\.owner\.\*', which tenaz run needs to .*: run it as the client or service role; /);
    expect(run.stderr).not.toMatch(/\n\s+at |"stack"/);
    // The worker role serving flows too (without --no-flows, an easy slip): one line, no stack, exit 2.
    const worker = processes.spawn(['worker', 'test/fixtures/nats/chain.ts', '--nats', url.replace('nats://', 'nats://worker:change-me-worker@')]);
    expect((await worker.exited).code).toBe(2);
    expect(worker.stderr.trim().split('\n').at(-1)).toMatch(/^tenaz: the NATS user may not subscribe to 'tenaz\.owner\.\*', which serving flows needs to .*: give --no-flows to serve the tasks only, or run it as the service role; /);
    expect(worker.stderr).not.toMatch(/\n\s+at /);
  }, 30_000);

  it('stops a worker whose user may not claim task runs (the observer role) before it serves, in one line with exit 2', async (context) => {
    const processes = new TenazProcesses();
    context.onTestFinished(() => processes.killAll());
    const as_ = (user: string) => url.replace('nats://', `nats://${user}:change-me-${user}@`);
    // The tasks stream, as a worker of the right role would have made it: the observer may not.
    await ensureTasksStream(await jetstreamManager(await as('worker')), createSubjects());
    const worker = processes.spawn(['worker', 'test/fixtures/nats/chain.ts', '--no-flows', '--nats', as_('observer')]);
    expect((await worker.exited).code).toBe(2);
    expect(worker.stderr).not.toMatch(/^tenaz: serving /m);
    expect(worker.stderr.trim().split('\n').at(-1)).toMatch(/^tenaz: the NATS user may not subscribe to 'tenaz\.worker\.\*', which a worker needs to .*: run it as the worker or service role; /);
    expect(worker.stderr).not.toMatch(/\n\s+at /);
  }, 30_000);

  it('refuses a wrong password', async () => {
    await expect(open(url, 'worker', 'wrong')).rejects.toBeInstanceOf(AuthorizationError);
  });

  it('lets a worker that starts first create the tasks stream, and no other stream', async () => {
    const worker = await as('worker');
    const wjsm = await jetstreamManager(worker);
    await addTasksStream(wjsm);
    expect((await wjsm.streams.info('tenaz_tasks')).config.retention).toBe(RetentionPolicy.Workqueue);

    const denied = await wjsm.streams.add({ name: 'rogue', subjects: ['rogue.>'] }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect((denied as Error | undefined)?.cause).toBeInstanceOf(PermissionViolationError);
    expect(((denied as Error).cause as PermissionViolationError).subject).toBe('$JS.API.STREAM.CREATE.rogue');
    const deleteDenied = await wjsm.streams.delete('tenaz_tasks').then(
      () => undefined,
      (error: unknown) => error,
    );
    expect((deleteDenied as Error | undefined)?.cause).toBeInstanceOf(PermissionViolationError);
  });

  it('lets each role do its job', async () => {
    const client = await as('client');
    const worker = await as('worker');
    const observer = await as('observer');

    // client: creates the streams and dispatches a task.
    const jsm = await jetstreamManager(client);
    await addTasksStream(jsm);
    await jsm.streams.add({ name: 'tenaz_events', subjects: ['tenaz.evt.>'], storage: StorageType.File });
    expect((await jetstream(client).publish('tenaz.task.p.t', 'input')).stream).toBe('tenaz_tasks');

    // worker: creates its durable pull consumer, takes the task and acks it.
    const wjsm = await jetstreamManager(worker);
    await wjsm.consumers.add('tenaz_tasks', {
      durable_name: 'p_t',
      filter_subject: 'tenaz.task.p.t',
      ack_policy: AckPolicy.Explicit,
    });
    const consumer = await jetstream(worker).consumers.get('tenaz_tasks', 'p_t');
    const task = await consumer.next({ expires: 2_000 });
    expect(task?.string()).toBe('input');
    expect(await task?.ackAck()).toBe(true);
    expect((await jsm.streams.info('tenaz_tasks')).state.messages).toBe(0);

    // worker -> owner request, answered by the client (allow_responses).
    const owner = client.subscribe('tenaz.owner.>', {
      callback: (_err, msg) => {
        msg.respond(`ok ${msg.subject}`);
      },
    });
    await client.flush();
    const reply = await worker.request('tenaz.owner.x', 'claim', { timeout: 2_000 });
    expect(reply.string()).toBe('ok tenaz.owner.x');
    owner.unsubscribe();

    // client -> worker control.
    const control = worker.subscribe('tenaz.worker.w1', { max: 1 });
    await worker.flush();
    client.publish('tenaz.worker.w1', 'cancel');
    for await (const m of control) expect(m.string()).toBe('cancel');

    // observer: live events, and a replay of the events history.
    const live = observer.subscribe('tenaz.evt.>', { max: 1 });
    await observer.flush();
    await jetstream(client).publish('tenaz.evt.flow.started', 'event');
    for await (const m of live) expect(m.subject).toBe('tenaz.evt.flow.started');
    const history = await jetstream(observer).consumers.get('tenaz_events');
    const replayed = await history.next({ expires: 2_000 });
    expect(replayed?.subject).toBe('tenaz.evt.flow.started');
  });

  it('denies what each role must not do', async () => {
    const client = await as('client');
    const worker = await as('worker');
    const observer = await as('observer');
    const jsm = await jetstreamManager(client);
    await addTasksStream(jsm);

    // observer cannot dispatch a task.
    const violation = nextPermissionViolation(observer);
    observer.publish('tenaz.task.p.t', 'forged');
    const pubError = await violation;
    expect(pubError.operation).toBe('publish');
    expect(pubError.subject).toBe('tenaz.task.p.t');
    await observer.flush();
    expect((await jsm.streams.info('tenaz_tasks')).state.messages).toBe(0);

    // worker cannot listen in on traffic to owners.
    const sub = worker.subscribe('tenaz.owner.>');
    const subError = await sub.closed;
    expect(subError).toBeInstanceOf(PermissionViolationError);
    expect((subError as PermissionViolationError).operation).toBe('subscription');

    // observer cannot publish state events either.
    const evtViolation = nextPermissionViolation(observer);
    observer.publish('tenaz.evt.flow.failed', 'forged');
    expect((await evtViolation).subject).toBe('tenaz.evt.flow.failed');

    // The connections survive the violations.
    expect(worker.isClosed()).toBe(false);
    expect(observer.isClosed()).toBe(false);
  });
});
