#!/usr/bin/env node
// A client and writer for test/idempotency-property.test.ts: opens the embedded store as
// serve-http does (tiny segments, a 300 ms lease), then sends the keyed requests given in argv one
// at a time through processOnce, the protocol serve-http runs for an Idempotency-Key, retrying
// each until it is answered (for at most a few seconds), and prints "ack <key>" when it is. Then:
//   end=close  closes the store (applies everything, like SIGTERM);
//   end=kill   kills itself with SIGKILL;
//   end=drain  waits until every other writer's journal is taken over and applied, then closes.
// SVC_CRASH_AT (see src/store/journal/crash-point.ts) may kill it anywhere on the way.
import { fingerprint, processOnce } from '../../dist/core/idempotency.js';
import { LmdbStore } from '../../dist/store/lmdb/lmdb-store.js';
import { endDriver } from './driver-end.mjs';

const [directory, requestsJson, end] = process.argv.slice(2);
const requests = JSON.parse(requestsJson);
const store = await LmdbStore.open(directory, { use: 'ingest', segmentBytes: 300, applyAfterMs: 20, leaseMs: 300, domainsPerTransaction: 2 });
for (const [key, entries] of requests) {
  const deltas = new Map(entries.map(([domain, delivered, bounced]) => [domain, { delivered, bounced }]));
  const request = { key, fingerprint: fingerprint('PUT', `/${key}`), answer: { status: 204, body: '' } };
  for (let attempt = 0; ; attempt++) {
    try {
      await processOnce(store, request, 3_600_000, (claimed) => store.applyBatch(deltas, { keys: [claimed] }));
      process.stdout.write(`ack ${key}\n`);
      break;
    } catch (error) {
      // In flight in a dead process until its claim is taken over, or a stalled lease: try again.
      if (attempt === 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
await endDriver(store, directory, end);
