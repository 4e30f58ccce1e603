#!/usr/bin/env node
// Flood: far more than the store can absorb, to show that memory stays bounded and the service
// recovers. serve-http runs with a slow group commit (--flush-ms), so events pile up to
// --max-pending and the rest are refused with 503. Three phases, the RSS of serve-http sampled
// from /proc every 100 ms:
//   1. single-event PUTs from many connections;
//   2. NDJSON batches (1,000 lines each) from the same connections;
//   3. large bodies (--max-body each, many at once), which --max-body-memory must bound;
// then a pause and 200 more PUTs, which must all be 204.
//
//   npx tsc -p . && node scripts/flood-memory.mjs [--seconds 10] [--connections 256] [--max-pending 100]
//       [--flush-ms 200] [--max-body 4194304] [--max-body-memory 67108864]
//
// Prints one JSON object: RSS (MB) idle, peak per phase and after, statuses per phase, recovered.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const SVC = fileURLToPath(new URL('../bin/svc.js', import.meta.url));
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '256' },
    'max-pending': { type: 'string', default: '100' },
    'flush-ms': { type: 'string', default: '200' },
    'max-body': { type: 'string', default: String(4 * 1024 * 1024) },
    'max-body-memory': { type: 'string', default: String(64 * 1024 * 1024) },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const maxBody = Number(values['max-body']);

const store = mkdtempSync(join(tmpdir(), 'svc-flood-'));
const child = spawn(
  process.execPath,
  [SVC, 'serve-http', '--port', '0', '--store', store, '--max-pending', values['max-pending'], '--flush-ms', values['flush-ms']]
    .concat(['--max-body', values['max-body'], '--max-body-memory', values['max-body-memory']]),
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const url = await new Promise((resolve, reject) => {
  child.once('exit', (code) => reject(new Error(`serve-http exited with ${code}`)));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const entry = JSON.parse(line);
    if (entry.msg === 'listening') resolve(entry.url);
  });
});

const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, rssMb())), 100);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends `request()` from every connection until `ms` have passed; returns the count of each status (0: network error). */
async function flood(ms, request) {
  const pool = new Pool(url, { connections, pipelining: 1 });
  const statuses = {};
  const until = Date.now() + ms;
  let n = 0;
  const worker = async () => {
    while (Date.now() < until) {
      let status = 0;
      try {
        const res = await pool.request(request(n++));
        await res.body.dump();
        status = res.statusCode;
      } catch {
        // counted as 0
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  await pool.close();
  return statuses;
}

async function phase(name, request) {
  peak = 0;
  const statuses = await flood(seconds * 1000, request);
  const result = { phase: name, statuses, peakRssMb: Math.round(peak) };
  await sleep(1000);
  return result;
}

const line = (i) => `{"domain":"d${i % 50_000}.flood.example","type":"delivered"}\n`;
const batchOf = (lines, offset) => Array.from({ length: lines }, (_, i) => line(offset + i)).join('');
const bigBody = batchOf(Math.floor(maxBody / line(99_999).length), 0);

await sleep(1000);
const idleRssMb = Math.round(rssMb());
const phases = [
  await phase('PUT', (i) => ({ method: 'PUT', path: `/events/d${i % 50_000}.flood.example/delivered` })),
  await phase('POST 1,000 lines', (i) => ({ method: 'POST', path: '/events', body: batchOf(1000, i * 1000) })),
  await phase(`POST ${(Buffer.byteLength(bigBody) / 1048576).toFixed(1)} MB`, () => ({ method: 'POST', path: '/events', body: bigBody })),
];
await sleep(2000);
const afterRssMb = Math.round(rssMb());
clearInterval(sampler);
const pool = new Pool(url, { connections: 8 });
const recoveredStatuses = await Promise.all(
  Array.from({ length: 200 }, async (_, i) => {
    const res = await pool.request({ method: 'PUT', path: `/events/after-${i}.flood.example/delivered` });
    await res.body.dump();
    return res.statusCode;
  }),
);
await pool.close();
child.kill('SIGTERM');
await new Promise((resolve) => child.once('exit', resolve));
rmSync(store, { recursive: true, force: true });

console.log(
  JSON.stringify(
    {
      node: process.version,
      options: values,
      idleRssMb,
      phases,
      afterRssMb,
      recovered: recoveredStatuses.every((s) => s === 204),
    },
    null,
    2,
  ),
);
