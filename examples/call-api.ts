/**
 * The `call_api` flow from the Prefect write-up: GET a URL that answers JSON,
 * with the HTTP request in its own task so that only the request is retried.
 *
 *   npx tenaz run examples/call-api.ts --param url=https://api.github.com/zen
 */
import { z } from 'zod';
import { flow, getRunContext, getRunLogger, task } from 'tenaz';

/** GETs `url` and parses its JSON body; a non-2xx answer is an error, and is retried. */
export const callApiTask = task(
  { name: 'call-api', retries: 2, retryDelayMs: 200, timeoutMs: 10_000 },
  async (url: string): Promise<unknown> => {
    const res = await fetch(url, { headers: { accept: 'application/json' }, signal: getRunContext().signal });
    if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${res.statusText}`);
    const body: unknown = await res.json();
    getRunLogger().info({ status: res.status, response: body }, `Response: ${preview(body)}`);
    return body;
  },
);

/** Calls a JSON API and returns what it answered; `url` must be a valid URL. */
export const callApi = flow(
  { name: 'call-api', params: z.object({ url: z.url() }) },
  async ({ url }) => callApiTask(url),
);

/** Pretty terminal lines hide fields, so the message carries the start of the body. */
function preview(body: unknown): string {
  const text = JSON.stringify(body) ?? String(body);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
