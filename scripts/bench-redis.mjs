#!/usr/bin/env node
// Ingestion into Redis and a Redis Cluster through `svc serve-http`, next to the embedded store and
// to the ceiling, all in the same run: the same Lua batch script svc sends (dist/store/redis/scripts.js),
// driven by a bare node-redis client with nothing else. Starts its own redis-server processes
// (AOF on, appendfsync everysec unless --appendfsync always) on free ports. Prints one table; writes
// bench/results/redis-<date>.json.
//
//   node scripts/bench-redis.mjs [--seconds 10] [--domains 100000] [--batch 1000] [--connections 64] [--masters 3] [--appendfsync everysec|always]
//
// The load generator (undici, in this process) shares the cores with the servers: the figures are
// what this box sustains with everything on it, compared as ratios within the run.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@redis/client';
import { Agent, request } from 'undici';
import { startDaemon } from './bench/processes.mjs';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    domains: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '64' },
    masters: { type: 'string', default: '3' },
    appendfsync: { type: 'string', default: 'everysec' },
  },
});
const SECONDS = Number(values.seconds);
const DOMAINS = Number(values.domains);
const BATCH = Number(values.batch);
const CONNECTIONS = Number(values.connections);
const MASTERS = Number(values.masters);
const APPENDFSYNC = values.appendfsync;
if (!['everysec', 'always'].includes(APPENDFSYNC)) throw new Error('--appendfsync: everysec or always');
const root = new URL('..', import.meta.url).pathname;
const svc = join(root, 'bin/svc.js');
const log = (...args) => console.error('bench-redis:', ...args);

let seed = 7;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const domainAt = () => `d${Math.floor(random() * DOMAINS)}.bench.example`;
/** 64 POST bodies of BATCH events each, cycled. */
const bodies = Array.from({ length: 64 }, () =>
  Array.from({ length: BATCH }, () => JSON.stringify({ domain: domainAt(), type: random() < 0.05 ? 'bounced' : 'delivered' })).join('\n'),
);

const work = mkdtempSync(join(tmpdir(), 'svc-bench-redis-'));
const servers = [];
try {
  const single = await startRedis();
  const cluster = await startCluster(MASTERS);
  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, redis: spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim() },
    settings: { seconds: SECONDS, domains: DOMAINS, batch: BATCH, connections: CONNECTIONS, masters: MASTERS, appendfsync: APPENDFSYNC },
  };
  log('the ceiling: the APPLY script from a bare client, 4 batches in flight');
  result.ceiling = await bareScript(single.url);
  single.flush();
  log('POST batches of', BATCH);
  result.post = {
    embedded: await throughServeHttp(join(work, 'store-post'), post),
    // On Redis the engine commits four batches at once by default, as the ceiling sends them; one
    // at a time pays a round trip per batch.
    redis: await throughServeHttp(single.url, post),
    cluster: await throughServeHttp(cluster.url, post),
    'redis --max-in-flight 1': await throughServeHttp(single.url, post, ['--max-in-flight', '1']),
    'cluster --max-in-flight 1': await throughServeHttp(cluster.url, post, ['--max-in-flight', '1']),
  };
  single.flush();
  cluster.flush();
  const baseMemory = usedMemory(single);
  log('PUT, one event a request,', CONNECTIONS, 'connections');
  result.put = {
    embedded: await throughServeHttp(join(work, 'store-put'), put),
    redis: await throughServeHttp(single.url, put),
    cluster: await throughServeHttp(cluster.url, put),
  };
  result.memory = memoryPerDomain(single, baseMemory);
  result.ratios = {
    postRedisToCeiling: result.post.redis.eventsPerSecond / result.ceiling.eventsPerSecond,
    putRedisToEmbedded: result.put.redis.eventsPerSecond / result.put.embedded.eventsPerSecond,
    postClusterToRedis: result.post.cluster.eventsPerSecond / result.post.redis.eventsPerSecond,
    postRedisOneInFlightToCeiling: result.post['redis --max-in-flight 1'].eventsPerSecond / result.ceiling.eventsPerSecond,
  };
  const n = (x) => Math.round(x).toLocaleString('en');
  console.log(`\nRedis bench ${result.date.slice(0, 10)}: ${result.machine.cores} cores, ${result.machine.redis.split(' ').slice(0, 3).join(' ')}; AOF ${APPENDFSYNC}; ${DOMAINS.toLocaleString('en')} domains; load generator on the same cores`);
  console.log('\n| path | events/s | vs |');
  console.log('|---|---|---|');
  console.log(`| ceiling: APPLY script of ${BATCH}-event batches from a bare node-redis client | ${n(result.ceiling.eventsPerSecond)} | ${n(result.ceiling.incrementsPerSecond)} domain increments/s |`);
  for (const [name, r] of Object.entries(result.post)) console.log(`| POST /events (${BATCH} events), serve-http on ${name} | ${n(r.eventsPerSecond)} | ${(r.eventsPerSecond / result.ceiling.eventsPerSecond).toFixed(2)} of the ceiling |`);
  for (const [name, r] of Object.entries(result.put)) console.log(`| PUT, serve-http on ${name} | ${n(r.eventsPerSecond)} | ${(r.eventsPerSecond / result.put.embedded.eventsPerSecond).toFixed(2)} of the embedded store |`);
  console.log(`\nRedis memory: ${result.memory.bytesPerDomain.toFixed(0)} bytes a domain (used_memory grown over ${n(result.memory.domains)} counters, with the guards of the run)`);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const file = values.out ?? join(root, 'bench/results', `redis-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`written to ${file}`);
} finally {
  for (const server of servers) server.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}

async function bareScript(url) {
  const { APPLY } = await import(join(root, 'dist/store/redis/scripts.js'));
  const { counterKey, guardKey } = await import(join(root, 'dist/store/redis/layout.js'));
  const client = createClient({ url });
  await client.connect();
  await client.sendCommand(['SCRIPT', 'LOAD', APPLY.source]);
  // The batches serve-http would make of the bodies: deltas per domain.
  const prepared = bodies.map((body) => {
    const deltas = new Map();
    for (const line of body.split('\n')) {
      const { domain, type } = JSON.parse(line);
      const d = deltas.get(domain) ?? [0, 0];
      d[type === 'delivered' ? 0 : 1]++;
      deltas.set(domain, d);
    }
    return { keys: [...deltas.keys()].map((domain) => counterKey(domain)), counts: [...deltas.values()].flat().map(String) };
  });
  let events = 0;
  let increments = 0;
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (performance.now() < end) {
        const batch = prepared[n % prepared.length];
        const id = `bench:${n++}`;
        await client.sendCommand(['EVALSHA', APPLY.sha, String(batch.keys.length + 1), guardKey(0, id), ...batch.keys, '600000', '0', ...batch.counts]);
        events += BATCH;
        increments += batch.keys.length;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await client.close();
  return { seconds, eventsPerSecond: events / seconds, incrementsPerSecond: increments / seconds };
}

async function post(url, dispatcher, end) {
  let events = 0;
  let i = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (performance.now() < end) {
        const res = await request(`${url}/events`, { method: 'POST', body: bodies[i++ % bodies.length], dispatcher });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`POST answered ${res.statusCode}`);
        events += BATCH;
      }
    }),
  );
  return events;
}

async function put(url, dispatcher, end) {
  let events = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) {
        const res = await request(`${url}/events/${domainAt()}/delivered`, { method: 'PUT', dispatcher });
        await res.body.dump();
        if (res.statusCode !== 204) throw new Error(`PUT answered ${res.statusCode}`);
        events++;
      }
    }),
  );
  return events;
}

async function throughServeHttp(store, drive, extra = []) {
  const daemon = await startDaemon([svc, 'serve-http', '--port', '0', '--store', store, '--log-level', 'warn', ...extra]);
  const dispatcher = new Agent({ connections: CONNECTIONS, pipelining: 1 });
  try {
    await drive(daemon.url, dispatcher, performance.now() + 1000); // warm-up
    const started = performance.now();
    const events = await drive(daemon.url, dispatcher, started + SECONDS * 1000);
    const seconds = (performance.now() - started) / 1000;
    log(`${store}: ${Math.round(events / seconds)} events/s`);
    return { seconds, eventsPerSecond: events / seconds };
  } finally {
    await dispatcher.close();
    await daemon.stop();
  }
}

function usedMemory(server) {
  return Number(/used_memory:(\d+)/.exec(server.cli('INFO', 'memory'))[1]);
}

/** What the counters written since `base` cost: used_memory grown, per counter (guards expire, keys none here). */
function memoryPerDomain(server, base) {
  const domains = Number(server.cli('EVAL', "return #redis.call('KEYS', 'svc:c:*')", '0'));
  const used = usedMemory(server);
  return { domains, usedMemory: used, bytesPerDomain: (used - base) / Math.max(1, domains) };
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startRedis(extra = []) {
  const port = await freePort();
  const dir = mkdtempSync(join(work, 'redis-'));
  const child = spawn('redis-server', ['--port', port, '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', APPENDFSYNC, '--save', '', '--loglevel', 'warning', ...extra].map(String), { stdio: 'ignore' });
  servers.push(child);
  const cli = (...args) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
  while (cli('PING') !== 'PONG') await sleep(50);
  return { port, url: `redis://127.0.0.1:${port}`, cli, flush: () => cli('FLUSHALL') };
}

async function startCluster(masters) {
  const nodes = [];
  for (let i = 0; i < masters; i++) nodes.push(await startRedis(['--cluster-enabled', 'yes', '--cluster-port', await freePort(), '--cluster-config-file', `nodes-${i}.conf`]));
  const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'], { encoding: 'utf8' });
  if (create.status !== 0) throw new Error(create.stdout + create.stderr);
  for (const node of nodes) while (!/cluster_state:ok/.test(node.cli('CLUSTER', 'INFO'))) await sleep(100);
  return { url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`, flush: () => nodes.forEach((n) => n.cli('FLUSHALL')) };
}
