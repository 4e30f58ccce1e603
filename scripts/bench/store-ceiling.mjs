#!/usr/bin/env node
// The store's own ceiling for `npm run bench`: LmdbStore.applyBatch alone, back to back, on the
// bench's filled store, with batches of distinct domains drawn uniformly from the ones it holds
// (the loadtest's names for seed 1, lowercased as the service stores them). No HTTP, no parsing,
// no engine: what a serve-http figure loses beyond this is ours. Prints one JSON object.
//
//   node scripts/bench/store-ceiling.mjs --store DIR --domains N [--sizes 1000,10000] [--seconds 5]
import { parseArgs } from 'node:util';
import { LmdbStore } from '../../dist/store/lmdb-store.js';
import { domainName } from '../../dist/workload/domain-names.js';

const { values } = parseArgs({
  options: {
    store: { type: 'string' },
    domains: { type: 'string' },
    sizes: { type: 'string', default: '1000,10000' },
    seconds: { type: 'string', default: '5' },
  },
});
if (!values.store || !values.domains) {
  console.error('usage: store-ceiling.mjs --store DIR --domains N [--sizes 1000,10000] [--seconds 5]');
  process.exit(2);
}
const domains = Number(values.domains);
const seconds = Number(values.seconds);
const store = new LmdbStore(values.store);
const results = [];
try {
  for (const size of values.sizes.split(',').map(Number)) results.push(await measure(size));
} finally {
  await store.close();
}
console.log(JSON.stringify({ domains, seconds, batches: results }));

/** Commits batches of `size` distinct domains, one after the other, for `seconds`. */
async function measure(size) {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let committed = 0;
  let commits = 0;
  while (performance.now() - started < seconds * 1000) {
    await store.applyBatch(randomBatch(size));
    committed += size;
    commits++;
  }
  const wallSeconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    domainsPerBatch: size,
    commits,
    domainsPerSecond: committed / wallSeconds,
    msPerCommit: (wallSeconds * 1000) / commits,
    // Every thread of this process: the main thread, lmdb-js's writer and the flushes it starts.
    cpuMicrosPerDomain: (cpu.user + cpu.system) / committed,
  };
}

function randomBatch(size) {
  const deltas = new Map();
  while (deltas.size < Math.min(size, domains)) {
    deltas.set(domainName(1, Math.floor(Math.random() * domains)).toLowerCase(), { delivered: 1, bounced: 0 });
  }
  return deltas;
}
