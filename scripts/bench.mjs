#!/usr/bin/env node
// `npm run bench`: every performance figure of svc on this machine, each next to its ceiling
// measured in the same run, in one table; also written as JSON to bench/results/bench-<date>.json.
// Throughput is measured with wrk (a JavaScript generator on the same cores would be the
// bottleneck), latency at fixed rates with `svc loadtest` (open model, no coordinated omission).
// See docs/performance.md.
//
//   npm run bench                        # everything, about 40 minutes on 2 cores
//   npm run bench -- --quick             # a smoke run: 1M domains, short runs, no replay/MongoDB rows
//   npm run bench -- --domains 2000000 --rounds 2 --seconds 10 --skip replay,mongo,reads,kafka,redis --out /tmp/bench.json
//   npm run bench -- --table bench/results/bench-2026-12-01.json   # print a saved run's table again
//   npm run bench -- --report bench.html # also draw every capacity search (latency against rate) in one HTML file
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { $, argv } from 'zx';
import { findSustainedRate } from './bench/load.mjs';
import { startDaemon } from './bench/processes.mjs';
import { alone, readsWhileIngesting, restartAfterKill, sustainedBatches, versus } from './bench/scale.mjs';
import { writeBodies, writePaths } from './bench/workload-files.mjs';
import { ensureWrk } from './bench/wrk.mjs';

const root = new URL('..', import.meta.url).pathname;
const svc = join(root, 'bin/svc.js');
const quick = Boolean(argv.quick);
const DOMAINS = Number(argv.domains ?? (quick ? 1_000_000 : 10_000_000));
const ROUNDS = Number(argv.rounds ?? (quick ? 1 : 3));
const SECONDS = Number(argv.seconds ?? (quick ? 5 : 15));
/** svc's runs on the big store hold at least one apply job (--apply-interval is 30 s). */
const SVC_SECONDS = Number(argv['svc-seconds'] ?? (quick ? 10 : 45));
const skip = new Set(String(argv.skip ?? (quick ? 'replay,mongo' : '')).split(',').filter(Boolean));
const CONNECTIONS = 128;
const BATCH = 1000;
/** Long enough to fill the journal's bound (--journal-max) when the store cannot keep up; then steady. */
const BATCH_SECONDS = quick ? 30 : 90;
const STEADY_SECONDS = quick ? 10 : 30;

if (argv.table) {
  const saved = JSON.parse(readFileSync(argv.table, 'utf8'));
  printTable(saved);
  if (argv.report) await writeReport(saved, argv.report);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), 'svc-bench-'));
const store = join(work, 'store');
const result = {
  date: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  settings: { domains: DOMAINS, rounds: ROUNDS, seconds: SECONDS, svcSeconds: SVC_SECONDS, connections: CONNECTIONS, batch: BATCH, batchSeconds: BATCH_SECONDS, steadySeconds: STEADY_SECONDS },
};
const log = (...args) => console.error('bench:', ...args);

try {
  await $({ cwd: root, stdio: 'inherit' })`npx tsc -p tsconfig.json`;
  await ensureWrk();
  log(`machine: ${result.machine.cores} × ${result.machine.cpu}, node ${process.version}; work in ${work}`);

  // (10) Filling the store is itself a figure: replay of one event per domain into an empty store.
  result.fill = await fillStore();
  const files = await workloadFiles();
  const wrk = { rounds: ROUNDS, seconds: SECONDS, svcSeconds: SVC_SECONDS, connections: CONNECTIONS, log };

  // (1), (2), (3) PUT, one event per request, against a bare node:http server in the same run.
  result.put = await versus('PUT uniform', { ...wrk, svcArgs: serveHttp(store), ceilingArgs: ceiling(), load: { paths: files.uniform } });
  result.put2m = await versus('PUT over 2M domains', { ...wrk, svcArgs: serveHttp(store), ceilingArgs: ceiling(), load: { paths: files.twoMillion } });
  result.put100 = await versus('PUT over 100 domains', { ...wrk, svcSeconds: SECONDS, svcArgs: serveHttp(join(work, 'small')), ceilingArgs: ceiling(), load: { domains: 100 } });
  // (4) Latency when the server is far from saturated: 8 connections.
  result.c8 = await alone('PUT, 8 connections', { ...wrk, seconds: SVC_SECONDS, rounds: 1, connections: 8, args: serveHttp(store), load: { paths: files.uniform } });
  // (8) --fsync against the default, alternating.
  result.fsync = await versus('PUT --fsync', { ...wrk, seconds: SVC_SECONDS, svcArgs: [...serveHttp(store), '--fsync'], ceilingArgs: serveHttp(store), load: { paths: files.uniform } });

  // (5) POST batches: the parse ceiling, and what serve-http sustains once its journal's bound is reached.
  result.batch = {
    ceiling: await alone('POST ceiling (parse only)', { ...wrk, rounds: 1, connections: 16, args: ceiling(['--parse']), load: { bodies: files.bodies } }),
    svc: await sustainedBatches('POST serve-http', { seconds: BATCH_SECONDS, steadySeconds: STEADY_SECONDS, connections: 16, args: serveHttp(store), load: { bodies: files.bodies }, batch: BATCH, log }),
  };

  // What bounds the batches at this size: LMDB applying sorted jobs of random domains, alone.
  result.store = JSON.parse((await $`${process.execPath} ${join(root, 'scripts/bench/store-ceiling.mjs')} --store ${store} --domains ${DOMAINS} --seconds ${quick ? 3 : 10}`).stdout);
  log(`LMDB alone: ${result.store.batches.map((b) => `${Math.round(b.domainsPerSecond)} domains/s in jobs of ${b.domainsPerBatch}`).join(', ')}`);

  // (6), (7) Reads on serve-read while serve-http ingests at 80 % of what it sustains, and how long
  // an acknowledged event takes to show there.
  if (!skip.has('reads')) {
    const ingest = Math.round((result.batch.svc.eventsPerSecond * 0.8) / BATCH) * BATCH;
    result.reads = await readsWhileIngesting({
      writerArgs: serveHttp(store),
      readerArgs: serveRead(store),
      ingestEventsPerSecond: ingest,
      batch: BATCH,
      readRps: 2000,
      domains: DOMAINS,
      seconds: quick ? 10 : 30,
      warmup: 3,
      log,
    });
    // serve-read alone, against its ceiling (the highest rate with P95 < 200 ms).
    const reads = ['--connections', 256, '--domains', DOMAINS, '--read-ratio', 1].map(String);
    const step = { seconds: quick ? 3 : 5, warmup: quick ? 1 : 2, args: reads, onStep: (s) => log(`GET ${s.rps}/s → p95 ${s.p95Ms.toFixed(1)} ms ${s.sustained ? 'ok' : 'FAIL'}`) };
    result.get = { ceiling: await search(ceiling(), 4000, step), svc: await search(serveRead(store), 2000, step) };
  }

  // (9) A restart after kill -9 under load, until /readyz answers 200.
  // POST batches fill the journal to its bound: the worst case for the restart, which reads it all.
  result.restart = await restartAfterKill({ args: serveHttp(store), load: { bodies: files.bodies }, loadSeconds: quick ? 15 : 30, connections: 16, journalDir: join(store, 'journal'), log });

  if (!skip.has('replay')) result.replay = await subBench('bench-replay.mjs', ['--events', quick ? 1_000_000 : 10_000_000, '--rounds', 1, '--mongo-events', 0]);
  if (!skip.has('mongo')) result.mongo = await subBench('bench-mongo.mjs', ['--events', 10_000, '--domains', 1_000]);
  if (!skip.has('grpc')) result.grpc = await subBench('bench-grpc.mjs', ['--seconds', quick ? 3 : 5]);
  if (!skip.has('kafka')) {
    const small = ['--seconds', 3, '--events', 200_000, '--domains', 200_000, '--restore-domains', 200_000, '--probes', 30];
    result.kafka = await subBench('bench-kafka.mjs', quick ? small : []);
  }
  if (!skip.has('redis')) result.redis = await subBench('bench-redis.mjs', ['--seconds', quick ? 5 : 10]);

  result.table = printTable(result);
  if (argv.report) await writeReport(result, argv.report);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const file = argv.out ?? join(root, 'bench/results', `bench-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  log(`written to ${file}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

function ceiling(extra = []) {
  return [join(root, 'scripts/bench/ceiling-server.mjs'), ...extra];
}

function serveHttp(path) {
  return [svc, 'serve-http', '--port', 0, '--store', path, '--log-level', 'warn'];
}

function serveRead(path) {
  return [svc, 'serve-read', '--port', 0, '--store', path, '--log-level', 'warn'];
}

async function search(args, start, step) {
  const daemon = await startDaemon(args.map(String));
  try {
    const { best, steps } = await findSustainedRate(daemon, { start, ...step });
    // Every step is kept for --report's latency-against-rate charts.
    return { ...best, steps };
  } finally {
    await daemon.stop();
  }
}

/** Fills the store with DOMAINS distinct domains by replaying a generated log; times it and sizes it. */
async function fillStore() {
  const file = join(work, 'fill.ndjson');
  await $`${process.execPath} ${join(root, 'scripts/generate-log.mjs')} --distinct --events ${DOMAINS} --out ${file}`;
  log(`filling the store with ${DOMAINS} domains`);
  const started = performance.now();
  const replay = await $({ quiet: true })`/usr/bin/time -f %M ${process.execPath} ${svc} replay ${file} --store ${store} --json --no-progress`;
  const replaySeconds = (performance.now() - started) / 1000;
  rmSync(file);
  // The fill leaves dirty pages for the kernel to write back; measuring anything while it does
  // would measure the disk.
  await $`sync`;
  const seconds = (performance.now() - started) / 1000;
  const summary = JSON.parse(replay.stdout);
  const storeBytes = Number((await $`du -sb ${store}`).stdout.split('\t')[0]);
  const fill = {
    domains: DOMAINS,
    events: summary.events,
    replaySeconds,
    seconds,
    eventsPerSecond: summary.events / replaySeconds,
    peakRssMb: Math.round(Number(replay.stderr.trim().split('\n').pop()) / 1024),
    storeBytes,
  };
  log(`filled in ${replaySeconds.toFixed(1)} s (${Math.round(fill.eventsPerSecond)} events/s; ${seconds.toFixed(1)} s with the flush to disk), store ${(storeBytes / 2 ** 20).toFixed(0)} MiB`);
  return fill;
}

/** What wrk sends: PUT paths uniform over every domain and over 2M of them, and POST bodies. */
async function workloadFiles() {
  const files = { uniform: join(work, 'paths-uniform.txt'), twoMillion: join(work, 'paths-2m.txt'), bodies: join(work, 'bodies.txt') };
  await writePaths(files.uniform, { count: 4_000_000, domains: DOMAINS });
  await writePaths(files.twoMillion, { count: 4_000_000, domains: Math.min(DOMAINS, 2_000_000), seed: 9 });
  await writeBodies(files.bodies, { count: 2000, size: BATCH, domains: DOMAINS });
  return files;
}

/** Runs one of the standalone benches (they keep their own ceilings) and takes its JSON. */
async function subBench(script, args) {
  const out = join(work, `${script}.json`);
  await $({ cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })`${process.execPath} ${join(root, 'scripts', script)} ${args} --out ${out}`;
  return JSON.parse(readFileSync(out, 'utf8'));
}

/** `--report <file.html>`: every capacity search of the run, drawn as latency against offered rate. */
async function writeReport(result, file) {
  const { renderHtmlReport } = await import(join(root, 'dist/loadtest/html-report.js'));
  const searches = [];
  if (result.get?.ceiling?.steps) searches.push({ title: 'GET, bare node:http server (the ceiling)', steps: result.get.ceiling.steps });
  if (result.get?.svc?.steps) searches.push({ title: `GET on serve-read, ${result.settings.domains.toLocaleString('en')} domains`, steps: result.get.svc.steps });
  writeFileSync(file, renderHtmlReport({ title: `svc bench ${result.date.slice(0, 10)}: capacity searches`, searches }));
  log(`report with ${searches.length} searches written to ${file}`);
}

/** Prints the table of a run's results as markdown and returns its rows. */
function printTable(result) {
  const rows = [];
  const row = (figure, before, measured, target, note = '') => rows.push([figure, before, measured, target, note]);
  const n = (value) => (value === undefined || Number.isNaN(value) ? '' : Math.round(value).toLocaleString('en'));
  const ms = (value, digits = 1) => (value === undefined ? '' : `${value.toFixed(digits)} ms`);
  const ratio = (a, b) => (b ? (a / b).toFixed(2) : '');
  const mb = (bytes) => (bytes === undefined ? '' : `${Math.round(bytes / 2 ** 20)} MB`);
  const domains = n(result.settings.domains);
  const vs = (v) => `**${v.ratio.toFixed(2)}** (${n(v.svc.okRps)} against ${n(v.ceiling.okRps)})`;

  const { put, put2m, put100, c8, fsync, batch, reads, restart, fill, get } = result;
  row(`PUT requests/s, ${domains} domains, 1 process, vs bare node:http`, '0.42', `${vs(put)}, P95 ${ms(put.svc.p95Ms)}`, '≥ 0.7, P95 < 200 ms', `CPU per request: svc ${n(put.svc.cpuMicrosPerRequest)} µs, bare ${n(put.ceiling.cpuMicrosPerRequest)} µs`);
  row('PUT requests/s, 2M distinct domains, uniform, vs bare', '0.17 (7,638 against 44,934)', vs(put2m), '≥ 0.7');
  row('PUT requests/s on a 100-domain store, vs bare', '0.53', vs(put100), '≥ 0.8');
  row('PUT with 8 connections, P50 latency', '2.0 ms (3,634 requests/s)', `**${ms(c8.p50Ms, 2)}** (${n(c8.okRps)} requests/s)`, '< 0.5 ms');
  row(
    'POST 1,000-event batches, events/s',
    '18,000',
    `**${n(batch.svc.eventsPerSecond)}**, ${ratio(batch.svc.eventsPerSecond, batch.ceiling.okRps * result.settings.batch)} of the parse ceiling (${n(batch.ceiling.okRps * result.settings.batch)})`,
    '≥ 1,000,000 (or ≥ 0.7 of the parse ceiling)',
    `acknowledged over the last ${result.settings.steadySeconds} s of ${result.settings.batchSeconds}, journal full; applied to LMDB ${n(batch.svc.appliedPerSecond)} events/s`,
  );
  if (reads) {
    row(
      `serve-read P99 while serve-http ingests at 80 % of its max (${n(reads.ingestEventsPerSecond)} events/s)`,
      '915 ms (P95)',
      `**${ms(reads.read.p99Ms)}** at ${n(reads.readRps)} reads/s (P95 ${ms(reads.read.p95Ms)})`,
      '< 50 ms',
      `serve-read's own P99 ≤ ${ms(reads.serverP99Ms, 0)} (its histogram); the rest is the two cores shared by five processes. Ingest P95 ${ms(reads.ingest.p95Ms)}, errors ${reads.read.errors + reads.ingest.errors}`,
    );
    row('lag from acknowledgement to visible on serve-read, P99', 'n/a', `**${ms(reads.probes.p99Ms)}** (P50 ${ms(reads.probes.p50Ms)}, ${reads.probes.count} probes)`, '≤ 1 s', `svc_journal_read_lag_seconds P99 ≤ ${ms(reads.lagMetricP99Ms, 0)}`);
  }
  row('`--fsync` PUT rate vs default', 'n/a', vs(fsync), '≥ 0.5', `P50 ${ms(fsync.svc.p50Ms, 2)} against ${ms(fsync.ceiling.p50Ms, 2)}`);
  row('restart after kill -9 under load, until /readyz is 200', 'n/a', `**${(restart.readyMs / 1000).toFixed(1)} s**`, '≤ 15 s', `${mb(restart.journalBytes)} of journal left by the killed process`);
  row(`replay, ${domains} distinct domains into an empty store`, '39k events/s', `**${n(fill.eventsPerSecond)} events/s** (${fill.replaySeconds.toFixed(0)} s)`, '≥ 400k events/s', `peak RSS ${fill.peakRssMb} MB, store ${mb(fill.storeBytes)}`);
  const anon = Math.max(put.svc.peakRssAnon, batch.svc.peakRssAnon, reads?.writerPeakRssAnon ?? 0);
  row('serve-http anonymous RSS (not the mapped store) under load', 'n/a', `**${mb(anon)}**`, '< 1 GB', `peak over the PUT, POST and read runs; total RSS ${mb(put.svc.peakRss)}`);

  const others = [];
  for (const b of result.store?.batches ?? []) {
    others.push([`LMDB alone: sorted jobs of ${n(b.domainsPerBatch)} random domains of ${domains}, in transactions of 10,000`, `${n(b.domainsPerSecond)} domains/s, ${b.cpuMicrosPerDomain.toFixed(1)} µs CPU a domain`]);
  }
  if (get) others.push(['serve-read GET/s (P95 < 200 ms), vs bare', `${n(get.svc?.rps)} against ${n(get.ceiling?.rps)}: ${ratio(get.svc?.rps, get.ceiling?.rps)}`]);
  if (result.replay) {
    const r = result.replay;
    const over = r.log.domains === undefined ? '' : ` over ${n(r.log.domains)} domains`;
    others.push([`replay of ${n(r.log.events)} events${over}, vs the parse ceiling`, `${n(r.replayLmdb.eventsPerSecond)} events/s against ${n(r.ceiling.eventsPerSecond)}: ${ratio(r.replayLmdb.eventsPerSecond, r.ceiling.eventsPerSecond)}; ${r.countsMismatched} domains differ`]);
  }
  for (const g of result.grpc?.rows ?? []) {
    const http = g.size === 1 ? 'PUT' : 'POST NDJSON';
    others.push([`serve-grpc, batches of ${n(g.size)}, events/s: one Publish stream, 4 streams, vs ${http}`, `${n(g.grpcOneStream)}, ${n(g.grpcFourStreams)} against ${n(g.http)}: ${ratio(g.grpcOneStream, g.http)}`]);
  }
  for (const l of result.grpc?.latencies ?? []) {
    others.push([`serve-grpc send → ack at ${n(l.rate)} one-event batches/s on one stream`, `P50 ${ms(l.p50Ms, 2)}, P95 ${ms(l.p95Ms, 2)}, P99 ${ms(l.p99Ms, 2)}`]);
  }
  const k = result.kafka;
  if (k) {
    others.push(['single-event PUT, serve-http on Kafka (kfake) vs on the embedded store', `${n(k.put.kafka.okRps)} against ${n(k.put.embedded.okRps)}: ${k.put.ratio.toFixed(2)}`]);
    others.push(['svc materialize on one core; two on two cores', `${n(k.materialize.one.eventsPerSecond)} events/s; ${n(k.materialize.two.eventsPerSecond)}: ${k.materialize.ratio.toFixed(2)}`]);
    others.push(['Kafka: ack → visible on serve-read', `P50 ${ms(k.lag.p50Ms)}, P99 ${ms(k.lag.p99Ms)} at ${n(k.lag.backgroundRps)} PUTs/s`]);
    others.push([`Kafka: restore of ${n(k.restore.domains)} domains, materializer; serve-read`, `${n(k.restore.materializer.domainsPerSecond)} domains/s; ${n(k.restore.serveRead.domainsPerSecond)}`]);
  }
  if (result.redis) {
    const r = result.redis;
    others.push([`Redis: POST batches of ${n(r.settings.batch)} on one server, vs the same Lua script from a bare client`, `${n(r.post.redis.eventsPerSecond)} events/s against ${n(r.ceiling.eventsPerSecond)}: ${ratio(r.post.redis.eventsPerSecond, r.ceiling.eventsPerSecond)}`]);
    others.push([`Redis Cluster (${r.settings.masters} masters on the same cores): POST, vs one Redis`, `${n(r.post.cluster.eventsPerSecond)} events/s against ${n(r.post.redis.eventsPerSecond)}: ${ratio(r.post.cluster.eventsPerSecond, r.post.redis.eventsPerSecond)}`]);
    others.push(['Redis: PUT events/s, vs the embedded store in the same run', `${n(r.put.redis.eventsPerSecond)} against ${n(r.put.embedded.eventsPerSecond)}: ${ratio(r.put.redis.eventsPerSecond, r.put.embedded.eventsPerSecond)}; cluster ${n(r.put.cluster.eventsPerSecond)}`]);
  }
  if (result.mongo) others.push(['MongoDB ingestion vs the driver\'s bulk upserts', `${n(result.mongo.serveHttp.eventsPerSecond)} events/s against ${n(result.mongo.ceiling.eventsPerSecond)}: ${ratio(result.mongo.serveHttp.eventsPerSecond, result.mongo.ceiling.eventsPerSecond)} (${result.mongo.server})`]);

  const m = result.machine;
  console.log(`\nsvc bench ${result.date.slice(0, 10)}: ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}; load generators on the same machine`);
  const { rounds, seconds, svcSeconds, connections } = result.settings;
  console.log(`wrk -c${connections}; ${rounds} rounds of a ${seconds} s run of the ceiling and a ${svcSeconds} s run of svc, each in a process of its own; medians\n`);
  console.log('| figure | before (issue 12) | now | target | notes |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  if (others.length > 0) {
    console.log('\n| other figure | now |');
    console.log('|---|---|');
    for (const r of others) console.log(`| ${r.join(' | ')} |`);
  }
  return { rows, others };
}
