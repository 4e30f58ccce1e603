// Runs `svc loadtest` (the instrument of every HTTP figure) and finds the highest rate a target
// sustains: open model, stepped up until a step fails, then bisected.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { $ } from 'zx';
import { findMaxRate } from '../../dist/loadtest/find-max.js';

const svc = new URL('../../bin/svc.js', import.meta.url).pathname;

/** What a step must meet to count as sustained: the P95 bound, no error, nothing dropped. */
export const SUSTAINED = { maxP95Ms: 200, maxErrors: 0 };

/**
 * One `svc loadtest` run against `daemon` (from startDaemon) at `rps`, with the server's CPU
 * seconds and peak RSS over the run. `args` are further loadtest options.
 */
export async function loadStep(daemon, rps, { seconds, warmup, args = [] }) {
  const dir = mkdtempSync(join(tmpdir(), 'svc-bench-load-'));
  try {
    const cpuBefore = daemon.cpuSeconds();
    daemon.resetPeakRss();
    const run = await $({ nothrow: true, quiet: true })`${process.execPath} ${svc} loadtest --target ${daemon.url} --rps ${rps} --duration ${seconds}s --warmup ${warmup}s --json ${join(dir, 'report.json')} ${args}`;
    if (run.exitCode === 2) throw new Error(`svc loadtest refused its options: ${run.stderr}`);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    const requests = report.sent;
    const failed = report.errors + report.dropped;
    const sustained = failed <= SUSTAINED.maxErrors && report.latencyMs.p95 < SUSTAINED.maxP95Ms;
    return {
      rps,
      achievedRps: report.achievedRps,
      p50Ms: report.latencyMs.p50,
      p95Ms: report.latencyMs.p95,
      p99Ms: report.latencyMs.p99,
      uncorrectedP95Ms: report.uncorrectedLatencyMs.p95,
      errors: report.errors,
      dropped: report.dropped,
      statusCodes: report.statusCodes,
      // Over warm-up and measured time alike, as the loadtest sent during both.
      serverCpuMicrosPerRequest: ((daemon.cpuSeconds() - cpuBefore) * 1e6) / (requests * (1 + warmup / seconds)),
      serverPeakRss: daemon.peakRss(),
      sustained,
      passed: sustained,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The highest sustained rate, found by the same search as `svc loadtest --find-max` (see
 * src/loadtest/find-max.ts), with each step's server CPU and memory. Every step is kept, so a
 * plot of latency against rate comes for free.
 */
export async function findSustainedRate(daemon, { start, factor = 1.5, refine = 3, onStep = () => {}, ...step }) {
  return findMaxRate(
    async (rps) => {
      const result = await loadStep(daemon, rps, step);
      onStep(result);
      // Let a failed step's backlog drain before the next one.
      await new Promise((resolve) => setTimeout(resolve, result.passed ? 500 : 3000));
      return result;
    },
    { start, factor, refine },
  );
}
