#!/usr/bin/env node
// `npm run bench`: every performance figure of svc on this machine, each next to its ceiling
// measured in the same run, in one table; also written as JSON to bench/results/bench-<date>.json.
// The HTTP figures are found with `svc loadtest` (open model): the rate is stepped up until the
// P95 reaches 200 ms or a request fails, then bisected. See README.md, "Performance".
//
//   npm run bench                        # everything, about 35 minutes on 2 cores
//   npm run bench -- --quick             # a smoke run: 1M domains, short steps, no replay/MongoDB rows
//   npm run bench -- --domains 100000 --step 5 --skip replay,mongo --out /tmp/bench.json
//   npm run bench -- --table bench/results/bench-2026-11-30.json   # print a saved run's table again
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { $, argv } from 'zx';
import { findSustainedRate, loadStep } from './bench/load.mjs';
import { startDaemon } from './bench/processes.mjs';

const root = new URL('..', import.meta.url).pathname;
const svc = join(root, 'bin/svc.js');
const quick = Boolean(argv.quick);
const DOMAINS = Number(argv.domains ?? (quick ? 1_000_000 : 10_000_000));
const STEP = { seconds: Number(argv.step ?? (quick ? 3 : 5)), warmup: quick ? 1 : 2 };
const skip = new Set(String(argv.skip ?? (quick ? 'replay,mongo' : '')).split(',').filter(Boolean));
// Enough connections that a request never waits for one at the rates reached here, the same on
// every side of a ratio.
const CONNECTIONS = 256;
const BATCH = 1000;
const INGEST_WHILE_READING = 50_000;

if (argv.table) {
  const saved = JSON.parse(readFileSync(argv.table, 'utf8'));
  printTable(saved);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), 'svc-bench-'));
const store = join(work, 'store');
const result = {
  date: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  settings: { domains: DOMAINS, stepSeconds: STEP.seconds, warmupSeconds: STEP.warmup, connections: CONNECTIONS, batch: BATCH, sustained: 'P95 < 200 ms, no errors, nothing dropped' },
};
const log = (...args) => console.error('bench:', ...args);
const showStep = (name) => (s) =>
  log(`${name} ${s.rps}/s → p95 ${s.p95Ms.toFixed(1)} ms, errors ${s.errors + s.dropped}, server ${Math.round(s.serverCpuMicrosPerRequest)} µs CPU/request ${s.sustained ? 'ok' : 'FAIL'}`);

try {
  await $({ cwd: root, stdio: 'inherit' })`npx tsc -p tsconfig.json`;
  log(`machine: ${result.machine.cores} × ${result.machine.cpu}, node ${process.version}; work in ${work}`);

  result.fill = await fillStore();
  const events = ['--connections', CONNECTIONS, '--domains', DOMAINS];

  // (1)-(3) PUT, one event per request, against a bare node:http server and serve-http.
  result.put = {
    ceiling: await search('ceiling PUT', ceilingArgs(1), 4000, events),
    svc: await search('serve-http PUT', serveHttpArgs(1), 2000, events),
    ceiling2: await search('ceiling --workers 2 PUT', ceilingArgs(2), 4000, events),
    svc2: await search('serve-http --workers 2 PUT', serveHttpArgs(2), 2000, events),
  };

  // (4) POST /events, 1,000 events per request.
  const batches = [...events, '--mode', 'batch', '--batch-size', BATCH, '--connections', 32];
  result.batch = {
    ceiling: await search('ceiling POST', ceilingArgs(1), 100, batches),
    svc: await search('serve-http POST', serveHttpArgs(1), 10, batches),
    // Real mail traffic is skewed (a few providers take most of it): repeats within a commit cost
    // the store nothing more.
    svcZipf: await search('serve-http POST zipf', serveHttpArgs(1), 10, [...batches, '--distribution', 'zipf']),
  };

  // The store alone, in the state the figures above left it in. Its rate depends on the batch
  // size, and serve-http's batches grow while a commit is under way: at its best PUT rates they
  // hold hundreds of domains, and POSTs fill them to thousands.
  result.store = JSON.parse((await $`${process.execPath} ${join(root, 'scripts/bench/store-ceiling.mjs')} --store ${store} --domains ${DOMAINS} --sizes 1000,10000 --seconds ${STEP.seconds}`).stdout);
  log(`store alone: ${result.store.batches.map((b) => `${Math.round(b.domainsPerSecond)} domains/s in batches of ${b.domainsPerBatch}`).join(', ')}`);

  // (5) GET /domains/:domain on serve-read over the filled store; then reads while ingesting.
  const reads = [...events, '--read-ratio', 1];
  result.read = {
    ceiling: await search('ceiling GET', ceilingArgs(1), 4000, reads),
    svc: await search('serve-read GET', serveReadArgs(), 2000, reads),
  };
  result.read.whileIngesting = await readWhileIngesting();

  if (!skip.has('replay')) result.replay = await subBench('bench-replay.mjs', ['--events', quick ? 1_000_000 : 10_000_000, '--rounds', 1, '--mongo-events', 0]);
  if (!skip.has('mongo')) result.mongo = await subBench('bench-mongo.mjs', ['--events', 10_000, '--domains', 1_000]);

  result.table = printTable(result);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const file = argv.out ?? join(root, 'bench/results', `bench-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  log(`written to ${file}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

function ceilingArgs(workers) {
  return [join(root, 'scripts/bench/ceiling-server.mjs'), '--workers', workers];
}

function serveHttpArgs(workers) {
  return [svc, 'serve-http', '--port', 0, '--store', store, '--workers', workers, '--log-level', 'warn'];
}

function serveReadArgs() {
  return [svc, 'serve-read', '--port', 0, '--store', store, '--log-level', 'warn'];
}

/** Starts the daemon, finds its highest sustained rate, stops it. */
async function search(name, daemonArgs, start, loadArgs) {
  const daemon = await startDaemon(daemonArgs.map(String));
  try {
    const { best, steps } = await findSustainedRate(daemon, { start, ...STEP, args: loadArgs.map(String), onStep: showStep(name) });
    return { best, steps };
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
  rmSync(file);
  // The fill leaves a gigabyte of dirty pages for the kernel to write back; measuring anything
  // while it does would measure the disk. The wait counts as part of the fill.
  await $`sync`;
  const seconds = (performance.now() - started) / 1000;
  const summary = JSON.parse(replay.stdout);
  const storeBytes = Number((await $`du -sb ${store}`).stdout.split('\t')[0]);
  const fill = { domains: DOMAINS, events: summary.events ?? DOMAINS, seconds, eventsPerSecond: DOMAINS / seconds, peakRssMb: Math.round(Number(replay.stderr.trim().split('\n').pop()) / 1024), storeBytes };
  log(`filled in ${seconds.toFixed(1)} s (${Math.round(fill.eventsPerSecond)} events/s), store ${(storeBytes / 2 ** 20).toFixed(0)} MiB`);
  return fill;
}

/**
 * The P95 of status reads from serve-read while serve-http ingests INGEST_WHILE_READING events/s;
 * when that is more than the store sustains (see the POST figure), also at 80 % of what it does.
 */
async function readWhileIngesting() {
  const sustained = rateOf(result.batch.svc) * BATCH;
  const rates = [INGEST_WHILE_READING];
  if (sustained * 0.8 < INGEST_WHILE_READING) rates.push(Math.round((sustained * 0.8) / BATCH) * BATCH);
  const runs = [];
  for (const eventsPerSecond of rates.filter((rate) => rate > 0)) runs.push(await readWhileIngestingAt(eventsPerSecond));
  return runs;
}

async function readWhileIngestingAt(eventsPerSecond) {
  const writer = await startDaemon(serveHttpArgs(1).map(String));
  const reader = await startDaemon(serveReadArgs().map(String));
  try {
    const readRate = Math.max(500, Math.round((result.read.svc.best?.rps ?? 2000) / 4));
    const common = { seconds: STEP.seconds * 2, warmup: STEP.warmup };
    const [ingest, read] = await Promise.all([
      loadStep(writer, eventsPerSecond / BATCH, { ...common, args: ['--mode', 'batch', '--batch-size', BATCH, '--domains', DOMAINS, '--connections', 32].map(String) }),
      loadStep(reader, readRate, { ...common, args: ['--read-ratio', 1, '--domains', DOMAINS, '--connections', CONNECTIONS].map(String) }),
    ]);
    log(`reads at ${readRate}/s while ingesting ${eventsPerSecond} events/s: read p95 ${read.p95Ms} ms, ingest p95 ${ingest.p95Ms} ms`);
    return { ingestEventsPerSecond: eventsPerSecond, ingest, readRps: readRate, read };
  } finally {
    await writer.stop();
    await reader.stop();
  }
}

/** Runs one of the standalone benches (they keep their own ceilings) and takes its JSON. */
async function subBench(script, args) {
  const out = join(work, `${script}.json`);
  await $({ cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })`${process.execPath} ${join(root, 'scripts', script)} ${args} --out ${out}`;
  return JSON.parse(readFileSync(out, 'utf8'));
}

/** Prints the table of a run's results as markdown and returns its rows. */
function printTable(result) {
  const rows = [];
  const row = (figure, svcValue, ceilingValue, target, note = '') =>
    rows.push([figure, svcValue, ceilingValue, ceilingValue ? ratioOf(svcValue, ceilingValue) : '', target, note]);
  const n = (value) => Math.round(value).toLocaleString('en');
  const p95 = (s) => (s.best ? `, P95 ${s.best.p95Ms.toFixed(0)} ms` : '');
  const cpu = (s) => (s.best ? `${Math.round(s.best.serverCpuMicrosPerRequest)} µs CPU/request` : '');
  const { put, batch, read } = result;
  const batchSize = result.settings.batch;
  const storeRate = (size) => Math.round(result.store.batches.find((b) => b.domainsPerBatch === size).domainsPerSecond);
  row('(1)-(2) PUT events/s, 1 process', `${n(rateOf(put.svc))}${p95(put.svc)}`, n(rateOf(put.ceiling)), '≥ 0.7', `svc ${cpu(put.svc)}, ceiling ${cpu(put.ceiling)}; store alone: ${n(storeRate(1000))} domains/s in batches of 1,000`);
  row('(3) PUT events/s, --workers 2', `${n(rateOf(put.svc2))}${p95(put.svc2)}`, n(rateOf(put.ceiling2)), '', `vs 1-process ceiling: ${ratioOf(rateOf(put.svc2), rateOf(put.ceiling))}`);
  row('(4) POST 1,000-event batches, events/s, uniform', `${n(rateOf(batch.svc) * batchSize)}${p95(batch.svc)}`, n(rateOf(batch.ceiling) * batchSize), '≥ 1,000,000 events/s', `svc ${cpu(batch.svc)}; store alone: ${n(storeRate(10_000))} domains/s in batches of 10,000`);
  row('(4) POST 1,000-event batches, events/s, zipf', `${n(rateOf(batch.svcZipf) * batchSize)}${p95(batch.svcZipf)}`, n(rateOf(batch.ceiling) * batchSize), '≥ 1,000,000 events/s', `svc ${cpu(batch.svcZipf)}`);
  row(`(5) serve-read GET/s, ${n(result.settings.domains)} domains`, `${n(rateOf(read.svc))}${p95(read.svc)}`, n(rateOf(read.ceiling)), '', `svc ${cpu(read.svc)}`);
  for (const w of read.whileIngesting) {
    row(`(5) read P95 while ingesting ${n(w.ingestEventsPerSecond)} events/s`, `${w.read.p95Ms.toFixed(1)} ms at ${n(w.readRps)}/s`, '', '< 200 ms', `ingest P95 ${n(w.ingest.p95Ms)} ms, errors ${w.ingest.errors + w.read.errors}`);
  }
  if (result.replay) {
    const r = result.replay;
    row(`(6) replay ${n(r.log.events)} events, events/s`, n(r.replayLmdb.eventsPerSecond), n(r.ceiling.eventsPerSecond), '≥ 0.7', `${r.countsMismatched} domains differ`);
  }
  if (result.mongo) {
    const m = result.mongo;
    row('(7) MongoDB ingestion, events/s', n(m.serveHttp.eventsPerSecond), n(m.ceiling.eventsPerSecond), '≥ 0.8', m.server);
  }
  row('(8) peak RSS serve-http at its best PUT rate, MB', mb(put.svc.best?.serverPeakRss), '', '', `batch: ${mb(batch.svc.best?.serverPeakRss)} MB`);
  if (result.replay) row('(8) peak RSS replay, MB', result.replay.replayLmdb.peakRssMb, '', '< 300');
  for (const b of result.store.batches) {
    row(`store alone: applyBatch of ${b.domainsPerBatch} random domains, domains/s`, n(b.domainsPerSecond), '', '', `${b.msPerCommit.toFixed(1)} ms/commit, ${b.cpuMicrosPerDomain.toFixed(1)} µs CPU/domain`);
  }
  const f = result.fill;
  row(`store filled: ${n(f.domains)} domains by replay`, `${f.seconds.toFixed(0)} s, ${n(f.eventsPerSecond)} events/s`, '', '', `${mb(f.storeBytes)} MB on disk, replay peak RSS ${f.peakRssMb} MB`);

  const m = result.machine;
  console.log(`\nsvc bench ${result.date.slice(0, 10)}: ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}; load generator on the same machine\n`);
  console.log('| figure | svc | ceiling | ratio | target | notes |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  return rows;
}

function rateOf(search) {
  return search.best?.rps ?? 0;
}

/** The ratio of two table cells, which may be formatted (`12,500, P95 31 ms`). */
function ratioOf(a, b) {
  const number = (cell) => Number.parseFloat(String(cell).replaceAll(',', ''));
  return number(b) ? (number(a) / number(b)).toFixed(2) : '';
}

function mb(bytes) {
  return bytes === undefined ? '' : Math.round(bytes / 2 ** 20);
}
