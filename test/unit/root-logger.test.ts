import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createOrchestrator, createRootLogger } from '../../src/index.js';

/** Listener counts of every event `emitter` has listeners for. */
function listenerCounts(emitter: NodeJS.EventEmitter): Record<string, number> {
  return Object.fromEntries(emitter.eventNames().map((name) => [String(name), emitter.listenerCount(name)]));
}

/** A stream that keeps what is written to it, a terminal as far as `isTTY` tells. */
function fakeTerminal(): Writable & { isTTY: boolean; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return Object.assign(stream, { isTTY: true, text: () => chunks.join('') });
}

/** A pipe whose reader has gone: every write fails with EPIPE, as Node reports it, through 'error'. */
function closedPipe(): Writable & { attempts: number } {
  const stream = Object.assign(
    new Writable({
      write(_chunk, _encoding, done) {
        stream.attempts += 1;
        done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' }));
      },
    }),
    { attempts: 0 },
  );
  return stream;
}

const uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);
beforeEach(() => {
  uncaught.length = 0;
  process.on('uncaughtException', onUncaught);
});
afterEach(() => {
  process.off('uncaughtException', onUncaught);
});

describe('createRootLogger', () => {
  // Regression: every orchestrator made without a logger, on a terminal, piped a pino-pretty
  // stream into process.stderr, adding 3 'close' listeners (and 'error', 'finish', 'unpipe') that
  // close() never removed: MaxListenersExceededWarning after four create/close cycles.
  describe('on a terminal', () => {
    let wasTty: boolean | undefined;
    let level: string | undefined;
    beforeEach(() => {
      wasTty = process.stderr.isTTY;
      level = process.env.TENAZ_LOG_LEVEL;
      process.stderr.isTTY = true;
      // Pretty on stderr, as on a terminal, but nothing written into the test's output.
      process.env.TENAZ_LOG_LEVEL = 'silent';
    });
    afterEach(() => {
      process.stderr.isTTY = wasTty as boolean;
      if (level === undefined) delete process.env.TENAZ_LOG_LEVEL;
      else process.env.TENAZ_LOG_LEVEL = level;
    });

    it('adds no listeners to stderr per orchestrator made with the default logger', async () => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      try {
        // The first logger may watch stderr once for the whole process; later ones add nothing.
        await createOrchestrator().close();
        const before = listenerCounts(process.stderr);
        for (let i = 0; i < 12; i++) await createOrchestrator().close();
        expect(listenerCounts(process.stderr)).toEqual(before);
        expect(process.stderr.listenerCount('close')).toBe(before.close ?? 0);
        // Warnings are emitted on the next tick.
        await new Promise((done) => setImmediate(done));
        expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([]);
      } finally {
        process.off('warning', onWarning);
      }
    });
  });

  it('writes pretty lines to a terminal it is given, adding one listener however many loggers share it', () => {
    const terminal = fakeTerminal();
    const loggers = Array.from({ length: 12 }, () => createRootLogger({ destination: terminal, level: 'info', colorize: false }));
    expect(listenerCounts(terminal)).toEqual({ error: 1 });
    loggers[0]!.child({ component: 'tenaz.engine' }).info('Created flow run');
    expect(terminal.text()).toMatch(/^\d\d:\d\d:\d\d\.\d{3} \| INFO {4}\| tenaz\.engine - Created flow run\n$/);
  });

  // Regression: with stderr closed by its reader (`tenaz run f.ts 2>&1 >out.json | head -1`),
  // the next log line's EPIPE was an unhandled 'error' on process.stderr, which ended the process.
  it.each(['json', 'pretty'] as const)('stops writing after the first EPIPE, and nothing throws (%s)', async (format) => {
    const pipe = closedPipe();
    const logger = createRootLogger({ destination: pipe, format, level: 'info' });
    logger.info('first');
    // The failure comes back through 'error', on a later tick.
    await new Promise((done) => setImmediate(done));
    for (let i = 0; i < 10; i++) logger.info({ i }, 'after the reader left');
    logger.flush();
    await new Promise((done) => setImmediate(done));
    expect(pipe.attempts).toBe(1);
    expect(uncaught).toEqual([]);
  });

  it('leaves other write errors as loud as before', async () => {
    const failing = new Writable({
      write(_chunk, _encoding, done) {
        done(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
      },
    });
    createRootLogger({ destination: failing, format: 'json' }).info('line');
    await new Promise((done) => setImmediate(done));
    expect(uncaught).toMatchObject([{ code: 'ENOSPC' }]);
  });
});
