#!/usr/bin/env node
// The ceiling of bench-kafka's scale-out figure: what a materializer does per batch without Kafka
// (sum the deltas-v1 records with the materializer's own sumBatch, read the domains' totals,
// encode the new ones, write them to a partition's store), for `--seconds`, over records built in
// memory like the bench's. Run alone on one core, then two at once on the two cores: their ratio
// is how far this machine lets two CPU- and memory-bound processes of this kind scale (its cores
// share caches and memory with each other and with the host's other guests).
//
//   node scripts/bench/count-alone.mjs --partitions 0,1 [--of 4] [--domains 1000000] [--seconds 6] [--start-at MS]
//
// Prints one JSON line: { events, seconds, eventsPerSecond, cpuSeconds }.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    partitions: { type: 'string', default: '0' },
    of: { type: 'string', default: '4' },
    domains: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '6' },
    // Wall-clock time (ms) to start counting at: two processes started together count at the same time.
    'start-at': { type: 'string' },
  },
});
const OF = Number(values.of);
const MINE = new Set(values.partitions.split(',').map(Number));
const DOMAINS = Number(values.domains);
const root = new URL('../..', import.meta.url).pathname;
const { sumBatch } = await import(join(root, 'dist/materialize/batch-sum.js'));
const { partitionOf } = await import(join(root, 'dist/kafka/partitioner.js'));
const { encodeDeltas, encodeCounts, DELTAS_FORMAT, FORMAT_HEADER } = await import(join(root, 'dist/kafka/records.js'));
const { LmdbStore } = await import(join(root, 'dist/store/lmdb/lmdb-store.js'));

// Batches as a member fetches them: per partition, records of 1,000 domains each (4,000 events
// cut over the partitions, as bench-kafka produces them), 1 MB of records per batch.
let seed = 7;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const batches = new Map([...MINE].map((p) => [p, []]));
let offset = 0;
for (let produced = 0; produced < 2_000_000; ) {
  const byPartition = new Map();
  for (let i = 0; i < 4000; i++) {
    const domain = `d${Math.floor(random() * DOMAINS)}.bench.example`;
    const bounced = random() < 0.05;
    const p = partitionOf(domain, OF);
    if (!MINE.has(p)) continue;
    if (!byPartition.has(p)) byPartition.set(p, new Map());
    const counts = byPartition.get(p).get(domain) ?? { delivered: 0, bounced: 0 };
    counts[bounced ? 'bounced' : 'delivered']++;
    byPartition.get(p).set(domain, counts);
    produced++;
  }
  for (const [p, counts] of byPartition) {
    const list = batches.get(p);
    const value = encodeDeltas(counts);
    let batch = list.at(-1);
    if (!batch || batch.bytes + value.length > 1024 * 1024) list.push((batch = { bytes: 0, messages: [] }));
    batch.bytes += value.length;
    batch.messages.push({ offset: String(offset++), timestamp: String(Date.now()), value, headers: { [FORMAT_HEADER]: Buffer.from(DELTAS_FORMAT) } });
  }
}

const work = mkdtempSync(join(tmpdir(), 'svc-count-alone-'));
const stores = new Map();
for (const p of MINE) stores.set(p, await LmdbStore.open(join(work, `partition-${p}`), { use: 'bulk' }));
const noKeys = new Map();
if (values['start-at']) await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(values['start-at']) - Date.now())));
const cpuBefore = process.cpuUsage();
const started = performance.now();
const deadline = started + Number(values.seconds) * 1000;
let events = 0;
// The partitions in turn, a batch each, as a member's fetches give them; from the first batch again when done.
for (let round = 0; performance.now() < deadline; round++) {
  for (const [p, list] of batches) {
    if (performance.now() >= deadline) break;
    const batch = list[round % list.length];
    const sum = await sumBatch(batch.messages, 0, noKeys, p);
    const store = stores.get(p);
    const stored = await store.getMany([...sum.deltas.keys()]);
    const records = [];
    for (const [domain, delta] of sum.deltas) {
      const before = stored.get(domain) ?? { delivered: 0, bounced: 0 };
      records.push({ key: domain, value: encodeCounts({ delivered: before.delivered + delta.delivered, bounced: before.bounced + delta.bounced }) });
    }
    await store.applyBatch(sum.deltas);
    events += sum.events;
  }
}
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
for (const store of stores.values()) await store.close();
rmSync(work, { recursive: true, force: true });
console.log(JSON.stringify({ events, seconds, eventsPerSecond: events / seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
