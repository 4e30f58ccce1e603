#!/usr/bin/env node
// Ingestion into MongoDB (FerretDB here, or MONGODB_URI) through `svc serve-http`, next to its
// ceiling measured in the same run: the driver itself doing the same bulk upserts of the same
// batches, as fast as the server takes them. Prints one table and writes bench/results/mongo-<date>.json.
//
//   node scripts/bench-mongo.mjs [--events 20000] [--domains 1000] [--batch 1000] [--backend sqlite|postgresql]
//
// --backend postgresql runs FerretDB on the local PostgreSQL (FERRETDB_POSTGRESQL, default
// postgres://postgres@127.0.0.1:5432) in a fresh database, dropped afterwards.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Long, MongoClient } from 'mongodb';
import { request } from 'undici';
import { startDaemon } from './bench/processes.mjs';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    events: { type: 'string', default: '20000' },
    domains: { type: 'string', default: '1000' },
    batch: { type: 'string', default: '1000' },
    backend: { type: 'string', default: 'sqlite' },
  },
});
const EVENTS = Number(values.events);
const DOMAINS = Number(values.domains);
const BATCH = Number(values.batch);
const root = new URL('..', import.meta.url).pathname;

// The same reproducible events for both sides, cut into the same POST batches.
let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const batches = [];
for (let i = 0; i < EVENTS; i += BATCH) {
  batches.push(
    Array.from({ length: Math.min(BATCH, EVENTS - i) }, () => ({
      domain: `d${Math.floor(random() * DOMAINS)}.bench.example`,
      type: random() < 0.05 ? 'bounced' : 'delivered',
    })),
  );
}

const { server, uri, stopServer } = await mongoServer();
try {
  // A-B-B-A order, so that a server slowing down over the run weighs on both sides alike.
  const raw1 = await rawDriver(`${uri}/bench_raw1`);
  const svc1 = await throughServeHttp(`${uri}/bench_svc1`);
  const svc2 = await throughServeHttp(`${uri}/bench_svc2`);
  const raw2 = await rawDriver(`${uri}/bench_raw2`);
  const ceiling = mean(raw1, raw2);
  const svc = mean(svc1, svc2);
  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    server,
    workload: { events: EVENTS, domains: DOMAINS, batch: BATCH },
    ceiling,
    serveHttp: svc,
    ratio: svc.eventsPerSecond / ceiling.eventsPerSecond,
  };
  console.log('\n| path | events | seconds | events/s | upserts/s |');
  console.log('|---|---|---|---|---|');
  for (const [name, r] of [['driver bulk upserts (ceiling)', ceiling], ['svc serve-http, POST /events', svc]]) {
    console.log(`| ${name} | ${EVENTS} | ${r.seconds.toFixed(1)} | ${Math.round(r.eventsPerSecond)} | ${Math.round(r.upsertsPerSecond)} |`);
  }
  console.log(`\nratio serve-http / ceiling: ${result.ratio.toFixed(2)} (server: ${server})`);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  // --out: where `npm run bench` collects it; otherwise a dated file of its own.
  const file = values.out ?? join(root, 'bench/results', `mongo-${values.backend === 'postgresql' ? 'postgresql-' : ''}${result.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`written to ${file}`);
} finally {
  await stopServer();
}

function mean(a, b) {
  const seconds = (a.seconds + b.seconds) / 2;
  return { seconds, eventsPerSecond: EVENTS / seconds, upsertsPerSecond: (a.upsertsPerSecond + b.upsertsPerSecond) / 2, runs: [a, b] };
}

async function rawDriver(dbUri) {
  const client = new MongoClient(dbUri);
  const collection = client.db().collection('domains');
  const info = await client.db().admin().command({ buildInfo: 1 });
  // The same command size svc uses on this server (see src/store/mongo/server-profile.ts).
  const perWrite = info.ferretdbVersion ? 16 : 10_000;
  let upserts = 0;
  const started = performance.now();
  for (const batch of batches) {
    const deltas = new Map();
    for (const { domain, type } of batch) {
      const d = deltas.get(domain) ?? { delivered: 0, bounced: 0 };
      d[type]++;
      deltas.set(domain, d);
    }
    const ops = [...deltas].map(([domain, d]) => ({
      updateOne: { filter: { _id: domain }, update: { $inc: { delivered: Long.fromNumber(d.delivered), bounced: Long.fromNumber(d.bounced) } }, upsert: true },
    }));
    for (let i = 0; i < ops.length; i += perWrite) await collection.bulkWrite(ops.slice(i, i + perWrite), { ordered: false });
    upserts += ops.length;
  }
  const seconds = (performance.now() - started) / 1000;
  await client.db().dropDatabase();
  await client.close();
  return { seconds, eventsPerSecond: EVENTS / seconds, upsertsPerSecond: upserts / seconds };
}

async function throughServeHttp(dbUri) {
  const daemon = await startDaemon([join(root, 'bin/svc.js'), 'serve-http', '--port', '0', '--store', dbUri]);
  const { url } = daemon;
  let upserts = 0;
  const started = performance.now();
  for (const batch of batches) {
    const body = batch.map((e) => JSON.stringify(e)).join('\n');
    const res = await request(`${url}/events`, { method: 'POST', body });
    const answer = await res.body.json();
    if (res.statusCode !== 200 || answer.accepted !== batch.length) throw new Error(`POST /events answered ${res.statusCode} ${JSON.stringify(answer)}`);
    upserts += new Set(batch.map((e) => e.domain)).size;
  }
  const seconds = (performance.now() - started) / 1000;
  await daemon.stop();
  const client = new MongoClient(dbUri);
  await client.db().dropDatabase();
  await client.close();
  return { seconds, eventsPerSecond: EVENTS / seconds, upsertsPerSecond: upserts / seconds };
}

async function mongoServer() {
  if (process.env.MONGODB_URI) return { server: 'MONGODB_URI', uri: process.env.MONGODB_URI.replace(/\/$/, ''), stopServer: async () => {} };
  const binary = execFileSync('bash', [join(root, 'scripts/ferretdb/build.sh')], { stdio: ['ignore', 'pipe', 'inherit'] }).toString().trim();
  const dir = mkdtempSync(join(tmpdir(), 'svc-bench-ferretdb-'));
  const port = 27000 + Math.floor(Math.random() * 1000);
  const postgresql = values.backend === 'postgresql';
  const pg = process.env.FERRETDB_POSTGRESQL ?? 'postgres://postgres@127.0.0.1:5432';
  const database = `svc_bench_${Date.now().toString(36)}`;
  if (postgresql) execFileSync('psql', [`${pg}/postgres`, '-q', '-c', `CREATE DATABASE ${database}`]);
  const storage = postgresql ? ['--handler=postgresql', `--postgresql-url=${pg}/${database}`] : ['--handler=sqlite', `--sqlite-url=file:${dir}/`];
  const child = spawn(binary, [...storage, `--state-dir=${dir}`, `--listen-addr=127.0.0.1:${port}`, '--debug-addr=-', '--telemetry=disable', '--log-level=error'], { stdio: 'ignore' });
  await sleep(1500);
  const version = execFileSync(binary, ['--version']).toString().split('\n')[0];
  return {
    server: `FerretDB ${version.replace('version: ', '')} (${postgresql ? 'PostgreSQL' : 'SQLite'} backend)`,
    uri: `mongodb://127.0.0.1:${port}`,
    stopServer: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.on('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
      if (postgresql) execFileSync('psql', [`${pg}/postgres`, '-q', '-c', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`]);
    },
  };
}
