import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { BusMessage } from '../../src/bus/bus.js';
import { batchReplySchema, claimReplySchema, outcomeReplySchema, taskDispatchSchema, toOwnerSchema } from '../../src/remote/messages.js';
import { parseBatchReply, parseClaimReply, parseOutcomeReply, parseTaskDispatch, parseToOwner } from '../../src/remote/parse-messages.js';

const id = '6f1c2a4e-0d7b-4c9e-9a51-3b8e2f7d1c00';

const valid: Record<string, BusMessage[]> = {
  toOwner: [
    { v: 1, type: 'task.claim', taskRunId: id, attempt: 1, workerId: id, worker: `tenaz.worker.${id}` },
    { v: 1, type: 'task.outcome', taskRunId: id, attempt: 2, workerId: id, ok: true, value: { a: [1, 2] } },
    { v: 1, type: 'task.outcome', taskRunId: id, attempt: 1, workerId: id, ok: false, error: { name: 'E', code: 'C', message: 'm', retryable: true, stack: 's' } },
    { v: 1, type: 'task.heartbeat', workerId: id, runs: [[id, 1], ['x', 3]] },
    {
      v: 1,
      type: 'task.batch',
      items: [
        { v: 1, type: 'task.claim', taskRunId: id, attempt: 1, workerId: id, worker: `tenaz.worker.${id}`, extra: 1 },
        { v: 1, type: 'task.outcome', taskRunId: id, attempt: 2, workerId: id, ok: false, error: { name: 'E', code: 'C', message: 'm', retryable: true } },
      ],
    },
  ],
  dispatch: [
    { v: 1, type: 'task.dispatch', taskRunId: id, taskRunName: 't-0', taskName: 't', attempt: 1, args: [1], owner: 'tenaz.owner.o', heartbeatMs: 1000, idempotencyKey: 'k' },
    { v: 1, type: 'task.dispatch', taskRunId: id, taskRunName: '', taskName: 't', attempt: 3, args: [], owner: 'o', heartbeatMs: 1, idempotencyKey: '', flowRunId: id, flowRunName: 'n', flowName: 'f' },
    { v: 1, type: 'task.dispatch', taskRunId: id, taskRunName: 't-0', taskName: 't', attempt: 1, args: [], owner: 'o', heartbeatMs: 1, idempotencyKey: 'k', flowRunId: id, depth: 7 },
  ],
  claimReply: [
    { v: 1, type: 'task.claim.reply', accepted: true },
    { v: 1, type: 'task.claim.reply', accepted: false, reason: 'no' },
  ],
  outcomeReply: [{ v: 1, type: 'task.outcome.reply', accepted: false }],
  batchReply: [
    { v: 1, type: 'task.batch.reply', replies: [{ v: 1, type: 'task.claim.reply', accepted: false, reason: 'no' }, { v: 1, type: 'task.outcome.reply', accepted: true }] },
    { v: 1, type: 'task.batch.reply', replies: [] },
  ],
};

/** Values that sit on the edges of the schemas' rules. */
const odd: unknown[] = [
  undefined, null, '', 'x', 'x'.repeat(200), 'x'.repeat(201), 'y'.repeat(10_001), 0, -0, -1, 1, 1.5, 2 ** 53, 2 ** 53 - 1, NaN, Infinity, true, false,
  [], [id], [id, 1], [id, 1, 2], [[id, 1]], [[id, 0]], [[id, 1, 2]], [[id]], [, [id, 1]], [1, id], {}, { name: 'E', code: 'C', message: 'm', retryable: false },
  { name: 'E', code: 'C', message: 'm', retryable: 'yes' }, { name: 'E', code: 'C', message: 'm', retryable: true, stack: 'x'.repeat(10_001) },
  { name: 'E', code: 'C', message: 'm', retryable: true, stack: null }, { name: 'E', code: 'C', message: 'm', retryable: true, stack: undefined, extra: 1 },
  new Date(0), new Map([['a', 1]]), new Uint8Array(2), 'task.claim', 'task.outcome', 'task.heartbeat', 'task.dispatch', 'task.claim.reply',
  'task.batch', 'task.batch.reply', [{ v: 1, type: 'task.claim.reply', accepted: true }], [{ v: 1, type: 'task.claim', taskRunId: id, attempt: 1, workerId: id, worker: 'w' }],
  [{ v: 1, type: 'task.heartbeat', workerId: id, runs: [] }], [{ v: 2, type: 'task.claim', taskRunId: id, attempt: 1, workerId: id, worker: 'w' }], [null],
  Array.from({ length: 1_001 }, () => ({ v: 1, type: 'task.claim', taskRunId: id, attempt: 1, workerId: id, worker: 'w' })),
];

/** Every valid message with one field changed to each odd value, removed, or joined by an extra field. */
function* variants(messages: BusMessage[]): Generator<BusMessage> {
  for (const message of messages) {
    yield message;
    yield { ...message, extra: 1 };
    for (const key of [...Object.keys(message), 'value', 'error', 'reason', 'stack', 'flowRunId', 'flowName', 'flowRunName', 'depth', 'items', 'replies']) {
      const { [key]: _removed, ...rest } = message;
      yield rest as BusMessage;
      for (const value of odd) yield { ...message, [key]: value };
    }
  }
}

function expectSame(schema: z.ZodType, parse: (message: BusMessage) => unknown, messages: BusMessage[]): number {
  let count = 0;
  for (const message of variants(messages)) {
    const expected = schema.safeParse(message);
    const actual = parse(message);
    if (expected.success) expect(actual, JSON.stringify(message)).toEqual(expected.data);
    else expect(actual, JSON.stringify(message)).toBeNull();
    count++;
  }
  return count;
}

describe('parse-messages', () => {
  it('accepts exactly what toOwnerSchema accepts, with the same fields', () => {
    expect(expectSame(toOwnerSchema, parseToOwner, valid.toOwner!)).toBeGreaterThan(1_000);
  });

  it('accepts exactly what taskDispatchSchema accepts, with the same fields', () => {
    expectSame(taskDispatchSchema, parseTaskDispatch, valid.dispatch!);
  });

  it("keeps a dispatch's depth when it is a non-negative integer, and takes a dispatch without one (an older owner's)", () => {
    const dispatch = valid.dispatch![0]!;
    expect(parseTaskDispatch({ ...dispatch, depth: 200 })?.depth).toBe(200);
    expect(parseTaskDispatch({ ...dispatch, depth: 0 })?.depth).toBe(0);
    expect(parseTaskDispatch(dispatch)).toEqual(dispatch);
    expect(parseTaskDispatch(dispatch)).not.toHaveProperty('depth');
    for (const depth of [-1, 1.5, '3', null, NaN, Infinity, 2 ** 53]) expect(parseTaskDispatch({ ...dispatch, depth }), String(depth)).toBeNull();
  });

  it('accepts exactly what the reply schemas accept', () => {
    expectSame(claimReplySchema, parseClaimReply, valid.claimReply!);
    expectSame(outcomeReplySchema, parseOutcomeReply, valid.outcomeReply!);
    expectSame(batchReplySchema, parseBatchReply, valid.batchReply!);
  });

  it('accepts a batch only when every item is a valid claim or outcome', () => {
    const claim = valid.toOwner![0]!;
    const heartbeat = valid.toOwner![3]!;
    expect(parseToOwner({ v: 1, type: 'task.batch', items: [claim, claim] })).toEqual({ v: 1, type: 'task.batch', items: [claim, claim] });
    expect(parseToOwner({ v: 1, type: 'task.batch', items: [claim, heartbeat] })).toBeNull();
    expect(parseToOwner({ v: 1, type: 'task.batch', items: [claim, { ...claim, attempt: 0 }] })).toBeNull();
    expect(parseToOwner({ v: 1, type: 'task.batch', items: [{ v: 1, type: 'task.batch', items: [claim] }] })).toBeNull();
  });

  it('returns a copy without the fields the schema does not know', () => {
    const parsed = parseToOwner({ v: 1, type: 'task.outcome', taskRunId: id, attempt: 1, workerId: id, ok: false, error: { name: 'E', code: 'C', message: 'm', retryable: true, extra: 'x' }, more: 1 });
    expect(parsed).toStrictEqual({ v: 1, type: 'task.outcome', taskRunId: id, attempt: 1, workerId: id, ok: false, error: { name: 'E', code: 'C', message: 'm', retryable: true } });
  });
});
