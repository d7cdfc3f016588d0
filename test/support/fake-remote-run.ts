/** Stand-ins for what the NATS tests need of the runtime. */
import type { RemoteTaskRun } from '../../src/remote/dispatcher.js';

/** A run that waits for attempt 1 until told otherwise, and records dispatch failures. */
export class FakeRun implements RemoteTaskRun {
  wanted = true;
  readonly depth = 1;
  readonly failures: Error[] = [];
  constructor(readonly id = 'run-1') {}
  acceptClaim(): boolean {
    return false;
  }
  attemptCrashed(): void {}
  attemptUnclaimed(): void {}
  acceptOutcome(): boolean {
    return false;
  }
  dispatchFailed(_attempt: number, error: Error): void {
    this.failures.push(error);
  }
  wants(attempt: number): boolean {
    return this.wanted && attempt === 1;
  }
}
