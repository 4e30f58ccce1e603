#!/usr/bin/env node
// Soak of the Kafka pipeline: load on serve-http (a kafka:// store, the kfake test broker with 3
// brokers) while `svc materialize` members are killed with SIGKILL every few seconds and replaced,
// a member is added and another removed (SIGTERM) on the way. `svc loadtest --verify` drives the
// load with an Idempotency-Key on every request and retries, then reads every touched domain back
// through serve-read: lost, extra and indefinite must all be 0.
//
//   npx tsc -p . && node scripts/soak-kafka.mjs [--seconds 90] [--rps 1000] [--kill-every 10] [--partitions 6]
//
// The last fifth of the run has no kills, so that the counts catch up before the verification
// reads them (its settle pauses are a few seconds). Writes bench/results/soak-kafka-<date>.json.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon } from './bench/processes.mjs';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '90' },
    rps: { type: 'string', default: '1000' },
    'kill-every': { type: 'string', default: '10' },
    partitions: { type: 'string', default: '6' },
  },
});
const SECONDS = Number(values.seconds);
const KILL_EVERY = Number(values['kill-every']);
const root = new URL('..', import.meta.url).pathname;
const SVC = join(root, 'bin/svc.js');
const work = mkdtempSync(join(tmpdir(), 'svc-soak-kafka-'));
const brokerBinary = execFileSync('bash', [join(root, 'scripts/kafka/build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
const broker = spawn(brokerBinary, ['-brokers', '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
const brokers = await new Promise((resolve) => broker.stdout.once('data', (chunk) => resolve(chunk.toString().split('\n')[0].trim())));
const store = `kafka://${brokers}/soak`;
let dirs = 0;
const dir = () => join(work, `d${dirs++}`);
const members = [];
const events = { killed: 0, started: 0, added: 0, removed: 0 };

function startMember() {
  const child = spawn(process.execPath, [SVC, 'materialize', '--store', store, '--state', dir(), '--session-timeout', '3s', '--transaction-timeout', '5s'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  events.started++;
  members.push(child);
  return child;
}

const stopMember = async (child, signal) => {
  members.splice(members.indexOf(child), 1);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
};

let ingest;
let reader;
try {
  execFileSync(process.execPath, [SVC, 'setup', '--store', store, '--partitions', values.partitions], { stdio: 'ignore' });
  ingest = await startDaemon([SVC, 'serve-http', '--store', store, '--port', '0', '--log-level', 'warn']);
  reader = await startDaemon([SVC, 'serve-read', '--store', store, '--state', dir(), '--cache-size', '0', '--port', '0', '--log-level', 'warn']);
  startMember();
  startMember();
  const report = join(work, 'loadtest.json');
  const load = spawn(
    process.execPath,
    [SVC, 'loadtest', '--target', ingest.url, '--rps', values.rps, '--duration', `${SECONDS}s`, '--domains', '20000', '--idempotency-keys', '--retries', '6',
      '--verify', '--verify-url', reader.url, '--json', report],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const finished = new Promise((resolve) => load.once('exit', resolve));
  const started = Date.now();
  let round = 0;
  while (Date.now() - started < SECONDS * 800) {
    await sleep(KILL_EVERY * 1000);
    if (Date.now() - started >= SECONDS * 800) break;
    round++;
    const victim = members[Math.floor(Math.random() * members.length)];
    await stopMember(victim, 'SIGKILL');
    events.killed++;
    startMember();
    if (round === 2) {
      startMember();
      events.added++;
    }
    if (round === 4 && members.length > 2) {
      await stopMember(members[0], 'SIGTERM');
      events.removed++;
    }
    console.error(`soak: ${Math.round((Date.now() - started) / 1000)} s, members ${members.length}, ${JSON.stringify(events)}`);
  }
  const code = await finished;
  const { verify, requests } = JSON.parse(readFileSync(report, 'utf8'));
  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    settings: { seconds: SECONDS, rps: Number(values.rps), killEvery: KILL_EVERY, partitions: Number(values.partitions), brokers: 3 },
    members: events,
    loadtestExit: code,
    requests,
    verify,
  };
  const out = join(root, 'bench/results', `soak-kafka-${result.date.slice(0, 10)}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify({ members: events, loadtestExit: code, verify: { acknowledged: verify.acknowledged, counted: verify.counted, lost: verify.lost, extra: verify.extra, indefinite: verify.indefinite, unreadable: verify.unreadable } }));
  console.error(`wrote ${out}`);
} finally {
  for (const child of [...members]) await stopMember(child, 'SIGKILL');
  await ingest?.stop();
  await reader?.stop();
  broker.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
