#!/usr/bin/env node
// gRPC intake against HTTP on this machine, in one run: events/s through one Publish stream and
// through 4, at batch sizes 1, 100 and 1,000, next to POST /events NDJSON at the same sizes and PUT
// for size 1, and one stream with an idempotency_key on every batch; then send-to-ack latency on
// one stream at fixed rates. One stream of one-event batches is also measured against its ceiling,
// scripts/bench/grpc-ceiling-server.mjs (the protocol and the messages on bare node:http2). Native clients on both sides
// (wrk for HTTP, scripts/grpc-load in Go for gRPC), so that the figures are the servers' and not a
// JavaScript client's: each daemon on a fresh embedded store, events uniform over 100,000 domains.
//
//   node scripts/bench-grpc.mjs [--seconds 5] [--out bench/results/grpc-<date>.json]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { $ } from 'zx';
import { startDaemon } from './bench/processes.mjs';
import { writeBodies, writePaths } from './bench/workload-files.mjs';
import { ensureWrk, runWrk } from './bench/wrk.mjs';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, out: { type: 'string' } } });
const SECONDS = Number(values.seconds);
const DOMAINS = 100_000;
/** Batches of one stream sent and not yet acked: serve-grpc reads up to 1,024 (--max-stream-batches). */
const WINDOW = 1024;
const LATENCY_RATES = [2_000, 50_000];
const root = new URL('..', import.meta.url).pathname;
const svc = join(root, 'bin/svc.js');
const proto = join(root, 'proto/svc/v1/ingest.proto');
const work = mkdtempSync(join(tmpdir(), 'svc-bench-grpc-'));
const log = (...args) => console.error('bench-grpc:', ...args);

/** One grpc-load run: its JSON summary (see scripts/grpc-load/main.go). */
async function grpcLoad(binary, target, flags) {
  const args = ['-target', target, '-proto', proto, '-mode', 'stream', '-domains', DOMAINS, '-window', WINDOW, '-duration', `${SECONDS}s`, '-warmup', '1s', ...flags];
  const run = await $({ quiet: true })`${binary} ${args}`;
  return JSON.parse(run.stdout);
}

async function daemon(command, name) {
  return startDaemon([svc, command, '--port', '0', '--store', join(work, name), '--log-level', 'warn']);
}

const rows = [];
const latencies = [];
try {
  await ensureWrk();
  const binary = (await $({ quiet: true })`${join(root, 'scripts/grpc-load/build.sh')}`).stdout.trim();
  const paths = join(work, 'paths.txt');
  await writePaths(paths, { count: 1_000_000, domains: DOMAINS });

  // The ceiling: the protocol and the messages on bare node:http2, nothing counted.
  const ceilingServer = await startDaemon([join(root, 'scripts/bench/grpc-ceiling-server.mjs')]);
  let ceiling;
  try {
    ceiling = (await grpcLoad(binary, ceilingServer.url, ['-streams', 1, '-batch-size', 1])).eventsPerSecond;
  } finally {
    await ceilingServer.stop();
  }
  log(`ceiling (bare node:http2, batches decoded and acked, nothing counted): one stream of one-event batches ${ceiling} events/s`);

  for (const size of [1, 100, 1000]) {
    const grpcDaemon = await daemon('serve-grpc', `grpc-${size}`);
    let one, four, keyed;
    try {
      one = await grpcLoad(binary, grpcDaemon.url, ['-streams', 1, '-batch-size', size]);
      four = await grpcLoad(binary, grpcDaemon.url, ['-streams', 4, '-batch-size', size]);
      // Every batch with an idempotency_key of its own: a claim and a stored Ack each.
      keyed = await grpcLoad(binary, grpcDaemon.url, ['-streams', 1, '-batch-size', size, '-key-prefix', `bench-${size}-`]);
    } finally {
      await grpcDaemon.stop();
    }
    const httpDaemon = await daemon('serve-http', `http-${size}`);
    let http;
    try {
      let run = { connections: 64, load: { paths } };
      if (size > 1) {
        const bodies = join(work, `bodies-${size}.ndjson`);
        await writeBodies(bodies, { count: Math.max(200, 2_000_000 / size), size, domains: DOMAINS });
        run = { connections: 16, load: { bodies } };
      }
      // A first second unmeasured, as grpc-load's -warmup 1s.
      await runWrk(httpDaemon.url, { ...run, seconds: 1 });
      http = await runWrk(httpDaemon.url, { ...run, seconds: SECONDS });
    } finally {
      await httpDaemon.stop();
    }
    const row = {
      size,
      grpcOneStream: one.eventsPerSecond,
      grpcFourStreams: four.eventsPerSecond,
      grpcOneStreamKeyed: keyed.eventsPerSecond,
      http: Math.round(http.okRps * size),
      grpcErrors: [one, four, keyed].flatMap((run) => Object.entries(run.errors)).reduce((sum, [code, n]) => ({ ...sum, [code]: (sum[code] ?? 0) + n }), {}),
      httpNon2xx: http.non2xx,
      grpcOneStreamP95Ms: one.latencyMs.p95,
      httpP95Ms: http.p95Ms,
    };
    rows.push(row);
    log(`batch ${size}: gRPC 1 stream ${row.grpcOneStream} events/s, 4 streams ${row.grpcFourStreams}, 1 stream with keys ${row.grpcOneStreamKeyed}; HTTP ${size === 1 ? 'PUT' : 'POST'} ${row.http}`);
  }

  for (const rate of LATENCY_RATES) {
    const latencyDaemon = await daemon('serve-grpc', `latency-${rate}`);
    try {
      const run = await grpcLoad(binary, latencyDaemon.url, ['-streams', 1, '-batch-size', 1, '-rate', rate]);
      const { p50, p95, p99 } = run.latencyMs;
      latencies.push({ rate, achieved: run.batchesPerSecond, p50Ms: p50, p95Ms: p95, p99Ms: p99 });
      log(`latency at ${rate} one-event batches/s on one stream (achieved ${run.batchesPerSecond}): p50 ${p50} ms, p95 ${p95} ms, p99 ${p99} ms`);
    } finally {
      await latencyDaemon.stop();
    }
  }

  const n = (x) => x.toLocaleString('en');
  console.log('\n| batch size | gRPC, one Publish stream | gRPC, 4 streams | one stream, a key per batch | HTTP (PUT for 1, POST NDJSON otherwise) | one stream / HTTP |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${n(r.size)} | ${n(r.grpcOneStream)} | ${n(r.grpcFourStreams)} | ${n(r.grpcOneStreamKeyed)} | ${n(r.http)} | ${(r.grpcOneStream / r.http).toFixed(2)} |`);
  console.log(`\nOne stream of one-event batches against the bare node:http2 ceiling: ${n(rows[0].grpcOneStream)} / ${n(ceiling)} = ${(rows[0].grpcOneStream / ceiling).toFixed(2)}`);
  const result = {
    date: new Date().toISOString(),
    command: `node scripts/bench-grpc.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    settings: { seconds: SECONDS, domains: DOMAINS, window: WINDOW, clients: 'wrk (HTTP: 64 connections for PUT, 16 for POST), grpc-load (gRPC)' },
    ceiling: { oneStreamOneEventBatches: ceiling },
    rows,
    latencies,
  };
  const out = values.out ?? join(root, 'bench/results', `grpc-${result.date.slice(0, 10)}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  log(`written to ${out}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
