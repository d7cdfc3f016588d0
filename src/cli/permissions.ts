/**
 * Before a command does anything over NATS, whether the server grants its user what the
 * command needs (the roles of deploy/nats/auth.conf): a user of the wrong role is told so
 * in one `tenaz: ...` line, with exit code 2, rather than by warnings while the command
 * half works, or by runs that fail one step at a time.
 *
 * The server refuses a subscription or a publish asynchronously, with a `-ERR` on the
 * connection. So the probe makes each subscription and publish, then a round trip: once the
 * server has answered it, every refusal has arrived (a refused subscription is closed by
 * then, a refused publish is on the connection's status). It runs on a connection of its
 * own, opened with a silent logger, so that the refusals it provokes are not logged by the
 * connection the command goes on with.
 */
import { randomUUID } from 'node:crypto';
import { headers, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { RUNS_BUCKET } from '../durable/records.js';
import { createRootLogger } from '../log.js';
import { refusedPermission } from '../nats/passing-failure.js';
import { followStatus } from '../nats/status.js';
import type { Subjects } from '../subjects.js';
import { CLI_CONNECT_TIMEOUT_MS, natsUrlOf, openOrchestrator, type ConnectionFlags } from './connection.js';
import { CliError } from './errors.js';

/** A right a command needs on the server, what for, and how to get it. */
export interface Permission {
  operation: 'subscribe' | 'publish';
  /**
   * A subject of the shape the command uses. A probe publish reaches no one: nobody listens
   * on it, and a stream that captures it refuses to store it (see `PROBE_HEADER`).
   */
  subject: string;
  /** The subject as the message names it, e.g. `tenaz.owner.*` for one made with a random id. @default subject */
  shown?: string;
  /** Completes "which <who> needs to ...": `hear from the workers that run its task runs`. */
  purpose: string;
  /** Who needs it, for the message: `tenaz run`, `serving flows`, `a worker`. */
  who: string;
  /** How the user gets it: `run it as the client or service role`. */
  fix: string;
}

/**
 * How long the probe waits for the server's answer, in ms. A server that slow is left to
 * the command itself, which has its own ways of saying so: the probe never holds it up for
 * longer, nor fails it for that.
 */
export const PERMISSION_PROBE_TIMEOUT_MS = CLI_CONNECT_TIMEOUT_MS;

/**
 * On every probe publish: JetStream refuses to store a message that expects a stream of
 * another name, and no stream can have this one (a stream name has no dots).
 */
const PROBE_HEADER = ['Nats-Expected-Stream', 'tenaz.permission-probe'] as const;

/**
 * What owning flow runs takes (`tenaz run`; `tenaz worker` serving flows): hearing from the
 * workers that run its task runs, hearing cancels from other processes, keeping run records.
 * Dispatching is not probed: its subjects depend on the pools, which a role may restrict, and
 * a refused dispatch already fails its task run at once.
 */
export function flowOwnerPermissions(subjects: Subjects, who: string, fix: string): Permission[] {
  const probeId = randomUUID();
  const runsBucket = `${subjects.namespace}_${RUNS_BUCKET}`;
  return [
    { operation: 'subscribe', subject: subjects.owner(probeId), shown: anyId(subjects.owner), purpose: 'hear from the workers that run its task runs', who, fix },
    { operation: 'subscribe', subject: subjects.allControl, purpose: 'hear cancels of its flow runs sent by other processes', who, fix },
    { operation: 'publish', subject: `$KV.${runsBucket}.${probeId}`, shown: `$KV.${runsBucket}.*`, purpose: 'record its flow runs', who, fix },
  ];
}

/**
 * What managing runs takes (`tenaz runs ...`, `tenaz start`): writing the run records (the
 * bucket's readiness mark, a queued run, a cancel), which only the client and service roles may.
 */
export function runRecordsPermissions(subjects: Subjects, who: string): Permission[] {
  const runsBucket = `${subjects.namespace}_${RUNS_BUCKET}`;
  const fix = 'run it as the client or service role';
  return [{ operation: 'publish', subject: `$KV.${runsBucket}.${randomUUID()}`, shown: `$KV.${runsBucket}.*`, purpose: 'read and write the run records', who, fix }];
}

/** What running task runs takes (`tenaz worker`): hearing cancels, and claiming task runs from their owners. */
export function taskWorkerPermissions(subjects: Subjects, fix: string): Permission[] {
  const probeId = randomUUID();
  const who = 'a worker';
  return [
    { operation: 'subscribe', subject: subjects.worker(probeId), shown: anyId(subjects.worker), purpose: 'hear cancels from the owners of its task runs', who, fix },
    // Nobody owns runs under a fresh random id: the probe claims nothing.
    { operation: 'publish', subject: subjects.owner(probeId), shown: anyId(subjects.owner), purpose: 'claim task runs and report their outcomes', who, fix },
  ];
}

/**
 * The `permissions` the server refuses this connection's user, in their order: none when it
 * grants them all, or when it did not answer within `timeoutMs` or the connection closed
 * meanwhile (the command then finds out its own way). Subscribes and unsubscribes; publishes
 * only messages that reach no one.
 */
export async function findRefused(connection: NatsConnection, permissions: readonly Permission[], timeoutMs = PERMISSION_PROBE_TIMEOUT_MS): Promise<Permission[]> {
  const refusedPublishes = new Set<string>();
  const statuses = followStatus(connection, (status) => {
    const refusal = status.type === 'error' ? (refusedPermission(status.error) as (Error & { operation?: unknown; subject?: unknown }) | undefined) : undefined;
    if (refusal?.operation === 'publish' && typeof refusal.subject === 'string') refusedPublishes.add(refusal.subject);
  });
  const subscriptions = new Map<Permission, Subscription>();
  let timer: NodeJS.Timeout | undefined;
  try {
    const probe = headers();
    probe.set(...PROBE_HEADER);
    for (const permission of permissions) {
      if (permission.operation === 'subscribe') subscriptions.set(permission, connection.subscribe(permission.subject));
      else connection.publish(permission.subject, new Uint8Array(0), { headers: probe });
    }
    const answered = await Promise.race([
      connection.flush().then(
        () => true,
        () => false,
      ),
      new Promise<false>((resolve) => (timer = setTimeout(resolve, timeoutMs, false))),
    ]);
    if (!answered) return [];
    // The refusals arrived before the answer to the flush; the status iterator hands them on a turn later.
    await new Promise((resolve) => setImmediate(resolve));
    const refused: Permission[] = [];
    for (const permission of permissions) {
      const subscription = subscriptions.get(permission);
      if (subscription === undefined ? refusedPublishes.has(permission.subject) : subscription.isClosed() && refusedPermission(await subscription.closed) !== undefined) {
        refused.push(permission);
      }
    }
    return refused;
  } finally {
    clearTimeout(timer);
    statuses.stop();
    for (const subscription of subscriptions.values()) if (!subscription.isClosed()) subscription.unsubscribe();
  }
}

/**
 * The `permissions` the server refuses the flags' NATS user (see `findRefused`), checked on a
 * connection of its own, which it closes; none without a NATS URL in the flags (embedded
 * mode), where there is nothing to check.
 */
export async function probePermissions(flags: ConnectionFlags, command: string, permissions: readonly Permission[]): Promise<Permission[]> {
  if (natsUrlOf(flags) === undefined || permissions.length === 0) return [];
  // An orchestrator that runs nothing, for its connection: the flags' URL, credentials and TLS,
  // and the same one-line errors when the server is not there or refuses the credentials.
  const { orchestrator } = await openOrchestrator(flags, { command, logger: createRootLogger({ level: 'silent' }), execution: 'local', durable: false });
  try {
    return orchestrator.nats === undefined ? [] : await findRefused(orchestrator.nats, permissions);
  } finally {
    await orchestrator.close();
  }
}

/**
 * Refuses, with a `CliError` (one line, exit code 2), a command whose NATS user the server
 * does not grant one of `permissions`; see `probePermissions`.
 * @example await assertPermitted(options, 'run', flowOwnerPermissions(subjects, 'tenaz run', 'run it as the client or service role'));
 */
export async function assertPermitted(flags: ConnectionFlags, command: string, permissions: readonly Permission[]): Promise<void> {
  const [refused] = await probePermissions(flags, command, permissions);
  if (refused !== undefined) throw new CliError(describeRefusal(refused));
}

/** `the NATS user may not subscribe to 'tenaz.owner.*', which tenaz run needs to ...: run it as ...; see ...`. */
export function describeRefusal(permission: Permission): string {
  const verb = permission.operation === 'subscribe' ? 'subscribe to' : 'publish to';
  return (
    `the NATS user may not ${verb} '${permission.shown ?? permission.subject}', which ${permission.who} needs to ${permission.purpose}: ` +
    `${permission.fix}; see deploy/nats/auth.conf for what each role may do`
  );
}

/** `tenaz.owner.*`: a subject made with any id. */
function anyId(subject: (id: string) => string): string {
  return `${subject('x').slice(0, -1)}*`;
}
