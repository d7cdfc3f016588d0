import { describe, it, expect } from 'vitest';
import { createMemoryBus } from '../../src/bus/memory.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { DEFAULT_NAMESPACE, createSubjects, encodeToken, parseToken, type EventFilter } from '../../src/subjects.js';

const awkwardNames = [
  'etl',
  'daily-run_2',
  'etl.daily',
  'with space',
  'tab\there',
  'star*',
  'gt>',
  '>',
  '*',
  '%',
  '%41',
  '100%',
  '_',
  '__',
  'a.b.c',
  "quote'(paren)!~",
  'naïve café',
  '日本語のフロー',
  'emoji 🚀',
  'line\nbreak',
  '\u0000nul',
];

describe('encodeToken', () => {
  it.each(awkwardNames)('round-trips %j through parseToken', (name) => {
    expect(parseToken(encodeToken(name))).toBe(name);
  });

  it.each(awkwardNames)('encodes %j into a single safe token', (name) => {
    const token = encodeToken(name);
    expect(token).toMatch(/^(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+$/);
    expect(token).not.toMatch(/[.*>\s]/);
  });

  it('keeps plain names and uuids as they are', () => {
    const uuid = crypto.randomUUID();
    expect(encodeToken(uuid)).toBe(uuid);
    expect(encodeToken('My_Flow-1')).toBe('My_Flow-1');
  });

  it('escapes every other UTF-8 byte as uppercase %XX', () => {
    expect(encodeToken('a.b c')).toBe('a%2Eb%20c');
    expect(encodeToken('*>%')).toBe('%2A%3E%25');
    expect(encodeToken('é')).toBe('%C3%A9');
  });

  it('encodes the bare name _ apart from the absent-flow placeholder', () => {
    expect(encodeToken('_')).not.toBe('_');
  });

  it('returns the same token from the cache', () => {
    expect(encodeToken('cached name')).toBe(encodeToken('cached name'));
  });

  it('throws InvalidArgumentError for empty names and lone surrogates', () => {
    expect(() => encodeToken('')).toThrow(InvalidArgumentError);
    expect(() => encodeToken('\uD800')).toThrow(InvalidArgumentError);
  });
});

describe('parseToken', () => {
  it.each(['', '%', 'a%', 'a%4', '%G1', '%2e', 'a.b', 'a b', '*', '>', '%C3', '%FF', '%41', '_'])('returns null for %j', (token) => {
    expect(parseToken(token)).toBeNull();
  });
});

describe('createSubjects', () => {
  const subjects = createSubjects(DEFAULT_NAMESPACE);
  const runId = '2f1c3a52-6a0e-4d0b-9b7e-0e1f9a3c5d11';
  const taskRunId = '9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b';

  it('builds every subject under the namespace', () => {
    expect(subjects.flowEvent('etl', runId)).toBe(`tenaz.evt.etl.${runId}.flow`);
    expect(subjects.taskEvent('etl', runId, 'load', taskRunId)).toBe(`tenaz.evt.etl.${runId}.task.load.${taskRunId}`);
    expect(subjects.taskEvent(undefined, undefined, 'load', taskRunId)).toBe(`tenaz.evt._._.task.load.${taskRunId}`);
    expect(subjects.runLog('etl', runId, taskRunId)).toBe(`tenaz.log.etl.${runId}.${taskRunId}`);
    expect(subjects.runLog(undefined, undefined, taskRunId)).toBe(`tenaz.log._._.${taskRunId}`);
    expect(subjects.taskDispatch('default', 'load')).toBe('tenaz.task.default.load');
    expect(subjects.owner(taskRunId)).toBe(`tenaz.owner.${taskRunId}`);
    expect(subjects.worker(taskRunId)).toBe(`tenaz.worker.${taskRunId}`);
    expect(subjects.allTaskDispatch).toBe('tenaz.task.>');
    expect(subjects.tasksStream).toBe('tenaz_tasks');
    expect(subjects.taskConsumer('gpu pool', 'a.b')).toBe('gpu%20pool~a%2Eb');
    expect(subjects.control(runId)).toBe(`tenaz.ctl.${runId}`);
    expect(createSubjects('acme').flowEvent('f', 'r')).toBe('acme.evt.f.r.flow');
  });

  it('encodes names and ids so they stay one token each', () => {
    expect(subjects.flowEvent('etl.daily', 'x.y')).toBe('tenaz.evt.etl%2Edaily.x%2Ey.flow');
    expect(subjects.taskDispatch('gpu pool', 'a>b')).toBe('tenaz.task.gpu%20pool.a%3Eb');
  });

  it('builds the documented event filter patterns', () => {
    expect(subjects.eventFilter()).toBe('tenaz.evt.>');
    expect(subjects.eventFilter({ flowName: 'etl' })).toBe('tenaz.evt.etl.>');
    expect(subjects.eventFilter({ flowRunId: runId })).toBe(`tenaz.evt.*.${runId}.>`);
    expect(subjects.eventFilter({ kind: 'flow' })).toBe('tenaz.evt.*.*.flow');
    expect(subjects.eventFilter({ flowName: 'etl', flowRunId: runId, kind: 'task' })).toBe(`tenaz.evt.etl.${runId}.task.*.*`);
  });

  it('throws InvalidArgumentError for a namespace that is not a plain token', () => {
    for (const bad of ['', 'a.b', 'a b', '*', '>', 'ns%']) {
      expect(() => createSubjects(bad)).toThrow(InvalidArgumentError);
    }
  });

  it('throws InvalidArgumentError for empty names and unknown kinds', () => {
    expect(() => subjects.flowEvent('', runId)).toThrow(InvalidArgumentError);
    expect(() => subjects.eventFilter({ kind: 'other' as 'flow' })).toThrow(InvalidArgumentError);
  });
});

describe('eventFilter', () => {
  const subjects = createSubjects('tenaz');
  const published = {
    etlFlow: subjects.flowEvent('etl', 'r1'),
    etlTask: subjects.taskEvent('etl', 'r1', 'load', 't1'),
    otherRunFlow: subjects.flowEvent('etl', 'r2'),
    dotsFlow: subjects.flowEvent('etl.daily', 'r3'),
    dotsTask: subjects.taskEvent('etl.daily', 'r3', 'a.b', 't3'),
    looseTask: subjects.taskEvent(undefined, undefined, 'load', 't4'),
    log: subjects.runLog('etl', 'r1', 't1'),
    otherNamespace: createSubjects('other').flowEvent('etl', 'r1'),
  };
  type Name = keyof typeof published;

  const cases: Array<[filter: EventFilter, expected: Name[]]> = [
    [{}, ['etlFlow', 'etlTask', 'otherRunFlow', 'dotsFlow', 'dotsTask', 'looseTask']],
    [{ flowName: 'etl' }, ['etlFlow', 'etlTask', 'otherRunFlow']],
    [{ flowName: 'etl.daily' }, ['dotsFlow', 'dotsTask']],
    [{ flowRunId: 'r1' }, ['etlFlow', 'etlTask']],
    [{ kind: 'flow' }, ['etlFlow', 'otherRunFlow', 'dotsFlow']],
    [{ kind: 'task' }, ['etlTask', 'dotsTask', 'looseTask']],
    [{ flowName: 'etl', kind: 'flow' }, ['etlFlow', 'otherRunFlow']],
    [{ flowName: 'etl', flowRunId: 'r1', kind: 'task' }, ['etlTask']],
    [{ flowName: 'etl', flowRunId: 'r2' }, ['otherRunFlow']],
    [{ flowName: 'missing' }, []],
  ];

  it.each(cases)('%j selects exactly %j', async (filter, expected) => {
    const bus = createMemoryBus();
    const seen: string[] = [];
    bus.subscribe(subjects.eventFilter(filter), { callback: (d) => seen.push(d.subject) });
    for (const subject of Object.values(published)) bus.publish(subject, { v: 1, type: 'test.event' });
    await bus.flush();
    expect(seen).toEqual(expected.map((name) => published[name]));
    await bus.close();
  });
});
