/**
 * Opening (or adopting) the NATS connection that the bus and the store share.
 * The one rule: a connection we did not open is never closed by us.
 */
import { readFile } from 'node:fs/promises';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  AuthorizationError,
  type Authenticator,
  type NatsConnection,
  type NodeConnectionOptions,
  type Status,
} from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { ConnectionFailedError, InvalidArgumentError } from '../errors.js';
import { LogThrottle } from '../drop-counter.js';
import { refusedPermission } from './passing-failure.js';

/** TLS settings, passed through to nats.js: `{ caFile, certFile, keyFile }`, or inline `ca`, `cert`, `key`. */
export type NatsTlsOptions = NonNullable<NodeConnectionOptions['tls']>;

/** How to connect to NATS. At most one way to authenticate: `user`/`pass`, `token`, `credsFile` or `nkeySeedFile`. */
export interface NatsConnectOptions {
  /** Server URLs, e.g. `nats://10.0.0.1:4222`; a string may list several, comma-separated. @default 'nats://127.0.0.1:4222' */
  servers?: string | string[];
  /** User name, with `pass`. */
  user?: string;
  /** Password for `user`. */
  pass?: string;
  /** Authentication token. */
  token?: string;
  /** Path to a `.creds` file (user JWT and nkey seed), as issued by `nsc`. */
  credsFile?: string;
  /** Path to a file holding a user nkey seed (`SU...`). */
  nkeySeedFile?: string;
  /** TLS settings; `{}` asks for TLS with the system's trusted CAs. @default no TLS unless the server requires it */
  tls?: NatsTlsOptions;
  /** Connection name shown by the server's monitoring. @default 'tenaz' */
  name?: string;
  /** Reconnect attempts per server before the connection closes; -1 retries forever. @default -1 */
  maxReconnectAttempts?: number;
  /** Wait between reconnect attempts to one server, in ms. @default 2000 */
  reconnectTimeWaitMs?: number;
  /** Time allowed for the first connection, in ms. @default 20000 */
  connectTimeoutMs?: number;
}

/** A URL (or comma-separated URLs), connect options, or a connection the caller owns. */
export type NatsOption = string | NatsConnectOptions | NatsConnection;

/** The outcome of `connectNats`. */
export interface ConnectedNats {
  connection: NatsConnection;
  /** Whether tenaz opened the connection, and so must close it. */
  owned: boolean;
}

/** The environment variable `resolveNatsOption` falls back to. */
export const NATS_URL_ENV = 'TENAZ_NATS_URL';

const DEFAULT_CONNECTION_NAME = 'tenaz';

/** Whether `value` looks like a nats.js connection (duck-typed, so any nats.js copy or transport qualifies). */
export function isNatsConnection(value: unknown): value is NatsConnection {
  if (value === null || typeof value !== 'object') return false;
  const candidate = value as Record<string, unknown>;
  return (
    typeof candidate['publish'] === 'function' &&
    typeof candidate['subscribe'] === 'function' &&
    typeof candidate['drain'] === 'function' &&
    typeof candidate['closed'] === 'function'
  );
}

/**
 * The NATS option to use: the explicit one, else env `TENAZ_NATS_URL`, else `undefined`
 * (embedded mode).
 */
export function resolveNatsOption(explicit?: NatsOption, env: NodeJS.ProcessEnv = process.env): NatsOption | undefined {
  if (explicit !== undefined) return explicit;
  const url = env[NATS_URL_ENV]?.trim();
  return url ? url : undefined;
}

/**
 * Connects to NATS, or adopts a connection the caller opened (`owned: false`: tenaz never
 * closes it). A connection tenaz opens reconnects forever by default and logs its status
 * changes (disconnect at warn, reconnect at info) until it closes.
 * Rejects with `ConnectionFailedError` naming the servers (credentials redacted), the
 * client's error as `cause`; with `InvalidArgumentError` for bad options or unreadable key files.
 * @example
 * const { connection, owned } = await connectNats(resolveNatsOption(flags.nats) ?? 'nats://127.0.0.1:4222', logger);
 */
export async function connectNats(option: NatsOption, logger: Logger): Promise<ConnectedNats> {
  if (isNatsConnection(option)) return { connection: option, owned: false };
  const options = await toConnectionOptions(typeof option === 'string' ? { servers: option } : option);
  const servers = describeServers(options.servers);
  // A caller's own component binding wins: pino would print a second `component` key.
  const log = logger.bindings()['component'] === undefined ? logger.child({ component: 'nats' }) : logger;
  let connection: NatsConnection;
  try {
    connection = await connect(options);
  } catch (cause) {
    const refused = cause instanceof AuthorizationError;
    const reason = cause instanceof Error ? cause.message : String(cause);
    const message = refused
      ? `NATS at ${servers} refused the credentials: ${reason}`
      : `could not connect to NATS at ${servers}: ${reason}`;
    throw new ConnectionFailedError(message, { cause, retryable: !refused });
  }
  log.info({ server: connection.getServer() }, 'connected to NATS');
  void watchStatus(connection, log);
  return { connection, owned: true };
}

/**
 * Refuses a server without JetStream at once: tenaz keeps its task queues, run records and
 * event history there, and without them a flow waits for ever for workers that can never be
 * reached. Any other answer (a refused permission, a slow server) is left to the step that
 * needs JetStream, which says so in its own words.
 */
export async function assertJetStream(connection: NatsConnection): Promise<void> {
  try {
    await jetstreamManager(connection);
  } catch (error) {
    if (!(error instanceof Error) || error.name !== 'JetStreamNotEnabled') return;
    throw new ConnectionFailedError(
      `the NATS server at ${connection.getServer()} has no JetStream, where tenaz keeps its task queues, run records and event history: ` +
        'start nats-server with -js (or a jetstream {} block in its config)',
      { cause: error, retryable: false },
    );
  }
}

async function toConnectionOptions(options: NatsConnectOptions): Promise<NodeConnectionOptions> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(`NATS option must be a URL, connect options or a connection, got ${String(options)}`);
  }
  const { servers, credentials } = takeUrlCredentials(splitServers(options.servers));
  // Credentials in a URL (`nats://worker:secret@host:4222`) count as user/pass, or as a token alone.
  if (credentials !== undefined && options.user === undefined && options.token === undefined && options.credsFile === undefined && options.nkeySeedFile === undefined) {
    options = { ...options, ...credentials };
  }
  const methods = (['user', 'token', 'credsFile', 'nkeySeedFile'] as const).filter((key) => options[key] !== undefined);
  if (methods.length > 1) throw new InvalidArgumentError(`NATS options: choose one way to authenticate, got ${methods.join(', ')}`);
  if (options.pass !== undefined && options.user === undefined) throw new InvalidArgumentError('NATS options: pass needs user');
  const maxReconnectAttempts = options.maxReconnectAttempts ?? -1;
  if (!Number.isInteger(maxReconnectAttempts) || maxReconnectAttempts < -1) {
    throw new InvalidArgumentError(`NATS options: maxReconnectAttempts must be an integer >= -1, got ${String(maxReconnectAttempts)}`);
  }
  for (const key of ['reconnectTimeWaitMs', 'connectTimeoutMs'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
      throw new InvalidArgumentError(`NATS options: ${key} must be a non-negative number of ms, got ${String(value)}`);
    }
  }
  const resolved: NodeConnectionOptions = {
    servers,
    name: options.name ?? DEFAULT_CONNECTION_NAME,
    maxReconnectAttempts,
    // nats.js otherwise builds an Error with a stack for every request it makes, in case it fails:
    // a measurable share of the CPU per task run. Our errors carry their own context.
    noAsyncTraces: true,
  };
  if (options.reconnectTimeWaitMs !== undefined) resolved.reconnectTimeWait = options.reconnectTimeWaitMs;
  if (options.connectTimeoutMs !== undefined) resolved.timeout = options.connectTimeoutMs;
  if (options.tls !== undefined) resolved.tls = options.tls;
  if (options.user !== undefined) {
    resolved.user = options.user;
    if (options.pass !== undefined) resolved.pass = options.pass;
  }
  if (options.token !== undefined) resolved.token = options.token;
  const authenticator = await fileAuthenticator(options);
  if (authenticator !== undefined) resolved.authenticator = authenticator;
  return resolved;
}

/**
 * Takes `user:pass@` (or `token@`) out of the server URLs: nats.js does not read them there.
 * The first URL that has them gives them; the URLs are passed on without.
 */
function takeUrlCredentials(servers: string[] | undefined): { servers: string[] | undefined; credentials?: { user: string; pass?: string } | { token: string } } {
  if (servers === undefined) return { servers };
  let credentials: { user: string; pass?: string } | { token: string } | undefined;
  const stripped = servers.map((server) => {
    const at = server.lastIndexOf('@');
    if (at < 0) return server;
    const scheme = server.indexOf('://');
    const start = scheme < 0 ? 0 : scheme + 3;
    const userInfo = server.slice(start, at);
    if (credentials === undefined && userInfo !== '') {
      const colon = userInfo.indexOf(':');
      credentials =
        colon < 0
          ? { token: decodeURIComponent(userInfo) }
          : { user: decodeURIComponent(userInfo.slice(0, colon)), pass: decodeURIComponent(userInfo.slice(colon + 1)) };
    }
    return server.slice(0, start) + server.slice(at + 1);
  });
  return credentials === undefined ? { servers: stripped } : { servers: stripped, credentials };
}

async function fileAuthenticator(options: NatsConnectOptions): Promise<Authenticator | undefined> {
  if (options.credsFile !== undefined) {
    return credsAuthenticator(await readKeyFile(options.credsFile, 'credsFile'));
  }
  if (options.nkeySeedFile !== undefined) {
    const seed = new TextDecoder().decode(await readKeyFile(options.nkeySeedFile, 'nkeySeedFile')).trim();
    return nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  return undefined;
}

async function readKeyFile(path: string, field: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new InvalidArgumentError(`NATS options: cannot read ${field} '${path}'`, { cause });
  }
}

function splitServers(servers: string | string[] | undefined): string[] | undefined {
  if (servers === undefined) return undefined;
  const list = (Array.isArray(servers) ? servers : [servers]).flatMap((entry) => String(entry).split(','));
  const trimmed = list.map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  if (trimmed.length === 0) throw new InvalidArgumentError('NATS options: servers is empty');
  return trimmed;
}

/** The servers for an error message, without passwords or tokens that a URL may carry. */
function describeServers(servers: string | string[] | undefined): string {
  if (servers === undefined) return 'the default server (127.0.0.1:4222)';
  return (Array.isArray(servers) ? servers : [servers]).map((url) => url.replace(/\/\/[^/@]*@/, '//***@')).join(', ');
}

/** Logs status changes until the connection closes (the status iterator ends then). */
async function watchStatus(connection: NatsConnection, log: Logger): Promise<void> {
  const refusals = new LogThrottle(Date.now, REFUSAL_LOG_INTERVAL_MS);
  try {
    for await (const status of connection.status()) logStatus(status, log, refusals);
  } catch (err) {
    log.warn({ err }, 'NATS status watch ended');
  }
  const reason = await connection.closed();
  if (reason instanceof Error) log.warn({ err: reason }, 'NATS connection closed');
  else log.info('NATS connection closed');
}

/** At most one line per this interval about what the server refuses this user, in ms. */
const REFUSAL_LOG_INTERVAL_MS = 5_000;

function logStatus(status: Status, log: Logger, refusals: LogThrottle): void {
  switch (status.type) {
    case 'disconnect':
      log.warn({ server: status.server }, 'disconnected from NATS');
      break;
    case 'reconnect':
      log.info({ server: status.server }, 'reconnected to NATS');
      break;
    case 'reconnecting':
      log.debug('reconnecting to NATS');
      break;
    case 'error': {
      const error = refusedPermission(status.error);
      if (error === undefined) {
        log.warn({ err: status.error }, 'NATS error');
        break;
      }
      // The user's rights, not a bug: one line, not a stack a second (a role that may not do what it is asked to).
      const refusedBefore = refusals.take();
      if (refusedBefore >= 0) {
        log.warn({ refusedSinceLastLine: refusedBefore + 1 }, `the NATS server refused this user: ${error.message}; see deploy/nats/auth.conf for what each role may do`);
      }
      break;
    }
    case 'ldm':
      log.warn({ server: status.server }, 'NATS server entering lame duck mode');
      break;
    case 'staleConnection':
      log.warn('NATS connection stale');
      break;
    case 'slowConsumer':
      log.warn({ subject: status.sub.getSubject(), pending: status.pending }, 'NATS slow consumer');
      break;
    case 'update':
      log.debug({ added: status.added, deleted: status.deleted }, 'NATS cluster update');
      break;
    case 'forceReconnect':
      log.info('NATS reconnect forced');
      break;
    case 'ping':
    case 'close':
      break;
  }
}
