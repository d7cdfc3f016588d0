/**
 * Stopping a long-running command on SIGINT or SIGTERM, in stages: the first
 * signal asks for a graceful stop, the second for an immediate one, and a
 * third leaves at once, for when even the immediate stop hangs.
 */
import { constants } from 'node:os';

/** The signals a command stops on: Ctrl-C, and what service managers send. */
export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/** Signals received, as promises; `dispose()` puts the default handlers back. */
export interface ShutdownTrap {
  /** Resolves with the first signal: stop gracefully. */
  readonly first: Promise<NodeJS.Signals>;
  /** Resolves with the second signal: stop now. */
  readonly second: Promise<NodeJS.Signals>;
  /** Removes the handlers. Idempotent. */
  dispose(): void;
}

/**
 * Traps SIGINT and SIGTERM until disposed. The third signal exits the process
 * with 128 + the signal's number, as a shell reports a process killed by it.
 * @example
 * const trap = trapShutdownSignals();
 * try { await Promise.race([trap.first, work]); } finally { trap.dispose(); }
 */
export function trapShutdownSignals(): ShutdownTrap {
  let received = 0;
  let resolveFirst!: (signal: NodeJS.Signals) => void;
  let resolveSecond!: (signal: NodeJS.Signals) => void;
  const first = new Promise<NodeJS.Signals>((resolve) => (resolveFirst = resolve));
  const second = new Promise<NodeJS.Signals>((resolve) => (resolveSecond = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    received += 1;
    if (received === 1) resolveFirst(signal);
    else if (received === 2) resolveSecond(signal);
    else process.exit(exitCodeOf(signal));
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);
  return {
    first,
    second,
    dispose: () => {
      for (const signal of SHUTDOWN_SIGNALS) process.off(signal, onSignal);
    },
  };
}

/** 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM. */
export function exitCodeOf(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}
