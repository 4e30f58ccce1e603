#!/usr/bin/env node
// `svc replay` of a generated log into the embedded store, next to its ceiling measured in the
// same run: merely reading, cutting, splitting and parsing the same file with the same code on one
// thread (no aggregation, no store, no fingerprint). Replay itself parses on every core by default,
// so it is also measured with --threads 0 (everything on one thread) for the like-for-like ratio.
// Optionally the same replay into MongoDB (FerretDB here). Three rounds taking turns; medians.
// Prints a table and writes bench/results/replay-<date>.json (or --out).
//
//   npx tsc -p . && node scripts/bench-replay.mjs [--events 10000000] [--mongo-events 200000] [--rounds 3]
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import split2 from 'split2';
import { parseRawEventLine } from '../dist/core/event.js';
import { chunkLog } from '../dist/replay/chunks.js';
import { eachLine } from '../dist/replay/lines.js';

const { values } = parseArgs({
  options: { out: { type: 'string' }, events: { type: 'string', default: '10000000' }, 'mongo-events': { type: 'string', default: '200000' }, rounds: { type: 'string', default: '3' } },
});
const root = new URL('..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'svc-bench-replay-'));
const svc = join(root, 'bin/svc.js');

try {
  const log = join(work, 'events.ndjson');
  execFileSync(process.execPath, [join(root, 'scripts/generate-log.mjs'), '--events', values.events, '--out', log], { stdio: 'inherit' });
  const bytes = statSync(log).size;

  // The ceiling and the replay take turns, and each figure is the median of its rounds: on a
  // shared 2-core machine a single run of either can be off by a third.
  const ceilings = [];
  const replays = [];
  const oneThread = [];
  for (let round = 0; round < Number(values.rounds); round++) {
    ceilings.push(await parseOnly(log));
    const store = join(work, `store${round}`);
    replays.push(await replay(log, store));
    if (round > 0) rmSync(store, { recursive: true, force: true });
    oneThread.push(await replay(log, join(work, `one${round}`), ['--threads', '0']));
    rmSync(join(work, `one${round}`), { recursive: true, force: true });
  }
  const ceiling = median(ceilings);
  const lmdb = median(replays);
  const lmdbOneThread = median(oneThread);
  const naive = await split2JsonParse(log);
  const lmdbAgain = await replay(log, join(work, 'store0'));
  const mismatches = await compareWithExpected(join(work, 'store0'), `${log}.expected.json`);
  let mongo;
  if (Number(values['mongo-events']) > 0) mongo = await mongoReplay();

  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    log: { events: Number(values.events), domains: Object.keys(JSON.parse(readFileSync(`${log}.expected.json`, 'utf8'))).length, bytes },
    rounds: Number(values.rounds),
    ceiling,
    ceilingRounds: ceilings.map((r) => r.seconds),
    replayRounds: replays.map((r) => r.seconds),
    naiveSplit2JsonParse: naive,
    replayLmdb: lmdb,
    replayLmdbOneThread: lmdbOneThread,
    ratioOneThread: lmdbOneThread.eventsPerSecond / ceiling.eventsPerSecond,
    oneThreadRounds: oneThread.map((r) => r.seconds),
    countsMismatched: mismatches,
    ratio: lmdb.eventsPerSecond / ceiling.eventsPerSecond,
    replayAgainAlreadyApplied: { seconds: lmdbAgain.seconds, events: lmdbAgain.events },
    mongo,
  };
  console.log('\n| path | events | seconds | events/s | peak RSS MB |');
  console.log('|---|---|---|---|---|');
  const row = (name, r) => console.log(`| ${name} | ${r.events} | ${r.seconds.toFixed(2)} | ${Math.round(r.eventsPerSecond)} | ${r.peakRssMb ?? ''} |`);
  row('read + split + parse (ceiling)', ceiling);
  row('split2 + JSON.parse (naive, for reference)', naive);
  row(`svc replay → LMDB (${cpus().length} parsing threads, the default)`, lmdb);
  row('svc replay --threads 0 → LMDB (parsing on the main thread)', lmdbOneThread);
  if (mongo) row(`svc replay → ${mongo.server}`, mongo);
  console.log(`\ncounts in the store compared with the generator's expected counts: ${mismatches} domains differ`);
  console.log(`ratio replay / ceiling: ${result.ratio.toFixed(2)} (--threads 0: ${result.ratioOneThread.toFixed(2)}); the same command again: ${lmdbAgain.seconds.toFixed(2)} s, ${lmdbAgain.events} events applied`);
  if (mongo) console.log(`MongoDB writes issued: ${mongo.domainWrites} upserts for ${mongo.chunks} chunks (one per distinct domain per group of chunks)`);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  // --out: where `npm run bench` collects it; otherwise a dated file of its own.
  const file = values.out ?? join(root, 'bench/results', `replay-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`written to ${file}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** Domains whose stored counts differ from the generator's expected counts. */
async function compareWithExpected(store, expectedFile) {
  const expected = JSON.parse(readFileSync(expectedFile, 'utf8'));
  const { LmdbStore } = await import('../dist/store/lmdb/lmdb-store.js');
  const { normalizeDomain } = await import('../dist/core/domain.js');
  const db = await LmdbStore.open(store, { use: 'bulk' });
  try {
    const entries = Object.entries(expected);
    const stored = await db.getMany(entries.map(([domain]) => normalizeDomain(domain)));
    return entries.filter(([domain, counts]) => {
      const got = stored.get(normalizeDomain(domain));
      return got?.delivered !== counts.delivered || got?.bounced !== counts.bounced;
    }).length;
  } finally {
    await db.close();
  }
}

function median(runs) {
  return [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor(runs.length / 2)];
}

/** The same reading, cutting, line splitting and parsing replay does, on one thread, and nothing else. */
async function parseOnly(path) {
  const started = performance.now();
  let events = 0;
  for await (const piece of chunkLog(createReadStream(path, { highWaterMark: 256 * 1024 }), 4 * 1024 * 1024, 64 * 1024)) {
    eachLine(piece.data, 64 * 1024, (text) => {
      if (text && parseRawEventLine(text).domain) events++;
    });
  }
  const seconds = (performance.now() - started) / 1000;
  return { events, seconds, eventsPerSecond: events / seconds };
}

async function split2JsonParse(path) {
  const started = performance.now();
  let events = 0;
  await new Promise((resolve, reject) => {
    createReadStream(path)
      .pipe(split2(JSON.parse))
      .on('data', (event) => event.domain && events++)
      .on('end', resolve)
      .on('error', reject);
  });
  const seconds = (performance.now() - started) / 1000;
  return { events, seconds, eventsPerSecond: events / seconds };
}

async function replay(path, store, extra = []) {
  const child = spawn('/usr/bin/time', ['-f', '%M', process.execPath, svc, 'replay', path, '--store', store, '--json', '--no-progress', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`svc replay exited with ${code}: ${stderr}`);
  const summary = JSON.parse(stdout);
  const peakRssMb = Math.round(Number(stderr.trim().split('\n').pop()) / 1024);
  return { ...summary, results: undefined, peakRssMb };
}

async function mongoReplay() {
  const binary = execFileSync('bash', [join(root, 'scripts/ferretdb/build.sh')], { stdio: ['ignore', 'pipe', 'inherit'] }).toString().trim();
  const dir = join(work, 'ferretdb');
  mkdirSync(dir);
  const port = 27000 + Math.floor(Math.random() * 1000);
  const server = spawn(binary, ['--handler=sqlite', `--sqlite-url=file:${dir}/`, `--state-dir=${dir}`, `--listen-addr=127.0.0.1:${port}`, '--debug-addr=-', '--telemetry=disable', '--log-level=error'], { stdio: 'ignore' });
  try {
    await sleep(1500);
    const log = join(work, 'mongo.ndjson');
    execFileSync(process.execPath, [join(root, 'scripts/generate-log.mjs'), '--events', values['mongo-events'], '--out', log], { stdio: 'inherit' });
    const r = await replay(log, `mongodb://127.0.0.1:${port}/bench`, ['--chunk-size', '1MiB']);
    return { ...r, server: 'FerretDB 1.24 (SQLite)' };
  } finally {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.on('exit', resolve));
  }
}

