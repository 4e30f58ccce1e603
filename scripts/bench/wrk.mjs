// wrk, the C load generator, for the throughput figures of `npm run bench`: a JavaScript generator
// on the same two cores uses more CPU than the server it drives (the bare server reached 20k
// requests/s under `svc loadtest` and 42k under wrk). Installed from Debian when missing.
import { $ } from 'zx';

const SCRIPT = new URL('./wrk/svc.lua', import.meta.url).pathname;

export async function ensureWrk() {
  if ((await $({ nothrow: true, quiet: true })`command -v wrk`).exitCode === 0) return;
  console.error('bench: installing wrk (Debian package)');
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  await $({ quiet: true })`${sudo} apt-get install -y wrk`.catch(async () => {
    await $({ quiet: true })`${sudo} apt-get update`;
    await $({ quiet: true })`${sudo} apt-get install -y wrk`;
  });
}

/**
 * One wrk run against `url`: requests/s, answers that were not 2xx/3xx, and latency percentiles in
 * ms. `load` says what to send (see wrk/svc.lua): { paths }, { reads }, { bodies } or { domains }, and
 * `keys: true` an Idempotency-Key with each.
 */
export async function runWrk(url, { seconds, connections, load = {}, threads = 1, cpus }) {
  const env = { ...process.env };
  if (load.paths) env.PATHS = load.paths;
  if (load.reads) env.READS = load.reads;
  if (load.bodies) env.BODIES = load.bodies;
  if (load.domains) env.DOMAINS = String(load.domains);
  if (load.paceMs) env.PACE_MS = String(load.paceMs);
  if (load.keys) env.KEYS = '1';
  // `cpus`: run wrk on these cores only (taskset), to keep a core for something else.
  const pinned = cpus === undefined ? [] : ['taskset', '-c', cpus];
  const run = await $({ env, quiet: true })`${pinned} wrk -t${threads} -c${connections} -d${seconds}s --timeout 10s -s ${SCRIPT} ${url}`;
  const line = run.stdout.split('\n').find((l) => l.startsWith('{"wrk"'));
  if (!line) throw new Error(`wrk printed no summary:\n${run.stdout}\n${run.stderr}`);
  const summary = JSON.parse(line);
  const ok = summary.requests - summary.non2xx - summary.socketErrors;
  return {
    connections,
    seconds: summary.seconds,
    requests: summary.requests,
    rps: summary.requests / summary.seconds,
    okRps: ok / summary.seconds,
    non2xx: summary.non2xx,
    socketErrors: summary.socketErrors,
    p50Ms: summary.p50 / 1000,
    p95Ms: summary.p95 / 1000,
    p99Ms: summary.p99 / 1000,
    maxMs: summary.max / 1000,
  };
}
