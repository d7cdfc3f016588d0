// Regression: a result nested thousands of levels deep (a long linked list) made the
// serialisability check recurse until RangeError: the error escaped a task run's promise
// callback and killed the process, and a flow run failed with the raw RangeError, retried.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_CONTAINER_VISITS, MAX_NESTING_DEPTH, findUnserializable } from '../../../src/codec.js';
import { UnserializableResultError, flow, task } from '../../../src/index.js';
import { createFixture, names, recordEvents, rejection, runInFlow, uniqueName, type Fixture } from './helpers.js';

interface ListNode {
  value: number;
  next: ListNode | null;
}

/** A linked list `depth` nodes long: `depth` objects, each nested in the one before. */
function linkedList(depth: number): ListNode | null {
  let head: ListNode | null = null;
  for (let i = 0; i < depth; i++) head = { value: i, next: head };
  return head;
}

function lengthOf(list: unknown): number {
  let length = 0;
  for (let node = list as ListNode | null; node !== null; node = node.next) length++;
  return length;
}

/** Listens for unhandled rejections and uncaught exceptions until `stop()`. */
function watchProcessErrors() {
  const errors: unknown[] = [];
  const onError = (error: unknown) => void errors.push(error);
  process.on('unhandledRejection', onError);
  process.on('uncaughtException', onError);
  return {
    errors,
    stop() {
      process.off('unhandledRejection', onError);
      process.off('uncaughtException', onError);
    },
  };
}

describe('findUnserializable on deeply nested values', () => {
  it('accepts a value nested exactly MAX_NESTING_DEPTH levels deep', () => {
    expect(findUnserializable(linkedList(MAX_NESTING_DEPTH))).toBeNull();
  });

  it.each([MAX_NESTING_DEPTH + 1, 5_000, 1_000_000])('refuses a linked list %i levels deep without overflowing the stack', (depth) => {
    const where = findUnserializable(linkedList(depth));
    expect(where).toMatch(/^result\.next\.next.*\(nested more than \d+ levels deep\)$/);
    // The path is shortened, not one segment per level.
    expect(where!.length).toBeLessThan(200);
  });

  it('counts arrays, Maps and Sets as levels too, and leaves Dates and bytes as leaves', () => {
    const wrap = (make: (inner: unknown) => unknown, leaf: unknown, depth: number) => {
      let value = leaf;
      for (let i = 0; i < depth; i++) value = make(value);
      return value;
    };
    for (const make of [(v: unknown) => [v], (v: unknown) => new Map([['k', v]]), (v: unknown) => new Set([v])]) {
      expect(findUnserializable(wrap(make, new Date(0), MAX_NESTING_DEPTH))).toBeNull();
      expect(findUnserializable(wrap(make, new Uint8Array(1), MAX_NESTING_DEPTH))).toBeNull();
      expect(findUnserializable(wrap(make, null, 10_000))).toContain('levels deep');
    }
  });

  it('refuses, rather than works on for ever, a value that shares its sub-objects level after level', { timeout: 60_000 }, () => {
    // 2^200 paths through 200 objects: no check or encoding would ever get through them all.
    let shared: unknown = { leaf: 1 };
    for (let i = 0; i < 200; i++) shared = { l: shared, r: shared };
    expect(findUnserializable(shared)).toMatch(new RegExp(`^result \\(the value holds more than ${MAX_CONTAINER_VISITS} arrays, objects, Maps and Sets`));
    // Shared a few times over, as real values are, it is fine.
    const config = { retries: 3 };
    expect(findUnserializable({ a: config, b: config, list: [config, config] })).toBeNull();
  });

  it('still names a function deep inside, with a shortened path', () => {
    const list = linkedList(200) as ListNode;
    let node = list;
    for (let i = 0; i < 150; i++) node = node.next!;
    (node as unknown as Record<string, unknown>).fn = () => 1;
    expect(findUnserializable(list)).toMatch(/^result\.next\.next.*…\.next\.next\.fn \(a function\)$/);
  });
});

describe('runs returning deeply nested values', () => {
  let fx: Fixture;
  let processErrors: ReturnType<typeof watchProcessErrors>;

  beforeEach(() => {
    fx = createFixture();
    processErrors = watchProcessErrors();
  });

  afterEach(async () => {
    processErrors.stop();
    await fx.orchestrator.close();
  });

  it('a task returning a list 5,000 levels deep ends Failed with UnserializableResultError, not retried, and the process lives on', async () => {
    let calls = 0;
    const deep = task({ name: uniqueName('deep-task'), retries: 3 }, async () => {
      calls++;
      return linkedList(5_000);
    });
    const { events, caller } = await runInFlow(fx, () => deep());
    expect(names(events)).toEqual(['Pending', 'Running', 'Failed']);
    expect(events.at(-1)?.state).toMatchObject({ errorName: 'UnserializableResultError', errorCode: 'UNSERIALIZABLE_RESULT' });
    expect(events.at(-1)?.state.message).toContain(`nested more than ${MAX_NESTING_DEPTH} levels deep`);
    expect(rejection(caller)).toBeInstanceOf(UnserializableResultError);
    expect(calls).toBe(1);
    expect(processErrors.errors).toEqual([]);
  });

  it('a flow returning a list 5,000 levels deep ends Failed with UnserializableResultError, not retried', async () => {
    let calls = 0;
    const deep = flow({ name: uniqueName('deep-flow'), retries: 2 }, async () => {
      calls++;
      return linkedList(5_000);
    });
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(deep);
    const [result] = await Promise.allSettled([run.result()]);
    const ended = await recorder.untilFlowEnds(run.id);
    recorder.close();
    expect(ended.state).toMatchObject({ name: 'Failed', errorName: 'UnserializableResultError', errorCode: 'UNSERIALIZABLE_RESULT' });
    const error = rejection(result!) as UnserializableResultError;
    expect(error).toBeInstanceOf(UnserializableResultError);
    expect(error.code).toBe('UNSERIALIZABLE_RESULT');
    expect(error.message).toContain('result.next.next');
    expect(calls).toBe(1);
    expect(processErrors.errors).toEqual([]);
  });

  it('a task and a flow returning a list 100 levels deep complete with it', async () => {
    const deepTask = task({ name: uniqueName('list-task') }, async () => linkedList(100));
    const { events, caller } = await runInFlow(fx, () => deepTask());
    expect(names(events)).toEqual(['Pending', 'Running', 'Completed']);
    expect(caller.status === 'fulfilled' && lengthOf(caller.value)).toBe(100);

    const deepFlow = flow({ name: uniqueName('list-flow') }, async () => linkedList(100));
    expect(lengthOf(await fx.orchestrator.start(deepFlow).result())).toBe(100);
    expect(processErrors.errors).toEqual([]);
  });
});
