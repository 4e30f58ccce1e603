#!/usr/bin/env node
// Ingestion into Redis and a Redis Cluster through `svc serve-http`, next to the embedded store and
// to the ceiling, all in the same run: the same Lua batch script svc sends (dist/store/redis/scripts.js),
// driven by a bare node-redis client with nothing else. Starts its own redis-server processes
// (AOF on, appendfsync everysec unless --appendfsync always) on free ports. Prints one table; writes
// bench/results/redis-<date>.json.
//
//   node scripts/bench-redis.mjs [--seconds 10] [--domains 100000] [--batch 1000] [--connections 64] [--masters 3] [--appendfsync everysec|always]
//   node scripts/bench-redis.mjs --scale [--seconds 10] [--appendfsync …]
//
// --scale measures only whether the cluster layout scales with its masters when each has a core
// of its own: svc's APPLY script per hash-tag group (as svc sends batches to a cluster) from a bare
// client, to one server pinned to core 0 (the client on core 1), then to a 2-master cluster with a
// master on each core (the client wherever there is room). serve-http is left out: it would need a
// third core. Writes bench/results/redis-scale-<date>.json.
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
import { createClient, createCluster } from '@redis/client';
import { Agent, request } from 'undici';
import { pin, startDaemon, treeUsage } from './bench/processes.mjs';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    domains: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '64' },
    masters: { type: 'string', default: '3' },
    appendfsync: { type: 'string', default: 'everysec' },
    scale: { type: 'boolean', default: false },
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
  if (values.scale) {
    await scaleOut();
    process.exit(0);
  }
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
  return { port, pid: child.pid, url: `redis://127.0.0.1:${port}`, cli, flush: () => cli('FLUSHALL') };
}

async function startCluster(masters) {
  const nodes = [];
  for (let i = 0; i < masters; i++) {
    const busPort = await freePort();
    nodes.push({ busPort, ...(await startRedis(['--cluster-enabled', 'yes', '--cluster-port', busPort, '--cluster-config-file', `nodes-${i}.conf`])) });
  }
  if (masters >= 3) {
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'], { encoding: 'utf8' });
    if (create.status !== 0) throw new Error(create.stdout + create.stderr);
  } else {
    // redis-cli creates no cluster of fewer than 3 masters: the slots and the meeting by hand.
    const share = Math.ceil(16384 / masters);
    nodes.forEach((node, i) => node.cli('CLUSTER', 'ADDSLOTSRANGE', String(i * share), String(Math.min(16383, (i + 1) * share - 1))));
    for (const node of nodes.slice(1)) node.cli('CLUSTER', 'MEET', '127.0.0.1', String(nodes[0].port), String(nodes[0].busPort));
  }
  for (const node of nodes) while (!/cluster_state:ok/.test(node.cli('CLUSTER', 'INFO'))) await sleep(100);
  return { nodes, url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`, flush: () => nodes.forEach((n) => n.cli('FLUSHALL')) };
}

/** --scale (see the top of this file). */
async function scaleOut() {
  const { APPLY } = await import(join(root, 'dist/store/redis/scripts.js'));
  const { bucketOf, counterKey, guardKey } = await import(join(root, 'dist/store/redis/layout.js'));
  // Each body as svc applies it on a cluster: one script per hash-tag group of its domains.
  const batches = bodies.map((body) => {
    const groups = new Map();
    for (const line of body.split('\n')) {
      const { domain, type } = JSON.parse(line);
      const bucket = bucketOf(domain);
      if (!groups.has(bucket)) groups.set(bucket, new Map());
      const deltas = groups.get(bucket);
      const d = deltas.get(domain) ?? [0, 0];
      d[type === 'delivered' ? 0 : 1]++;
      deltas.set(domain, d);
    }
    return [...groups].map(([bucket, deltas]) => ({ bucket, keys: [...deltas.keys()].map((domain) => counterKey(domain, bucket)), counts: [...deltas.values()].flat().map(String) }));
  });
  // Cores busy during the measured window: the servers' and this client's.
  const cpuOf = (pids) => pids.reduce((sum, pid) => sum + treeUsage(pid).cpuSeconds, 0);
  const drive = async (send, pids) => {
    let events = 0;
    let n = 0;
    const run = async (end) => {
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (performance.now() < end) {
            const id = `scale:${n++}`;
            const groups = batches[n % batches.length];
            await Promise.all(groups.map((g) => send(g.keys[0], ['EVALSHA', APPLY.sha, String(g.keys.length + 1), guardKey(g.bucket, id), ...g.keys, '600000', '0', ...g.counts])));
            events += BATCH;
          }
        }),
      );
    };
    await run(performance.now() + 1000); // warm-up
    events = 0;
    const started = performance.now();
    const [serversBefore, clientBefore] = [cpuOf(pids), process.cpuUsage()];
    await run(started + SECONDS * 1000);
    const seconds = (performance.now() - started) / 1000;
    const client = process.cpuUsage(clientBefore);
    return { eventsPerSecond: events / seconds, serverCores: (cpuOf(pids) - serversBefore) / seconds, clientCores: (client.user + client.system) / 1e6 / seconds };
  };

  const one = await startRedis();
  one.cli('SCRIPT', 'LOAD', APPLY.source);
  pin(one.pid, '0');
  pin(process.pid, '1');
  const client = createClient({ url: one.url });
  await client.connect();
  const oneServer = await drive((_, args) => client.sendCommand(args), [one.pid]);
  await client.close();
  log('one server on core 0:', oneServer);

  const cluster = await startCluster(2);
  cluster.nodes.forEach((node, core) => {
    node.cli('SCRIPT', 'LOAD', APPLY.source);
    pin(node.pid, String(core));
  });
  pin(process.pid, '0,1');
  const clusterClient = createCluster({ rootNodes: cluster.nodes.map((node) => ({ url: node.url })) });
  await clusterClient.connect();
  const twoMasters = await drive((key, args) => clusterClient.sendCommand(key, false, args), cluster.nodes.map((node) => node.pid));
  await clusterClient.close();
  log('two masters on cores 0 and 1:', twoMasters);

  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    settings: { seconds: SECONDS, domains: DOMAINS, batch: BATCH, appendfsync: APPENDFSYNC, scripts: 'APPLY per hash-tag group, 4 batches in flight' },
    oneServer,
    twoMasters,
    ratio: twoMasters.eventsPerSecond / oneServer.eventsPerSecond,
  };
  const row = (name, r) => `| ${name} | ${Math.round(r.eventsPerSecond).toLocaleString('en')} | ${r.serverCores.toFixed(2)} | ${r.clientCores.toFixed(2)} |`;
  console.log(`\n| svc's cluster scripts from a bare client | events/s | cores busy: servers | client |\n|---|---|---|---|`);
  console.log(row('one server, core 0 (client on core 1)', oneServer));
  console.log(row(`two masters, cores 0 and 1 (**${result.ratio.toFixed(2)}** of one server)`, twoMasters));
  const file = values.out ?? join(root, 'bench/results', `redis-scale-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`written to ${file}`);
}


