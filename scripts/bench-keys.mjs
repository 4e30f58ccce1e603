#!/usr/bin/env node
// What an Idempotency-Key costs: wrk drives serve-http (embedded store) with single-event PUTs and
// with POSTs of 100 events, each without a key and with a key of its own, in alternating runs
// (A-B-A-B) on one store, so that the machine's drift falls on both. Every keyed request claims its
// key in an LMDB write transaction and journals it with its counts (docs/http-api.md).
//
//   node scripts/bench-keys.mjs [--rounds 3] [--seconds 10] [--domains 100000] [--out bench/results/keys-<date>.json]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon } from './bench/processes.mjs';
import { writeBodies, writePaths } from './bench/workload-files.mjs';
import { ensureWrk, runWrk } from './bench/wrk.mjs';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    domains: { type: 'string', default: '100000' },
    out: { type: 'string' },
  },
});
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const DOMAINS = Number(values.domains);
const root = new URL('..', import.meta.url).pathname;
const svc = join(root, 'bin/svc.js');
const work = mkdtempSync(join(tmpdir(), 'svc-bench-keys-'));
const log = (...args) => console.error('bench-keys:', ...args);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Alternating runs of `load` without and with keys against one serve-http; medians and their ratio. */
async function withAndWithout(name, { connections, load, eventsPerRequest }) {
  const store = join(work, name.replace(/\W+/g, '-'));
  const daemon = await startDaemon([svc, 'serve-http', '--port', '0', '--store', store, '--log-level', 'warn']);
  const runs = { plain: [], keyed: [] };
  try {
    // A first short run so that neither side pays for the store's first pages.
    await runWrk(daemon.url, { seconds: 2, connections, load });
    for (let round = 0; round < ROUNDS; round++) {
      for (const side of ['plain', 'keyed']) {
        const run = await runWrk(daemon.url, { seconds: SECONDS, connections, load: { ...load, keys: side === 'keyed' } });
        runs[side].push(run);
        log(`${name} ${side}: ${Math.round(run.okRps)} requests/s, p95 ${run.p95Ms.toFixed(2)} ms, non-2xx ${run.non2xx}`);
      }
    }
  } finally {
    await daemon.stop();
  }
  const side = (list) => ({
    requestsPerSecond: Math.round(median(list.map((run) => run.okRps))),
    eventsPerSecond: Math.round(median(list.map((run) => run.okRps)) * eventsPerRequest),
    p95Ms: median(list.map((run) => run.p95Ms)),
    non2xx: list.reduce((sum, run) => sum + run.non2xx, 0),
  });
  return { name, plain: side(runs.plain), keyed: side(runs.keyed), ratio: median(runs.keyed.map((run, i) => run.okRps / runs.plain[i].okRps)), runs };
}

try {
  await ensureWrk();
  const paths = join(work, 'paths.txt');
  const bodies = join(work, 'bodies.ndjson');
  await writePaths(paths, { count: 1_000_000, domains: DOMAINS });
  await writeBodies(bodies, { count: 20_000, size: 100, domains: DOMAINS });
  const rows = [
    await withAndWithout('PUT, one event', { connections: 64, load: { paths }, eventsPerRequest: 1 }),
    await withAndWithout('POST, 100 events', { connections: 16, load: { bodies }, eventsPerRequest: 100 }),
  ];
  const result = {
    date: new Date().toISOString(),
    command: `node scripts/bench-keys.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    settings: { rounds: ROUNDS, seconds: SECONDS, domains: DOMAINS },
    rows,
  };
  const out = values.out ?? join(root, `bench/results/keys-${result.date.slice(0, 10)}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  for (const row of rows) {
    console.log(
      `${row.name}: without a key ${row.plain.requestsPerSecond}/s (p95 ${row.plain.p95Ms.toFixed(1)} ms), ` +
        `with a key ${row.keyed.requestsPerSecond}/s (p95 ${row.keyed.p95Ms.toFixed(1)} ms): ${row.ratio.toFixed(2)}`,
    );
  }
  log(`written to ${out}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
