import { describeStoreContract } from '../support/store-conformance.js';
import { createMemoryStore } from '../../src/store/memory.js';

describeStoreContract('memory store', async () => {
  let now = 1_700_000_000_000;
  const store = createMemoryStore({ now: () => now });
  return {
    store,
    advance: (ms) => {
      now += ms;
    },
    cleanup: () => store.close(),
  };
});
