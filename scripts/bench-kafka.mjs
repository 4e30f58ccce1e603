#!/usr/bin/env node
// The Kafka pipeline's figures, each beside what it is compared with in the same run, on the kfake
// test broker (scripts/kafka). Prints a table and writes bench/results/kafka-<date>.json.
//
//   node scripts/bench-kafka.mjs [--seconds 8] [--events 1000000] [--domains 1000000] [--partitions 4]
//                                [--restore-domains 1000000] [--restore-partitions 1] [--probes 200]
//                                [--only put,materialize,lag,restore] [--put-connections 32] [--put-pinned]
//                                [--repeat 1]
//
// 1. single-event PUTs/s through serve-http on Kafka, against the same serve-http on the embedded
//    store (wrk, `--put-connections` connections, uniform domains). Each connection waits for its
//    answer, and on Kafka an answer waits for a produce round trip: with few connections the Kafka
//    figure is connections / round trip, with many it is what the cores do. `--put-pinned` runs
//    serve-http and wrk on core 0 and the broker on core 1 (as if on a machine of its own), so
//    that both serve-http runs have the same core; the CPU each process used is reported;
// 2. events/s counted by one `svc materialize` pinned to core 0 (taskset), then by two pinned to
//    cores 0 and 1, over the same events pre-produced to PREFIX.events, once the group is settled:
//    the scale-out ratio, and the CPU per event. `--repeat N` runs N such pairs and reports the
//    median ratio (a pair's two runs are a minute apart, and this machine's speed varies more).
//    Its ceiling: the members' own counting without Kafka, one process and two (count-alone.mjs);
// 3. lag from a PUT's acknowledgement to the event being visible on serve-read (P50, P99), with
//    a paced background load of about half the PUT rate of (1);
// 4. restore: `--restore-domains` domains in PREFIX.counts (over `--restore-partitions`), restored
//    by a materializer given them, and by a serve-read starting (domains/s), against the ceiling of
//    reading them with a bare kafkajs consumer that does nothing with the records.
// The broker, wrk and the loaders share the machine's cores with what is measured: ratios are
// more telling than absolute figures, and a 2-core machine cannot show a clean 2x.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { request } from 'undici';
import { pin, startDaemon, treeUsage } from './bench/processes.mjs';
import { ensureWrk, runWrk } from './bench/wrk.mjs';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    events: { type: 'string', default: '1000000' },
    domains: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '4' },
    'restore-domains': { type: 'string', default: '1000000' },
    'restore-partitions': { type: 'string', default: '1' },
    probes: { type: 'string', default: '200' },
    'put-connections': { type: 'string', default: '32' },
    'put-pinned': { type: 'boolean', default: false },
    // Pairs of materialize runs (one member, then two): this machine is noisy, the median pair is reported.
    repeat: { type: 'string', default: '1' },
    // A subset of the steps, e.g. `--only restore` while working on one of them; the table has their rows only.
    only: { type: 'string', default: 'put,materialize,lag,restore' },
    out: { type: 'string' },
  },
});
const SECONDS = Number(values.seconds);
const EVENTS = Number(values.events);
const DOMAINS = Number(values.domains);
const PARTITIONS = Number(values.partitions);
const RESTORE_DOMAINS = Number(values['restore-domains']);
const RESTORE_PARTITIONS = Number(values['restore-partitions']);
const PROBES = Number(values.probes);
const PUT_CONNECTIONS = Number(values['put-connections']);
const PUT_PINNED = values['put-pinned'];
const REPEAT = Number(values.repeat);
const STEPS = new Set(values.only.split(','));
for (const step of STEPS) if (!['put', 'materialize', 'lag', 'restore'].includes(step)) throw new Error(`--only: no step ${step} (put, materialize, lag, restore)`);
const root = new URL('..', import.meta.url).pathname;
const SVC = join(root, 'bin/svc.js');
const { partitionOf } = await import(join(root, 'dist/kafka/partitioner.js'));
const { encodeDeltas, encodeCounts, DELTAS_FORMAT, FORMAT_HEADER, NEXT_OFFSET_KEY } = await import(join(root, 'dist/kafka/records.js'));

await ensureWrk();
const work = mkdtempSync(join(tmpdir(), 'svc-bench-kafka-'));
const brokerBinary = execFileSync('bash', [join(root, 'scripts/kafka/build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
// kfake compacts a topic by reading its whole log again at every backoff, on the cores being
// measured (a real broker's cleaner runs on the broker's machines): with millions of counts records
// that pass never ends. The runs here measure nothing that compaction changes.
const broker = spawn(brokerBinary, ['-brokers', '1', '-compaction-backoff', '1h'], { stdio: ['ignore', 'pipe', 'inherit'] });
if (PUT_PINNED) pin(broker.pid, '1');
const brokers = await new Promise((resolve) => broker.stdout.once('data', (chunk) => resolve(chunk.toString().split('\n')[0].trim())));
const kafka = new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();
const store = (prefix) => `kafka://${brokers}/${prefix}`;
const children = [];
let step = 0;
const dir = () => join(work, `d${step++}`);

try {
  const put = STEPS.has('put') || STEPS.has('lag') ? await putRates() : undefined;
  if (put) console.error(`PUT: kafka ${fmt(put.kafka.okRps)}/s, embedded ${fmt(put.embedded.okRps)}/s`);
  const pairs = [];
  for (let i = 1; STEPS.has('materialize') && i <= REPEAT; i++) {
    const one = await materializeRate(`one-${i}`, [[0]]);
    console.error(`materialize, one member on core 0: ${fmt(one.eventsPerSecond)} events/s`);
    const two = await materializeRate(`two-${i}`, [[0], [1]]);
    console.error(`materialize, two members on cores 0 and 1: ${fmt(two.eventsPerSecond)} events/s (${ratio(two.eventsPerSecond / one.eventsPerSecond)})`);
    pairs.push({ one, two, ratio: two.eventsPerSecond / one.eventsPerSecond });
  }
  const ceiling = STEPS.has('materialize') ? await countAloneRates() : undefined;
  if (ceiling) console.error(`the same counting without Kafka: one ${fmt(ceiling.one)} events/s, two ${fmt(ceiling.two)} (${ratio(ceiling.ratio)})`);
  const byRatio = [...pairs].sort((a, b) => a.ratio - b.ratio);
  const median = byRatio[Math.floor((byRatio.length - 1) / 2)];
  const { one, two } = median ?? {};
  const lag = STEPS.has('lag') ? await lagProbe(put.kafka.okRps / 2) : undefined;
  if (lag) console.error(`lag: P50 ${lag.p50Ms} ms, P99 ${lag.p99Ms} ms`);
  const restore = STEPS.has('restore') ? await restoreRates() : undefined;
  if (restore) console.error(`restore: materializer ${fmt(restore.materializer.domainsPerSecond)} domains/s, serve-read ${fmt(restore.serveRead.domainsPerSecond)} domains/s`);

  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    broker: 'kfake (scripts/kafka), 1 broker',
    settings: { seconds: SECONDS, events: EVENTS, domains: DOMAINS, partitions: PARTITIONS, restoreDomains: RESTORE_DOMAINS, restorePartitions: RESTORE_PARTITIONS, probes: PROBES, putConnections: PUT_CONNECTIONS, putPinned: PUT_PINNED, steps: [...STEPS] },
    put: put && STEPS.has('put') ? { ...put, ratio: put.kafka.okRps / put.embedded.okRps } : undefined,
    materialize: median ? { ...median, pairs, ceiling } : undefined,
    lag,
    restore,
  };
  const rows = [
    ...(result.put
      ? [
          [`single-event PUT, serve-http on Kafka, ${PUT_CONNECTIONS} connections${PUT_PINNED ? ' (serve-http and wrk on core 0, broker on core 1)' : ''}`, `${fmt(put.kafka.okRps)} events/s (P99 ${put.kafka.p99Ms} ms)`, `embedded store ${fmt(put.embedded.okRps)} (P99 ${put.embedded.p99Ms} ms)`, ratio(result.put.ratio)],
          ['CPU ms per 1,000 PUTs: serve-http on Kafka (+ broker)', `${put.kafka.serverCpuMsPer1k.toFixed(0)} (+ ${put.kafka.brokerCpuMsPer1k.toFixed(0)})`, `serve-http on the embedded store ${put.embedded.serverCpuMsPer1k.toFixed(0)}`, ratio(put.embedded.serverCpuMsPer1k / put.kafka.serverCpuMsPer1k)],
        ]
      : []),
    ...(result.materialize
      ? [
          ['one materializer (taskset core 0)', `${fmt(one.eventsPerSecond)} events/s`, `${fmt(one.measuredEvents)} of ${fmt(EVENTS)} events, ${fmt(DOMAINS)} domains`, ''],
          ['two materializers (cores 0, 1)', `${fmt(two.eventsPerSecond)} events/s`, 'one materializer', ratio(result.materialize.ratio)],
          ...(pairs.length > 1 ? [[`the same, ${pairs.length} pairs (the median above)`, pairs.map((p) => ratio(p.ratio)).join(', '), 'one materializer', `${ratio(byRatio[0].ratio)} to ${ratio(byRatio.at(-1).ratio)}`]] : []),
          ['ceiling: a member\'s counting without Kafka (scripts/bench/count-alone.mjs), two processes', `${fmt(ceiling.two)} events/s`, `one process ${fmt(ceiling.one)}`, ratio(ceiling.ratio)],
          ['materializer CPU: events per CPU-second', `one: ${fmt(one.eventsPerCpuSecond)}, two: ${fmt(two.eventsPerCpuSecond)}`, 'one member', ratio(two.eventsPerCpuSecond / one.eventsPerCpuSecond)],
          ['cores busy while counting: members + broker', `one: ${one.membersCores.toFixed(2)} + ${one.brokerCores.toFixed(2)}, two: ${two.membersCores.toFixed(2)} + ${two.brokerCores.toFixed(2)}`, 'of 2 cores', ''],
        ]
      : []),
    ...(lag ? [[`lag ack → visible on serve-read (load ${fmt(lag.backgroundRps)}/s)`, `P50 ${lag.p50Ms} ms, P99 ${lag.p99Ms} ms`, `${lag.samples} probes`, '']] : []),
    ...(restore
      ? [
          [`read ${fmt(RESTORE_DOMAINS)} counts records, bare kafkajs consumer`, `${fmt(restore.bareRead.domainsPerSecond)} records/s`, `${restore.bareRead.seconds.toFixed(2)} s, nothing written`, ''],
          [`restore ${fmt(RESTORE_DOMAINS)} domains, materializer`, `${fmt(restore.materializer.domainsPerSecond)} domains/s`, `${restore.materializer.seconds.toFixed(2)} s; bare read`, ratio(restore.materializer.domainsPerSecond / restore.bareRead.domainsPerSecond)],
          [`restore ${fmt(RESTORE_DOMAINS)} domains, serve-read`, `${fmt(restore.serveRead.domainsPerSecond)} domains/s`, `${restore.serveRead.seconds.toFixed(2)} s from spawn to ready; bare read`, ratio(restore.serveRead.domainsPerSecond / restore.bareRead.domainsPerSecond)],
        ]
      : []),
  ];
  console.log(['| measure | figure | compared with | ratio |', '|---|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n'));
  const part = STEPS.size === 4 ? '' : `${[...STEPS].join('-')}-`;
  const out = values.out ?? join(root, 'bench/results', `kafka-${part}${result.date.slice(0, 10)}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.error(`wrote ${out}`);
} finally {
  for (const child of children) await child.stop().catch(() => {});
  await admin.disconnect();
  broker.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}

async function setup(prefix, partitions = PARTITIONS) {
  execFileSync(process.execPath, [SVC, 'setup', '--store', store(prefix), '--partitions', String(partitions)], { stdio: 'ignore' });
}

async function daemon(args) {
  const started = await startDaemon([SVC, ...args, '--port', '0', '--log-level', 'warn']);
  children.push(started);
  return started;
}

/** (1) wrk PUTs against serve-http on Kafka and on the embedded store, the same load. */
async function putRates() {
  await setup('put');
  const cpus = PUT_PINNED ? '0' : undefined;
  const run = async (storeArg) => {
    const server = await daemon(['serve-http', '--store', storeArg]);
    if (cpus) pin(server.pid, cpus);
    await runWrk(server.url, { seconds: 2, connections: PUT_CONNECTIONS, load: { domains: 100_000 }, cpus });
    const before = { server: server.cpuSeconds(), broker: treeUsage(broker.pid).cpuSeconds };
    const measured = await runWrk(server.url, { seconds: SECONDS, connections: PUT_CONNECTIONS, load: { domains: 100_000 }, cpus });
    const requests = measured.okRps * measured.seconds;
    // CPU per 1,000 answered PUTs: serve-http's own, and the broker's (0 for the embedded store).
    measured.serverCpuMsPer1k = ((server.cpuSeconds() - before.server) * 1e6) / requests;
    measured.brokerCpuMsPer1k = ((treeUsage(broker.pid).cpuSeconds - before.broker) * 1e6) / requests;
    await server.stop();
    return measured;
  };
  const embedded = await run(dir());
  const kafkaRun = await run(store('put'));
  return { embedded, kafka: kafkaRun };
}

/** Produces EVENTS uniform events as svc's own group-commit records (1,000 events each). */
async function produceEvents(prefix) {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let batch = [];
  const flush = async () => {
    const byPartition = new Map();
    for (const [domain, counts] of batch) {
      const p = partitionOf(domain, PARTITIONS);
      if (!byPartition.has(p)) byPartition.set(p, new Map());
      const m = byPartition.get(p);
      const c = m.get(domain) ?? { delivered: 0, bounced: 0 };
      c.delivered += counts.delivered;
      c.bounced += counts.bounced;
      m.set(domain, c);
    }
    const messages = [...byPartition].map(([partition, m]) => ({ partition, value: encodeDeltas(m), headers: { [FORMAT_HEADER]: DELTAS_FORMAT } }));
    await producer.send({ topic: `${prefix}.events`, acks: -1, messages });
    batch = [];
  };
  for (let i = 0; i < EVENTS; i++) {
    const bounced = random() < 0.05;
    batch.push([`d${Math.floor(random() * DOMAINS)}.bench.example`, { delivered: bounced ? 0 : 1, bounced: bounced ? 1 : 0 }]);
    if (batch.length === 4000) await flush();
  }
  if (batch.length) await flush();
  await producer.disconnect();
}

async function groupLag(groupId, topic) {
  const ends = await admin.fetchTopicOffsets(topic);
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  let lag = 0;
  for (const end of ends) {
    const c = Number(committed.partitions.find((p) => p.partition === end.partition)?.offset ?? -1);
    lag += Number(end.high) - Math.max(0, c);
  }
  return lag;
}

/**
 * (2) The events are produced first; then members pinned to the given cores start. Once the group
 * is settled (every partition assigned and restored, no member idle), the rate is measured over what is left:
 * events/s from then until the group's lag is 0, with the CPU the members spent meanwhile.
 * Rebalancing and each process's start are kept out of the figure, and batches are full-sized
 * (counting does not race the loader).
 */
async function materializeRate(prefix, cores) {
  await setup(prefix);
  await produceEvents(prefix);
  const records = (await admin.fetchTopicOffsets(`${prefix}.events`)).reduce((sum, o) => sum + Number(o.high), 0);
  const members = await Promise.all(cores.map((set) => startMaterializer(prefix, set)));
  const logged = (member, msg) => member.output().split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l).partitions);
  const assigned = (member) => logged(member, 'partitions assigned').at(-1) ?? [];
  // A member restores a partition it is given (here, from an empty PREFIX.counts) before counting it: part of its start.
  const restored = (member) => new Set(logged(member, 'partitions restored').flat());
  const settled = (member) => assigned(member).length > 0 && assigned(member).every((p) => restored(member).has(p));
  while (!members.every(settled) || members.reduce((sum, m) => sum + assigned(m).length, 0) !== PARTITIONS) await sleep(20);
  const cpu = () => members.reduce((sum, m) => sum + m.cpuSeconds(), 0);
  const cpuBefore = cpu();
  const brokerCpuBefore = treeUsage(broker.pid).cpuSeconds;
  const started = performance.now();
  const lagBefore = await groupLag(`${prefix}.materialize`, `${prefix}.events`);
  // Each poll costs the bench a few ms of CPU on the measured cores: rarely while far from the end.
  for (let lag = lagBefore; lag > 0; lag = await groupLag(`${prefix}.materialize`, `${prefix}.events`)) await sleep(lag > lagBefore / 10 ? 250 : 20);
  const seconds = (performance.now() - started) / 1000;
  // Records hold about the same number of events each (4,000 events cut per partition).
  const events = (EVENTS * lagBefore) / records;
  // CPU of the measured window only: events per CPU-second is what one core does when nothing else wants it.
  const cpuSeconds = cpu() - cpuBefore;
  // What the broker took of the same two cores meanwhile (fetches, transactions, produce of the counts).
  const brokerCores = (treeUsage(broker.pid).cpuSeconds - brokerCpuBefore) / seconds;
  for (const m of members) await m.stop();
  // The test broker keeps every record in its heap, whose garbage collection runs on the measured
  // cores and grows with it: the next run starts with the broker as this one did.
  await admin.deleteTopics({ topics: [`${prefix}.events`, `${prefix}.counts`, `${prefix}.replays`] });
  return { members: cores.length, measuredEvents: Math.round(events), seconds, eventsPerSecond: events / seconds, cpuSeconds, eventsPerCpuSecond: events / cpuSeconds, membersCores: cpuSeconds / seconds, brokerCores };
}

/**
 * The ceiling of (2): a member's own work without Kafka (scripts/bench/count-alone.mjs), one
 * process on core 0, then two at once on cores 0 and 1 with half the partitions each.
 */
async function countAloneRates() {
  const script = join(root, 'scripts/bench/count-alone.mjs');
  const all = Array.from({ length: PARTITIONS }, (_, p) => p);
  const halves = [all.filter((p) => p % 2 === 0), all.filter((p) => p % 2 === 1)];
  const run = (core, partitions, startAt) =>
    new Promise((resolve, reject) => {
      const args = ['-c', String(core), process.execPath, script, '--partitions', partitions.join(','), '--of', String(PARTITIONS), '--domains', String(DOMAINS), '--seconds', String(SECONDS), '--start-at', String(startAt)];
      const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      child.stdout.on('data', (chunk) => (output += chunk));
      child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(output)) : reject(new Error(`count-alone exited with ${code}`))));
    });
  // Each builds its records first (a few seconds), then all count from the same moment.
  const one = await run(0, all, Date.now() + 10_000);
  const startAt = Date.now() + 10_000;
  const two = await Promise.all([run(0, halves[0], startAt), run(1, halves[1], startAt)]);
  const twoRate = two.reduce((sum, r) => sum + r.eventsPerSecond, 0);
  return { one: one.eventsPerSecond, two: twoRate, ratio: twoRate / one.eventsPerSecond };
}

function startMaterializer(prefix, cores, state = dir()) {
  const args = ['-c', cores.join(','), process.execPath, SVC, 'materialize', '--store', store(prefix), '--state', state, '--session-timeout', '6s'];
  return startProcess('taskset', args, '"msg":"materializing"');
}

/** A process resolved once a line of its stdout holds `ready`; its log lines are kept. */
async function startProcess(command, args, ready) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk;
      if (output.includes(ready)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited with ${code}`)));
  });
  const handle = {
    output: () => output,
    cpuSeconds: () => {
      try {
        const fields = execFileSync('cat', [`/proc/${child.pid}/stat`], { encoding: 'utf8' }).split(') ')[1].split(' ');
        return (Number(fields[11]) + Number(fields[12])) / 100;
      } catch {
        return 0;
      }
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
  children.push(handle);
  return handle;
}

/** (3) PUT a fresh domain, then poll serve-read until it shows it; under a paced background load. */
async function lagProbe(backgroundRps) {
  await setup('lag');
  const ingest = await daemon(['serve-http', '--store', store('lag')]);
  await startMaterializer('lag', [0]);
  const reader = await daemon(['serve-read', '--store', store('lag'), '--state', dir(), '--cache-size', '0']);
  const connections = 16;
  const paceMs = Math.max(1, Math.round((connections * 1000) / Math.max(1, backgroundRps)));
  const background = runWrk(ingest.url, { seconds: SECONDS + 4, connections, load: { domains: 100_000, paceMs } });
  await sleep(2000);
  const samples = [];
  const deadline = performance.now() + SECONDS * 1000;
  for (let i = 0; i < PROBES && performance.now() < deadline; i++) {
    const domain = `probe-${i}-${Date.now()}.lag.example`;
    const res = await request(`${ingest.url}/events/${domain}/delivered`, { method: 'PUT' });
    await res.body.dump();
    if (res.statusCode !== 204) continue;
    const acked = performance.now();
    for (;;) {
      const read = await request(`${reader.url}/domains/${domain}`);
      const body = await read.body.json();
      if (body.delivered === 1) break;
      if (performance.now() - acked > 10_000) throw new Error(`${domain} not visible after 10 s`);
      await sleep(2);
    }
    samples.push(performance.now() - acked);
  }
  const measured = await background;
  samples.sort((a, b) => a - b);
  const at = (q) => Number(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))].toFixed(1));
  return { samples: samples.length, backgroundRps: measured.okRps, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: Number(samples.at(-1).toFixed(1)) };
}

/** (4) RESTORE_DOMAINS domains in PREFIX.counts, restored by a materializer and by serve-read. */
async function restoreRates() {
  await setup('restore', RESTORE_PARTITIONS);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  for (let i = 0; i < RESTORE_DOMAINS; i += 5000) {
    const messages = [];
    for (let j = i; j < Math.min(RESTORE_DOMAINS, i + 5000); j++) {
      const key = `r${j}.restore.example`;
      messages.push({ key, value: encodeCounts({ delivered: j % 1000, bounced: j % 7 === 0 ? 1 : 0 }), partition: partitionOf(key, RESTORE_PARTITIONS) });
    }
    await producer.send({ topic: 'restore.counts', acks: -1, messages });
  }
  const nextOffsets = Array.from({ length: RESTORE_PARTITIONS }, (_, partition) => ({ key: NEXT_OFFSET_KEY, value: JSON.stringify({ next: 0 }), partition }));
  await producer.send({ topic: 'restore.counts', acks: -1, messages: nextOffsets });
  await producer.disconnect();
  console.error(`restore: ${fmt(RESTORE_DOMAINS)} counts records produced`);
  // An event in the partition makes the member restore it at once.
  const events = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await events.connect();
  await events.send({ topic: 'restore.events', messages: [{ partition: 0, value: JSON.stringify({ domain: 'r1.restore.example', type: 'delivered' }) }] });
  await events.disconnect();

  // The ceiling: the same topic read by a bare kafkajs consumer, with the follower's fetch sizes, nothing done with it.
  const bareSeconds = await readToEnd('restore.counts', RESTORE_DOMAINS + RESTORE_PARTITIONS);

  const member = await startMaterializer('restore', [0]);
  while (!member.output().includes('"msg":"partitions restored"')) await sleep(50);
  const line = member.output().split('\n').find((l) => l.includes('"msg":"partitions restored"'));
  const memberSeconds = JSON.parse(line).ms / 1000;
  await member.stop();

  const started = performance.now();
  const reader = await daemon(['serve-read', '--store', store('restore'), '--state', dir()]);
  for (;;) {
    const res = await request(`${reader.url}/readyz`);
    await res.body.dump();
    if (res.statusCode === 200) break;
    await sleep(20);
  }
  const readerSeconds = (performance.now() - started) / 1000;
  return {
    domains: RESTORE_DOMAINS,
    bareRead: { seconds: bareSeconds, domainsPerSecond: RESTORE_DOMAINS / bareSeconds },
    materializer: { seconds: memberSeconds, domainsPerSecond: RESTORE_DOMAINS / memberSeconds },
    serveRead: { seconds: readerSeconds, domainsPerSecond: RESTORE_DOMAINS / readerSeconds },
  };
}

/** Seconds for a fresh consumer group of one to read `records` records of `topic` from the start (the group join included). */
async function readToEnd(topic, records) {
  const consumer = kafka.consumer({ groupId: `bench-bare-${Date.now()}`, maxWaitTimeInMs: 100, maxBytesPerPartition: 8 * 1024 * 1024, maxBytes: 32 * 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const started = performance.now();
  let seen = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      seen += batch.messages.length;
      if (seen >= records) done();
    },
  });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await consumer.disconnect();
  return seconds;
}

function fmt(n) {
  return Math.round(n).toLocaleString('en-US');
}

function ratio(r) {
  return `**${r.toFixed(2)}**`;
}
