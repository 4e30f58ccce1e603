#!/usr/bin/env node
// gRPC intake against HTTP on this machine: events/s through one Publish stream and through
// several, at batch sizes 1, 100 and 1,000, next to POST /events NDJSON at the same sizes and PUT
// for size 1; then send-to-ack latency on one stream at a fixed rate. Clients in this process
// (grpc-js, undici), servers as child processes, all on the same cores.
//
//   node scripts/bench-grpc.mjs [--seconds 5] [--out bench/results/grpc-<date>.json]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Pool } from 'undici';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, out: { type: 'string' } } });
const SECONDS = Number(values.seconds);
const root = new URL('..', import.meta.url).pathname;
const svc = join(root, 'bin/svc.js');
const DOMAINS = 100_000;
const work = mkdtempSync(join(tmpdir(), 'svc-bench-grpc-'));
const proto = grpc.loadPackageDefinition(
  protoLoader.loadSync(join(root, 'proto/svc/v1/ingest.proto'), { keepCase: true, enums: String, longs: Number, defaults: true }),
).svc.v1;

let seed = 1;
const domain = () => `d${(seed = (seed * 48271) % 2147483647) % DOMAINS}.example`;
const events = (n) => Array.from({ length: n }, () => ({ domain: domain(), type: 'EVENT_TYPE_DELIVERED' }));

function start(command, store) {
  const child = spawn(process.execPath, [svc, command, '--port', '0', '--store', store, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) =>
    createInterface({ input: child.stdout }).on('line', (line) => {
      const entry = JSON.parse(line);
      if (entry.msg === 'listening') resolve({ url: entry.url, stop: () => new Promise((done) => (child.once('exit', done), child.kill('SIGTERM'))) });
    }),
  );
}

/** Batches on `streams` Publish streams, each keeping `window` batches unacknowledged, for SECONDS. */
async function grpcStreams(target, size, streams, window = 256) {
  const client = new proto.Ingest(target, grpc.credentials.createInsecure());
  let acked = 0;
  const until = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: streams }, () => new Promise((resolve, reject) => {
      const call = client.Publish();
      let sent = 0;
      let done = 0;
      const pump = () => {
        while (sent - done < window && performance.now() < until) (sent++, call.write({ events: events(size) }));
        if (performance.now() >= until && sent === done) call.end();
      };
      call.on('data', (ack) => ((acked += ack.accepted), done++, pump()));
      call.on('end', resolve).on('error', reject);
      pump();
    })),
  );
  client.close();
  return acked / SECONDS;
}

/** HTTP with `connections` connections, each sending its next request when the last is answered. */
async function http(target, size, connections = 32) {
  const pool = new Pool(target, { connections, pipelining: 1 });
  let acked = 0;
  const until = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: connections * 2 }, async () => {
      while (performance.now() < until) {
        const request = size === 1
          ? { method: 'PUT', path: `/events/${domain()}/delivered` }
          : { method: 'POST', path: '/events', body: events(size).map((e) => `{"domain":"${e.domain}","type":"delivered"}`).join('\n') };
        const response = await pool.request(request);
        await response.body.dump();
        if (response.statusCode < 300) acked += size;
      }
    }),
  );
  await pool.close();
  return acked / SECONDS;
}

/** One batch of one event every `intervalMs` on one stream: P50/P95/P99 from send to ack. */
async function grpcLatency(target, rate) {
  const client = new proto.Ingest(target, grpc.credentials.createInsecure());
  const call = client.Publish();
  const sentAt = [];
  const latencies = [];
  const ended = new Promise((resolve) => call.on('end', resolve));
  call.on('data', (ack) => latencies.push(performance.now() - sentAt[ack.batch - 1]));
  const total = rate * SECONDS;
  const begin = performance.now();
  for (let i = 0; i < total; i++) {
    const due = begin + (i * 1000) / rate;
    while (performance.now() < due) await new Promise((resolve) => setImmediate(resolve));
    sentAt.push(due);
    call.write({ events: events(1) });
  }
  call.end();
  await ended;
  client.close();
  latencies.sort((a, b) => a - b);
  const at = (p) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] * 100) / 100;
  return { rate, count: latencies.length, p50Ms: at(50), p95Ms: at(95), p99Ms: at(99) };
}

const rows = [];
try {
  for (const size of [1, 100, 1000]) {
    const grpcDaemon = await start('serve-grpc', join(work, `grpc-${size}`));
    const one = await grpcStreams(grpcDaemon.url, size, 1);
    const four = await grpcStreams(grpcDaemon.url, size, 4);
    await grpcDaemon.stop();
    const httpDaemon = await start('serve-http', join(work, `http-${size}`));
    const viaHttp = await http(httpDaemon.url, size);
    await httpDaemon.stop();
    rows.push({ size, grpcOneStream: Math.round(one), grpcFourStreams: Math.round(four), http: Math.round(viaHttp) });
    console.error(`batch ${size}: gRPC 1 stream ${Math.round(one)} events/s, 4 streams ${Math.round(four)}; HTTP ${size === 1 ? 'PUT' : 'POST'} ${Math.round(viaHttp)}`);
  }
  const latencyDaemon = await start('serve-grpc', join(work, 'latency'));
  const latency = await grpcLatency(latencyDaemon.url, 2000);
  await latencyDaemon.stop();
  console.error(`latency at ${latency.rate} batches/s on one stream: p50 ${latency.p50Ms} ms, p95 ${latency.p95Ms} ms, p99 ${latency.p99Ms} ms`);

  console.log('\n| batch size | gRPC, one Publish stream | gRPC, 4 streams | HTTP (PUT for 1, POST NDJSON otherwise) | one stream / HTTP |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.size} | ${r.grpcOneStream.toLocaleString('en')} | ${r.grpcFourStreams.toLocaleString('en')} | ${r.http.toLocaleString('en')} | ${(r.grpcOneStream / r.http).toFixed(2)} |`);
  const result = { date: new Date().toISOString(), machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version }, seconds: SECONDS, domains: DOMAINS, rows, latency };
  const out = values.out ?? join(root, 'bench/results', `grpc-${result.date.slice(0, 10)}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.error(`written to ${out}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
