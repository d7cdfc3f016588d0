// Type tests: `npm run typecheck` (tsconfig.json includes test/) fails when a `@ts-expect-error`
// below stops being an error; vitest runs the `expectTypeOf` checks too.
import { describe, expectTypeOf, it } from 'vitest';
import type { BusMessage, EventStream, FlowStateEvent, HistoricRunEvent, RunEvent, TaskStateEvent } from '../../src/index.js';

// Regression (QA 7a, finding 7): the public event types extended BusMessage and so inherited its
// `[key: string]: unknown`, which let misspelt or made-up fields type-check as `unknown`.
describe('RunEvent types', () => {
  it('refuse a misspelt or unknown field of a watched event', () => {
    const readEvents = async (events: EventStream) => {
      for await (const e of events) {
        // @ts-expect-error: the field is taskRunName
        void e.taskRunNmae;
        // @ts-expect-error: there is no kind field; `type` tells flow and task events apart
        void e.kind;
        // @ts-expect-error: ids are flowRunId and taskRunId
        void e.runId;
        if (e.type === 'task.state') {
          // @ts-expect-error: the field is taskRunName
          void e.taskRunNmae;
          expectTypeOf(e.taskRunName).toEqualTypeOf<string>();
        } else {
          // @ts-expect-error: a flow event has no task run
          void e.taskRunId;
          expectTypeOf(e.flowRunName).toEqualTypeOf<string>();
        }
      }
    };
    void readEvents;
    expectTypeOf<RunEvent>().not.toHaveProperty('taskRunNmae');
    expectTypeOf<FlowStateEvent>().not.toHaveProperty('runId');
    expectTypeOf<TaskStateEvent>().not.toHaveProperty('kind');
    expectTypeOf<HistoricRunEvent>().not.toHaveProperty('streamSeqq');
  });

  it('keep the fields they declare, with their types', () => {
    expectTypeOf<FlowStateEvent['flowName']>().toEqualTypeOf<string>();
    expectTypeOf<FlowStateEvent['parentFlowRunId']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<TaskStateEvent['flowRunId']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<RunEvent['type']>().toEqualTypeOf<'flow.state' | 'task.state'>();
    expectTypeOf<RunEvent['seq']>().toEqualTypeOf<number>();
    expectTypeOf<HistoricRunEvent['streamSeq']>().toEqualTypeOf<number>();
  });

  it('are still bus messages, so the runtime can publish them', () => {
    expectTypeOf<FlowStateEvent>().toExtend<BusMessage>();
    expectTypeOf<TaskStateEvent>().toExtend<BusMessage>();
    expectTypeOf<RunEvent>().toExtend<BusMessage>();
  });
});
