/**
 * A watch nobody reads must not hold the process's memory: past its limit of unread events,
 * newer ones are dropped and counted in a warning, and what was kept is read in order.
 */
import { describe, expect, it } from 'vitest';
import { createMemoryBus } from '../../src/bus/memory.js';
import { createSubjects } from '../../src/subjects.js';
import { subscribeEvents } from '../../src/runtime/watch.js';
import { createMemoryLogger } from './runtime/helpers.js';

const taskEvent = (seq: number) => ({
  v: 1,
  type: 'task.state',
  seq,
  flowName: 'etl',
  flowRunId: 'run-1',
  taskName: 'load',
  taskRunId: 'task-1',
  taskRunName: 'load-0',
  state: { type: 'RUNNING', name: 'Running', timestamp: seq, attempt: 1 },
  tags: [],
});

/** A memory bus, and a watch of all its events that keeps at most 5 unread. */
function watchAllowingFiveUnread() {
  const { logger, records } = createMemoryLogger();
  const bus = createMemoryBus({ logger });
  const subjects = createSubjects('tenaz');
  const stream = subscribeEvents(bus, subjects, {}, logger, { maxUnread: 5 });
  return { bus, records, stream, subject: subjects.taskEvent('etl', 'run-1', 'load', 'task-1') };
}

describe('a watch whose events are not read', () => {
  it('keeps at most its limit of unread events, warns of the rest, and yields what it kept in order', async () => {
    const { bus, records, stream, subject } = watchAllowingFiveUnread();
    for (let seq = 1; seq <= 12; seq++) bus.publish(subject, taskEvent(seq));
    await bus.flush();
    stream.close();
    const seqs: number[] = [];
    for await (const event of stream) seqs.push(event.seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    const warnings = records.filter((r) => r.level === 40 && r.msg.startsWith('dropped run events'));
    expect(warnings[0]).toMatchObject({ droppedTotal: 1, msg: expect.stringContaining('the watcher had 5 events not yet read') });
    await bus.drain();
  });

  it('drops nothing while it is read as events come', async () => {
    const { bus, records, stream, subject } = watchAllowingFiveUnread();
    const seqs: number[] = [];
    const reading = (async () => {
      for await (const event of stream) if (seqs.push(event.seq) === 20) break;
    })();
    for (let seq = 1; seq <= 20; seq++) {
      bus.publish(subject, taskEvent(seq));
      await bus.flush();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await reading;
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(records.filter((r) => r.msg.startsWith('dropped run events'))).toEqual([]);
    await bus.drain();
  });
});
