/**
 * The flags every command shares for reaching NATS (`--nats`, `--namespace`)
 * and the one place that turns them into an orchestrator, so that a server
 * that is not there, a bad URL or a bad namespace is one `tenaz: ...` line
 * and exit code 2 whichever command hit it.
 */
import type { LevelWithSilent, Logger } from 'pino';
import { TenazError } from '../errors.js';
import type { NatsConnectOptions } from '../nats/connection.js';
import type { LogFormat } from '../log.js';
import { INTERNAL, connectOrchestrator, createOrchestrator, type Orchestrator } from '../runtime/orchestrator.js';
import { createSubjects, DEFAULT_NAMESPACE } from '../subjects.js';
import { CliError } from './errors.js';

/** `--nats` and `--namespace`, as commander parses them (environment fallbacks already applied). */
export interface ConnectionFlags {
  /** NATS server URL, or several comma-separated. @default env TENAZ_NATS_URL; none means embedded mode */
  nats?: string;
  /** Prefix of every subject, to keep deployments apart. @default env TENAZ_NAMESPACE or 'tenaz' */
  namespace?: string;
  /** Copies of each stream and KV bucket this process creates. @default env TENAZ_REPLICAS or 1 */
  replicas?: number;
  /** A NATS credentials file (JWT and nkey seed), for an account server's users. @default env TENAZ_NATS_CREDS */
  natsCreds?: string;
  /** A file holding a user's nkey seed. @default env TENAZ_NATS_NKEY */
  natsNkey?: string;
  /** A CA certificate (PEM) to trust the server's TLS certificate by. @default env TENAZ_NATS_TLS_CA */
  natsTlsCa?: string;
  /** A client certificate (PEM), for a server that asks for one (with `natsTlsKey`). @default env TENAZ_NATS_TLS_CERT */
  natsTlsCert?: string;
  /** The client certificate's key (PEM). @default env TENAZ_NATS_TLS_KEY */
  natsTlsKey?: string;
}

/** `--log-format` and `--log-level`. */
export interface LogFlags {
  /** Format of the log lines, which go to stderr. @default env TENAZ_LOG_FORMAT or 'auto' (pretty when stderr is a terminal, JSON elsewhere) */
  logFormat?: LogFormat;
  /** @default env TENAZ_LOG_LEVEL, else 'info' (`run`, `worker`) or 'warn' (the other commands) */
  logLevel?: LevelWithSilent;
}

/** The environment variable behind `--nats`. */
export const NATS_URL_ENV = 'TENAZ_NATS_URL';
/** The environment variable behind `--namespace`. */
export const NAMESPACE_ENV = 'TENAZ_NAMESPACE';
/** The environment variable behind `--replicas`. */
export const REPLICAS_ENV = 'TENAZ_REPLICAS';

/**
 * Time allowed for the first connection, in ms. A command line should say soon that the
 * server is not there; a refused connection fails at once anyway.
 */
export const CLI_CONNECT_TIMEOUT_MS = 5_000;

/** How a command wants its orchestrator. */
export interface OpenOrchestratorOptions {
  /** The command, for the connection name the server shows and for error messages. */
  command: string;
  logger: Logger;
  /** Whether the command cannot work without NATS (`worker`, `watch`). @default false */
  requireNats?: boolean;
  /** Where task runs execute; see `OrchestratorOptions.execution`. @default 'workers' with NATS, else 'local' */
  execution?: 'local' | 'workers';
  /** Whether runs are durable; see `OrchestratorOptions.durable`. @default the orchestrator's default */
  durable?: boolean;
}

/** The orchestrator with the server it is connected to, if any. */
export interface OpenedOrchestrator {
  orchestrator: Orchestrator;
  /** `nats://host:port` of the server connected to; undefined in embedded mode. */
  server: string | undefined;
}

/** The NATS URL the flags ask for, or undefined for embedded mode. An empty value counts as none. */
export function natsUrlOf(flags: ConnectionFlags): string | undefined {
  const url = flags.nats?.trim();
  if (!url) return undefined;
  // nats.js takes host:port, nats:// and tls:// (and would try `bogus://x` as a host name).
  for (const server of url.split(',')) {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(server.trim())?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== 'nats' && scheme !== 'tls') {
      throw new CliError(`--nats takes nats://host:port (or tls://, or host:port), got ${JSON.stringify(server.trim())}`);
    }
  }
  return url;
}

/** The credentials files and TLS files the flags name, as connection options; none when no flag names one. */
function credentialsOf(flags: ConnectionFlags): Pick<NatsConnectOptions, 'credsFile' | 'nkeySeedFile' | 'tls'> {
  const options: Pick<NatsConnectOptions, 'credsFile' | 'nkeySeedFile' | 'tls'> = {};
  if (flags.natsCreds) options.credsFile = flags.natsCreds;
  if (flags.natsNkey) options.nkeySeedFile = flags.natsNkey;
  if (flags.natsTlsCa || flags.natsTlsCert || flags.natsTlsKey) {
    if (Boolean(flags.natsTlsCert) !== Boolean(flags.natsTlsKey)) throw new CliError('--nats-tls-cert and --nats-tls-key go together');
    options.tls = {
      ...(flags.natsTlsCa ? { caFile: flags.natsTlsCa } : {}),
      ...(flags.natsTlsCert ? { certFile: flags.natsTlsCert, keyFile: flags.natsTlsKey } : {}),
    };
  }
  return options;
}

/** The namespace the flags ask for, checked as the runtime will check it. */
export function namespaceOf(flags: ConnectionFlags): string {
  const namespace = flags.namespace?.trim() || DEFAULT_NAMESPACE;
  try {
    createSubjects(namespace);
  } catch (error) {
    throw new CliError(`bad namespace '${namespace}': use letters, digits, '-' and '_' only`, { cause: error });
  }
  return namespace;
}

/**
 * Connects to NATS when the flags name a server, else creates the embedded
 * orchestrator (or, with `requireNats`, refuses). Everything the user can fix
 * (unreachable server, refused credentials, a malformed URL) becomes a `CliError`.
 */
export async function openOrchestrator(flags: ConnectionFlags, options: OpenOrchestratorOptions): Promise<OpenedOrchestrator> {
  const { command, logger, execution, durable } = options;
  const namespace = namespaceOf(flags);
  const url = natsUrlOf(flags);
  if (url === undefined) {
    if (options.requireNats) {
      throw new CliError(`the ${command} command needs NATS: give --nats URL or set ${NATS_URL_ENV}`);
    }
    return { orchestrator: createOrchestrator({ logger, namespace, execution }), server: undefined };
  }
  try {
    const orchestrator = await connectOrchestrator({
      nats: { servers: url, name: `tenaz ${command}`, connectTimeoutMs: CLI_CONNECT_TIMEOUT_MS, ...credentialsOf(flags) },
      logger,
      namespace,
      execution,
      durable,
      replicas: flags.replicas,
    });
    // A user that may not keep the history (the observer role) may not run flows either: said
    // now, in one line, rather than by a run that fails on every step it tries to dispatch.
    const refusal = command === 'run' ? orchestrator[INTERNAL].historyRefusal() : undefined;
    if (refusal !== undefined) {
      await orchestrator.close();
      throw refusal;
    }
    const listen = orchestrator.nats?.getServer();
    return { orchestrator, server: listen ? `nats://${listen}` : url };
  } catch (error) {
    if (error instanceof TenazError && (error.code === 'CONNECTION_FAILED' || error.code === 'INVALID_ARGUMENT')) {
      throw new CliError(firstLine(error.message), { cause: error });
    }
    throw error;
  }
}

/**
 * An orchestrator that owns flow runs on `worker`'s NATS connection: its task runs go to the
 * workers, and its runs are durable. For a process that serves flows beside a worker whose
 * task bodies must run locally. Close it before `worker`, which owns the connection.
 */
export async function openFlowOwner(worker: Orchestrator, flags: ConnectionFlags, logger: Logger): Promise<Orchestrator> {
  const connection = worker.nats;
  if (connection === undefined) throw new CliError('serving flows needs NATS: give --nats URL or set ' + NATS_URL_ENV);
  const owner = createOrchestrator({ nats: connection, logger, namespace: namespaceOf(flags), execution: 'workers', durable: true, replicas: flags.replicas });
  await owner[INTERNAL].historyReady();
  return owner;
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? text;
}
