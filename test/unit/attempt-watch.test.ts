import { describe, expect, it } from 'vitest';
import { AttemptWatch } from '../../src/remote/attempt-watch.js';

/** A watch on a clock the test moves; `sweep()` is called by hand, as its timer would. */
function startWatch() {
  let now = 0;
  const crashed: Array<[string, number]> = [];
  const unclaimed: Array<[string, number]> = [];
  const watch = new AttemptWatch({
    heartbeatTimeoutMs: 300,
    claimWarningMs: 1_000,
    now: () => now,
    crashed: (id, attempt) => void crashed.push([id, attempt]),
    unclaimed: (id, attempt) => void unclaimed.push([id, attempt]),
  });
  const advance = (ms: number) => {
    now += ms;
    watch.sweep();
  };
  return { watch, advance, crashed, unclaimed };
}

describe('AttemptWatch', () => {
  it('says an attempt crashed once its heartbeats stop for the timeout, and not before', () => {
    const { watch, advance, crashed } = startWatch();
    watch.claimed('a', 1);
    advance(250);
    watch.heard('a', 1);
    advance(250);
    // A heartbeat of another attempt, or of an unknown run, says nothing.
    watch.heard('a', 2);
    watch.heard('b', 1);
    advance(49);
    expect(crashed).toEqual([]);
    advance(1);
    expect(crashed).toEqual([['a', 1]]);
    // Said once.
    advance(1_000);
    expect(crashed).toEqual([['a', 1]]);
  });

  it('warns about an attempt waiting for a worker every claimWarningMs until it is claimed', () => {
    const { watch, advance, unclaimed, crashed } = startWatch();
    watch.dispatched('a', 1);
    advance(999);
    expect(unclaimed).toEqual([]);
    advance(1);
    advance(1_000);
    expect(unclaimed).toEqual([
      ['a', 1],
      ['a', 1],
    ]);
    watch.claimed('a', 1);
    watch.heard('a', 1);
    advance(200);
    expect(unclaimed).toHaveLength(2);
    expect(crashed).toEqual([]);
  });

  it('finds only the overdue among many, in any order of hearing', () => {
    const { watch, advance, crashed } = startWatch();
    for (const id of ['a', 'b', 'c']) watch.claimed(id, 1);
    advance(200);
    watch.heard('a', 1);
    advance(100);
    expect(crashed.map(([id]) => id).sort()).toEqual(['b', 'c']);
    advance(200);
    expect(crashed.map(([id]) => id).sort()).toEqual(['a', 'b', 'c']);
  });

  it('says nothing of attempts forgotten, and vouches for all while the owner cannot hear', () => {
    const { watch, advance, crashed, unclaimed } = startWatch();
    watch.dispatched('w', 1);
    watch.claimed('a', 1);
    watch.claimed('b', 2);
    watch.forget('w');
    watch.forget('a', 2);
    watch.forget('b', 2);
    advance(250);
    watch.vouchForAll();
    advance(250);
    expect(crashed).toEqual([]);
    advance(1_000);
    expect(crashed).toEqual([['a', 1]]);
    expect(unclaimed).toEqual([]);
    watch.close();
  });
});
