import { describe, expect, it } from 'vitest';
import type { Bus, BusMessage } from '../../src/bus/bus.js';
import { createMemoryBus } from '../../src/bus/memory.js';
import { PayloadTooLargeError, TimeoutError } from '../../src/errors.js';
import { wire, type TaskClaim, type TaskOutcome } from '../../src/remote/messages.js';
import { OwnerRequests } from '../../src/remote/owner-requests.js';
import { parseToOwner } from '../../src/remote/parse-messages.js';

const OWNER = 'tenaz.owner.a';

const claim = (taskRunId: string) => wire<TaskClaim>({ type: 'task.claim', taskRunId, attempt: 1, workerId: 'w', worker: 'tenaz.worker.w' });
const outcome = (taskRunId: string) => wire<TaskOutcome>({ type: 'task.outcome', taskRunId, attempt: 1, workerId: 'w', ok: true, value: taskRunId });

/** An owner that accepts claims of runs named `ok*` and every outcome, and remembers what it got. */
function fakeOwner(bus: Bus, subject = OWNER) {
  const received: BusMessage[] = [];
  const answer = (item: TaskClaim | TaskOutcome) =>
    item.type === 'task.claim' ? { v: 1, type: 'task.claim.reply', accepted: item.taskRunId.startsWith('ok') } : { v: 1, type: 'task.outcome.reply', accepted: true };
  bus.subscribe(subject, {
    callback: (delivery) => {
      received.push(delivery.message);
      const message = parseToOwner(delivery.message);
      if (message === null || message.type === 'task.heartbeat' || delivery.reply === undefined) return;
      const reply = message.type === 'task.batch' ? { v: 1, type: 'task.batch.reply', replies: message.items.map(answer) } : answer(message);
      bus.publish(delivery.reply, reply);
    },
  });
  return received;
}

describe('OwnerRequests', () => {
  it("sends what one turn has for an owner as one batch, and gives each caller its own item's reply", async () => {
    const bus = createMemoryBus();
    const received = fakeOwner(bus);
    const requests = new OwnerRequests(bus, 1_000);
    const replies = await Promise.all([requests.request(OWNER, claim('ok-1')), requests.request(OWNER, claim('no-2')), requests.request(OWNER, outcome('ok-1'))]);
    expect(replies.map((r) => [r.type, r.accepted])).toEqual([
      ['task.claim.reply', true],
      ['task.claim.reply', false],
      ['task.outcome.reply', true],
    ]);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ type: 'task.batch', items: [{ taskRunId: 'ok-1' }, { taskRunId: 'no-2' }, { type: 'task.outcome' }] });
    await bus.close();
  });

  it('sends a lone item as it is, one request per owner, and later turns on their own', async () => {
    const bus = createMemoryBus();
    const first = fakeOwner(bus);
    const second = fakeOwner(bus, 'tenaz.owner.b');
    const requests = new OwnerRequests(bus, 1_000);
    await Promise.all([requests.request(OWNER, claim('ok-1')), requests.request('tenaz.owner.b', claim('ok-2'))]);
    await requests.request(OWNER, outcome('ok-1'));
    expect(first.map((m) => m.type)).toEqual(['task.claim', 'task.outcome']);
    expect(second.map((m) => m.type)).toEqual(['task.claim']);
    await bus.close();
  });

  it('rejects every item of a batch nobody answers, as a request alone would be', async () => {
    const bus = createMemoryBus();
    bus.subscribe(OWNER, { callback: () => {} });
    const requests = new OwnerRequests(bus, 50);
    const results = await Promise.allSettled([requests.request(OWNER, claim('ok-1')), requests.request(OWNER, claim('ok-2'))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(TimeoutError);
    await bus.close();
  });

  it('rejects every item when the owner answers a batch with something else', async () => {
    const bus = createMemoryBus();
    bus.subscribe(OWNER, { callback: (d) => d.reply && bus.publish(d.reply, { v: 1, type: 'task.batch.reply', replies: [{ v: 1, type: 'task.claim.reply', accepted: true }] }) });
    const requests = new OwnerRequests(bus, 1_000);
    const results = await Promise.allSettled([requests.request(OWNER, claim('ok-1')), requests.request(OWNER, claim('ok-2'))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await bus.close();
  });

  it('sends each item alone when together they are too large, so only one too large by itself fails', async () => {
    const bus = createMemoryBus();
    const received = fakeOwner(bus);
    // A bus with a payload limit: a batch is refused before anything is sent, as the NATS bus does.
    const limited: Bus = Object.create(bus, {
      request: {
        value: (subject: string, message: BusMessage, options: { timeoutMs?: number }) =>
          message.type === 'task.batch' || (message.type === 'task.outcome' && message.taskRunId === 'huge')
            ? Promise.reject(new PayloadTooLargeError('too large'))
            : bus.request(subject, message, options),
      },
    });
    const requests = new OwnerRequests(limited, 1_000);
    const results = await Promise.allSettled([requests.request(OWNER, outcome('ok-1')), requests.request(OWNER, outcome('huge')), requests.request(OWNER, claim('ok-3'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(PayloadTooLargeError);
    expect(received.map((m) => m.type)).toEqual(['task.outcome', 'task.claim']);
    await bus.close();
  });
});
