#!/usr/bin/env node
// Soak: minutes of load on serve-http (or serve-grpc) while it is killed with SIGKILL (or stopped with SIGTERM)
// every few seconds and restarted on the same store and port. `svc loadtest --verify` drives the
// load and, at the end, reads every touched domain back: events the service acknowledged and did
// not count are `lost`, which must be 0 however many times it died. With --idempotency-keys the
// load test sends a key with every request and retries unanswered ones with it (--retries, 6 by
// default then): every event is then acknowledged in the end and counted once, so `indefinite`
// and `extra` must be 0 too.
//
//   npx tsc -p . && node scripts/soak.mjs [--minutes 3] [--rps 2000] [--kill-every 10] [--signal SIGKILL]
//       [--workers 1] [--store <dir|mongodb://…>] [--mode event|batch|stream] [--idempotency-keys [--retries 6]]
//       [--protocol http|grpc]
//
// Writes bench/results/soak-<date>-<signal>-<workers>w[-keys][-grpc].json with events sent, acknowledged, counted, lost,
// extra and the restarts survived.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SVC = join(ROOT, 'bin/svc.js');

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    rps: { type: 'string', default: '2000' },
    'kill-every': { type: 'string', default: '10' },
    signal: { type: 'string', default: 'SIGKILL' },
    workers: { type: 'string', default: '1' },
    store: { type: 'string' },
    mode: { type: 'string', default: 'event' },
    'idempotency-keys': { type: 'boolean', default: false },
    retries: { type: 'string' },
    protocol: { type: 'string', default: 'http' },
  },
});
const grpc = values.protocol === 'grpc';
const daemon = grpc ? 'serve-grpc' : 'serve-http';
const keyed = values['idempotency-keys'];
const retries = values.retries ?? (keyed ? '6' : '0');
const work = mkdtempSync(join(tmpdir(), 'svc-soak-'));
const store = values.store ?? join(work, 'store');
const port = await freePort();
const target = grpc ? `127.0.0.1:${port}` : `http://127.0.0.1:${port}`;

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the daemon and resolves once it listens; retries while the port is still held by the dead one. */
async function startServer() {
  for (let attempt = 0; ; attempt++) {
    const child = spawn(process.execPath, [SVC, daemon, '--store', store, '--port', String(port), '--workers', values.workers], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const listening = await new Promise((resolve) => {
      child.once('exit', () => resolve(false));
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line.includes('"msg":"listening"')) resolve(true);
      });
    });
    if (listening) return child;
    if (attempt === 20) throw new Error(`${daemon} does not start again`);
    await sleep(250);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function stopped(child) {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));
}

let server = await startServer();
const durationSeconds = Math.round(Number(values.minutes) * 60);
const report = join(work, 'report.json');
const loadtest = spawn(
  process.execPath,
  [SVC, 'loadtest', '--protocol', values.protocol, '--target', target, '--rps', values.rps, '--duration', `${durationSeconds}s`, '--timeout', '2s', '--mode', values.mode,
    '--connections', '32', '--domains', '100000', '--distribution', 'zipf', '--verify', '--json', report,
    '--retries', retries, ...(keyed ? ['--idempotency-keys'] : [])],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
const loadtestDone = new Promise((resolve) => loadtest.once('exit', resolve));

// Kill and restart while the load runs; stop in time for the service to be up for verification.
let restarts = 0;
const endAt = Date.now() + durationSeconds * 1000 - 3000;
while (Date.now() + Number(values['kill-every']) * 1000 < endAt) {
  await sleep(Number(values['kill-every']) * 1000);
  server.kill(values.signal);
  await stopped(server);
  server = await startServer();
  restarts++;
  process.stderr.write(`soak: restart ${restarts} (${values.signal})\n`);
}
const code = await loadtestDone;
server.kill('SIGTERM');
await stopped(server);

const result = JSON.parse(readFileSync(report, 'utf8'));
const summary = {
  date: new Date().toISOString(),
  command: `node scripts/soak.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
  daemon,
  store: values.store ? 'mongodb' : 'embedded (LMDB)',
  signal: values.signal,
  workers: Number(values.workers),
  idempotencyKeys: keyed,
  retries: Number(retries),
  minutes: Number(values.minutes),
  restarts,
  requestedRps: result.requestedRps,
  requests: { sent: result.sent, ok: result.ok, errors: result.errors, retries: result.retries, statusCodes: result.statusCodes, errorsByKind: result.errorsByKind },
  events: {
    sent: result.events.sent,
    acknowledged: result.verify.acknowledged,
    indefinite: result.verify.indefinite,
    counted: result.verify.counted,
    lost: result.verify.lost,
    extra: result.verify.extra,
    unreadableDomains: result.verify.unreadable,
  },
  loadtestExitCode: code,
};
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
const out = join(ROOT, `bench/results/soak-${summary.date.slice(0, 10)}-${values.signal.toLowerCase()}-${values.workers}w${keyed ? '-keys' : ''}${grpc ? '-grpc' : ''}.json`);
writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
console.log(JSON.stringify(summary.events), `restarts ${restarts}; written to ${out}`);
rmSync(work, { recursive: true, force: true });
if (summary.events.lost !== 0 || summary.events.unreadableDomains !== 0) process.exitCode = 1;
// With keys and retries, every event must end acknowledged and counted exactly once.
if (keyed && (summary.events.extra !== 0 || summary.events.indefinite !== 0)) process.exitCode = 1;
