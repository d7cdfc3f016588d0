/**
 * `tenaz runs`: managing flow runs from any process. For now, `runs cancel ID`
 * asks the process that owns the flow run to cancel it; listing and showing
 * runs come with the durable run records.
 */
import type { LevelWithSilent } from 'pino';
import { createRootLogger } from '../log.js';
import { openOrchestrator, type ConnectionFlags, type LogFlags } from './connection.js';
import { note, type CliStreams } from './streams.js';

export interface RunsCancelOptions extends ConnectionFlags, LogFlags {
  /** Why, as the run's logs and the body's abort reason will say. @default 'cancelled' */
  reason?: string;
}

/**
 * Sends the cancel request and resolves with the exit code (0 once sent). The owner
 * cancels the run if it has it; `tenaz watch --run ID` shows it end `Cancelled`.
 * @example process.exitCode = await runsCancelCommand('0b6e…', { nats: 'nats://127.0.0.1:4222' }, processStreams());
 */
export async function runsCancelCommand(flowRunId: string, options: RunsCancelOptions, io: CliStreams): Promise<number> {
  const level = options.logLevel ?? (process.env.TENAZ_LOG_LEVEL as LevelWithSilent | undefined) ?? 'warn';
  const logger = createRootLogger({ format: options.logFormat, level, destination: io.stderr });
  const { orchestrator, server } = await openOrchestrator(options, { command: 'runs cancel', logger, requireNats: true, execution: 'local' });
  try {
    await orchestrator.cancelRun(flowRunId, options.reason ?? 'cancelled');
    note(io, `asked the owner of flow run ${flowRunId} on ${server ?? 'NATS'} to cancel it`);
    return 0;
  } finally {
    await orchestrator.close();
  }
}
