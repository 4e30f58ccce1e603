#!/usr/bin/env node
// The store's own ceiling for `npm run bench`: what an apply job does to LMDB, alone. Batches of
// random existing domains of the filled store (the loadtest's names for seed 1, lowercased as the
// service stores them), sorted and added in transactions of 10,000, back to back. No HTTP, no
// parsing, no journal: the rate at which events over uniformly spread domains can be applied is
// the most serve-http can sustain with them. Prints one JSON object.
//
//   node scripts/bench/store-ceiling.mjs --store DIR --domains N [--sizes 100000,1000000] [--seconds 10]
import { parseArgs } from 'node:util';
import { DEFAULT_JOURNAL } from '../../dist/store/journal/defaults.js';
import { LmdbTables } from '../../dist/store/lmdb/lmdb-tables.js';
import { SortedDeltas } from '../../dist/store/sorted-deltas.js';
import { domainName } from '../../dist/workload/domain-names.js';

const { values } = parseArgs({
  options: {
    store: { type: 'string' },
    domains: { type: 'string' },
    sizes: { type: 'string', default: '100000,1000000' },
    seconds: { type: 'string', default: '10' },
  },
});
if (!values.store || !values.domains) {
  console.error('usage: store-ceiling.mjs --store DIR --domains N [--sizes 100000,1000000] [--seconds 10]');
  process.exit(2);
}
const domains = Number(values.domains);
const seconds = Number(values.seconds);
const tables = new LmdbTables(values.store);
const results = [];
try {
  for (const size of values.sizes.split(',').map(Number)) results.push(await measure(size));
} finally {
  await tables.close();
}
console.log(JSON.stringify({ domains, seconds, batches: results }));

/** Applies sorted batches of `size` distinct domains, one after the other, for at least `seconds`. */
async function measure(size) {
  let cpu = 0;
  let wall = 0;
  let applied = 0;
  let jobs = 0;
  while (wall < seconds * 1000 || jobs === 0) {
    const batch = SortedDeltas.of(randomBatch(size));
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await tables.addSortedInParts(batch, DEFAULT_JOURNAL.domainsPerTransaction, { start: () => 0, record() {} });
    await tables.root.flushed;
    wall += performance.now() - started;
    const used = process.cpuUsage(cpuBefore);
    cpu += used.user + used.system;
    applied += batch.size;
    jobs++;
  }
  return {
    domainsPerBatch: size,
    jobs,
    domainsPerSecond: applied / (wall / 1000),
    msPerJob: wall / jobs,
    // Every thread of this process: the main thread and LMDB's flushes.
    cpuMicrosPerDomain: cpu / applied,
  };
}

function randomBatch(size) {
  const deltas = new Map();
  while (deltas.size < Math.min(size, domains)) {
    deltas.set(domainName(1, Math.floor(Math.random() * domains)).toLowerCase(), { delivered: 1, bounced: 0 });
  }
  return deltas;
}
