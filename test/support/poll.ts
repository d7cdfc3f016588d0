/** Polls `check` every 100 ms until it returns a value; fails after `timeoutMs`, with the last error as the cause. */
export async function poll<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${timeoutMs} ms)`, { cause: last });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
