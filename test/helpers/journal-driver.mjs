#!/usr/bin/env node
// A writer for test/journal-property.test.ts: opens the embedded store as serve-http does (with
// tiny segments, so that seals and apply jobs happen between batches), appends the batches given
// in argv one at a time, printing "ack <i>" after each is acknowledged, then:
//   end=close  closes the store (applies everything, like SIGTERM);
//   end=kill   kills itself with SIGKILL;
//   end=drain  waits until every other writer's journal is taken over and applied, then closes.
// SVC_CRASH_AT (see src/store/journal/crash-point.ts) may kill it anywhere on the way.
import { LmdbStore } from '../../dist/store/lmdb/lmdb-store.js';
import { endDriver } from './driver-end.mjs';

const [directory, batchesJson, end] = process.argv.slice(2);
const batches = JSON.parse(batchesJson);
const store = await LmdbStore.open(directory, {
  use: 'ingest',
  segmentBytes: 200,
  applyAfterMs: 20,
  leaseMs: 300,
  domainsPerTransaction: 2,
});
for (const [i, entries] of batches.entries()) {
  await applyRetrying(new Map(entries.map(([domain, delivered, bounced]) => [domain, { delivered, bounced }])));
  process.stdout.write(`ack ${i}\n`);
  // Lets the seal timer and the apply thread run between some batches.
  if (i % 3 === 2) await new Promise((resolve) => setTimeout(resolve, 15));
}
await endDriver(store, directory, end);

/**
 * A process stalled past its lease (a loaded machine) is refused until the lease is renewed, before
 * anything of the batch is written: like a client answered 503, the driver sends the batch again.
 */
async function applyRetrying(deltas) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await store.applyBatch(deltas);
    } catch (error) {
      if (error.code !== 'SVC_STORE_UNAVAILABLE' || attempt === 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
