/**
 * A batch that takes a while, for trying tenaz across processes: kill workers
 * with `kill -9` or restart nats-server while it runs, and watch it finish.
 *
 * Each item is fetched (a task), then the items are transformed in parallel
 * (a fan-out), then summed up (a task). Every task reports the process that ran
 * it, so the result shows how the work spread over the workers.
 *
 *   npx tenaz worker examples/batch.ts &      (two or more of these)
 *   npx tenaz run examples/batch.ts --param items=40 --param ms=500
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { flow, getRunContext, getRunLogger, task } from 'tenaz';

/** Takes `ms` to "fetch" an item; honours cancellation. */
export const fetchItem = task({ name: 'fetch-item', retries: 2, retryDelayMs: 200 }, async (id: number, ms: number) => {
  await sleep(ms, undefined, { signal: getRunContext().signal });
  return { id, value: id * 3, worker: process.pid };
});

/** Takes `ms` to "transform" an item. */
export const transform = task({ name: 'transform', retries: 2, retryDelayMs: 200 }, async (item: { id: number; value: number }, ms: number) => {
  await sleep(ms, undefined, { signal: getRunContext().signal });
  return { id: item.id, value: item.value + 1, worker: process.pid };
});

export const summarise = task({ name: 'summarise' }, async (values: number[]) => values.reduce((sum, value) => sum + value, 0));

/** Fetches `items` items four at a time, transforms them all at once, and sums them up. */
export const batch = flow({ name: 'batch' }, async (items: number = 20, ms: number = 500) => {
  const logger = getRunLogger();
  const fetched: Array<{ id: number; value: number; worker: number }> = [];
  for (let start = 0; start < items; start += 4) {
    const ids = Array.from({ length: Math.min(4, items - start) }, (_, i) => start + i);
    fetched.push(...(await Promise.all(ids.map((id) => fetchItem(id, ms)))));
    logger.info(`Fetched ${fetched.length}/${items} items`);
  }
  const transformed = await Promise.all(fetched.map((item) => transform(item, ms)));
  const total = await summarise(transformed.map((item) => item.value));
  const byWorker: Record<string, number> = {};
  for (const { worker } of [...fetched, ...transformed]) byWorker[worker] = (byWorker[worker] ?? 0) + 1;
  logger.info(`Done: ${items} items, total ${total}`);
  return { items, total, taskRunsByWorkerPid: byWorker };
});
