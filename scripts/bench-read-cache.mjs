#!/usr/bin/env node
// serve-read's caches side by side, in one run: GET /domains/<d> of bounced domains (the answers
// the caches keep), measured with wrk, through
//   - the store alone (--cache-size 0),
//   - the shared Redis cache (--cache-size 0 --cache redis://…, warmed),
//   - the in-process cache (the default --cache-size),
// on the embedded store (a local LMDB read) and on Redis as the store (a network read).
//
//   node scripts/bench-read-cache.mjs [--seconds 10] [--domains 20000] [--connections 64]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { $ } from 'zx';
import { startDaemon } from './bench/processes.mjs';
import { ensureWrk, runWrk } from './bench/wrk.mjs';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, domains: { type: 'string', default: '20000' }, connections: { type: 'string', default: '64' } } });
const SECONDS = Number(values.seconds);
const DOMAINS = Number(values.domains);
const CONNECTIONS = Number(values.connections);
const svc = new URL('../bin/svc.js', import.meta.url).pathname;
const log = (...args) => console.error('bench-read-cache:', ...args);

await ensureWrk();
const work = mkdtempSync(join(tmpdir(), 'svc-bench-cache-'));
const redis = [];
try {
  const names = Array.from({ length: DOMAINS }, (_, i) => `b${i}.bench.example`);
  const events = join(work, 'events.ndjson');
  writeFileSync(events, names.map((domain) => JSON.stringify({ domain, type: 'bounced' })).join('\n') + '\n');
  const reads = join(work, 'reads.txt');
  writeFileSync(reads, names.join('\n') + '\n');
  const cache = await startRedis();
  const storeRedis = await startRedis();
  const stores = { embedded: join(work, 'store'), redis: storeRedis };
  for (const store of Object.values(stores)) await $({ quiet: true })`node ${svc} replay ${events} --store ${store}`;

  const rows = [];
  for (const [storeName, store] of Object.entries(stores)) {
    for (const [how, extra] of [
      ['store alone', ['--cache-size', '0']],
      ['shared Redis cache', ['--cache-size', '0', '--cache', cache]],
      ['in-process cache', []],
    ]) {
      const daemon = await startDaemon([svc, 'serve-read', '--port', '0', '--store', store, ...extra]);
      try {
        // Warm up: every answer once through the daemon, so that the caches hold them.
        await runWrk(daemon.url, { seconds: 3, connections: CONNECTIONS, load: { reads } });
        const result = await runWrk(daemon.url, { seconds: SECONDS, connections: CONNECTIONS, load: { reads } });
        rows.push({ store: storeName, how, ...result });
        log(storeName, how, Math.round(result.okRps), 'requests/s');
      } finally {
        await daemon.stop();
      }
    }
  }
  console.log(`\nserve-read, GET of ${DOMAINS.toLocaleString('en')} bounced domains in turn, wrk -c${CONNECTIONS} ${SECONDS} s\n`);
  console.log('| store | read through | requests/s | vs the store alone | p95 ms | non-2xx |');
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) {
    const alone = rows.find((r) => r.store === row.store && r.how === 'store alone');
    console.log(`| ${row.store} | ${row.how} | ${Math.round(row.okRps).toLocaleString('en')} | ${(row.okRps / alone.okRps).toFixed(2)} | ${row.p95Ms.toFixed(1)} | ${row.non2xx} |`);
  }
} finally {
  for (const child of redis) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}

async function startRedis() {
  const port = await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
  const dir = mkdtempSync(join(work, 'redis-'));
  redis.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--loglevel', 'warning'], { stdio: 'ignore' }));
  for (let i = 0; i < 100; i++) {
    if ((await $({ nothrow: true, quiet: true })`redis-cli -p ${port} PING`).stdout.trim() === 'PONG') return `redis://127.0.0.1:${port}`;
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}
