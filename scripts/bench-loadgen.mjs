#!/usr/bin/env node
// How fast is the `svc loadtest` generator itself? Against a bare node:http server answering 204,
// run autocannon with N connections for a while, then `svc loadtest` with the same connections at
// twice the rate autocannon reached (an open model never asks for less than it wants to measure:
// the excess waits in its queue or is dropped), and compare the rates actually sent. Target: >= 0.8.
// Each tool first runs a 2 s warm-up of its own (autocannon --warmup, svc --warmup) that is not
// measured, so neither pays for its JIT warming up.
//
//   npx tsc -p . && node scripts/bench-loadgen.mjs [--connections 10] [--duration 10] [--rounds 5]
//
// Each of the server, autocannon and svc loadtest runs in its own process; the two tools take
// turns, starting with the other one each round, and the verdict is on the median ratio, because
// on a 2-core machine anything else running skews a single round. The result is written to
// bench/results/loadgen-<date>.json.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SVC = join(ROOT, 'bin/svc.js');
const AUTOCANNON = join(ROOT, 'node_modules/autocannon/autocannon.js');
const TARGET_RATIO = 0.8;
const WARMUP_SECONDS = 2;

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
  },
});
const connections = Number(values.connections);
const duration = Number(values.duration);
const rounds = Number(values.rounds);

/** Runs a command to completion; rejects on a non-zero exit. */
function run(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${args.join(' ')} exited ${code}:\n${stderr}`))));
  });
}

/** The bare server: no routing, no body, the cheapest answer node:http can give. */
function startServer() {
  const source = `
    const server = require('node:http').createServer((req, res) => { req.resume(); res.writeHead(204).end(); });
    server.keepAliveTimeout = 60_000;
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const child = spawn(process.execPath, ['-e', source], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (chunk) => resolve({ url: `http://127.0.0.1:${Number(String(chunk).trim())}`, child }));
  });
}

async function autocannon(url, seconds) {
  const c = String(connections);
  const warmup = ['--warmup', '[', '-c', c, '-d', String(WARMUP_SECONDS), ']'];
  const output = await run([AUTOCANNON, '--json', '--connections', c, '--duration', String(seconds), ...warmup, url]);
  // With --warmup, autocannon prints the warm-up's result on a line of its own first.
  const result = JSON.parse(output.trim().split('\n').at(-1));
  return {
    rps: Math.round(result.requests.total / result.duration),
    requests: result.requests.total,
    seconds: result.duration,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

async function loadtest(url, rps, seconds) {
  const file = join(tmpdir(), `bench-loadgen-${process.pid}.json`);
  const args = [SVC, 'loadtest', '--target', url, '--connections', String(connections), '--rps', String(rps)];
  // A short timeout bounds the queue (a timeout's worth of requests) and the drain at the end.
  await run([...args, '--duration', `${seconds}s`, '--warmup', `${WARMUP_SECONDS}s`, '--timeout', '2s', '--json', file]);
  const report = JSON.parse(readFileSync(file, 'utf8'));
  rmSync(file);
  return {
    requestedRps: report.requestedRps,
    rps: Math.round(report.achievedRps),
    requests: report.sent,
    seconds: report.durationSeconds,
    errors: report.errors,
    dropped: report.dropped,
  };
}

const server = await startServer();
try {
  const results = [];
  let previous = 0;
  for (let round = 1; round <= rounds; round++) {
    let ac, lt;
    if (round % 2 === 1) {
      ac = await autocannon(server.url, duration);
      lt = await loadtest(server.url, ac.rps * 2, duration);
    } else {
      // Ask for twice what autocannon reached in the previous round.
      lt = await loadtest(server.url, previous * 2, duration);
      ac = await autocannon(server.url, duration);
    }
    previous = ac.rps;
    const ratio = Math.round((lt.rps / ac.rps) * 1000) / 1000;
    results.push({ round, first: round % 2 === 1 ? 'autocannon' : 'svc loadtest', autocannon: ac, loadtest: lt, ratio });
    console.log(`round ${round}: autocannon ${ac.rps} req/s, svc loadtest ${lt.rps} req/s (asked ${lt.requestedRps}), ratio ${ratio}`);
  }
  const ratios = results.map((r) => r.ratio).sort((a, b) => a - b);
  const ratio = ratios[Math.floor(ratios.length / 2)];
  const date = new Date().toISOString().slice(0, 10);
  const summary = {
    date,
    scenario: `bare node:http server answering 204, ${connections} connections, pipelining 1, ${WARMUP_SECONDS} s warm-up then ${duration} s per tool`,
    command: `node scripts/bench-loadgen.mjs --connections ${connections} --duration ${duration} --rounds ${rounds}`,
    machine: { node: process.version, cpus: cpus().length, model: cpus()[0]?.model },
    results,
    ratio,
    ratioRange: [ratios[0], ratios.at(-1)],
    target: TARGET_RATIO,
    passed: ratio >= TARGET_RATIO,
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const out = join(ROOT, `bench/results/loadgen-${date}.json`);
  writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
  console.log(
    `median ratio ${ratio} (range ${ratios[0]}–${ratios.at(-1)}, target >= ${TARGET_RATIO}): ${summary.passed ? 'ok' : 'BELOW TARGET'}; written to ${out}`,
  );
  if (!summary.passed) process.exitCode = 1;
} finally {
  server.child.kill();
}
