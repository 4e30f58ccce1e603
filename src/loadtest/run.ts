import { Pool } from 'undici';
import { createWorkload, type Workload } from '../workload/workload.js';
import { TargetUnreachableError } from './errors.js';
import type { GrpcClients } from './grpc-generator.js';
import { Generator } from './generator.js';
import { Ledger } from './ledger.js';
import { resolveLoadtestOptions, type LoadtestOptions } from './options.js';
import { Pacer } from './pacer.js';
import { warningsFor, type LatencyPoint, type LoadtestReport } from './report.js';
import { Stats } from './stats.js';
import { verifyCounts } from './verify.js';

export interface LoadtestProgress {
  phase: 'warmup' | 'run' | 'drain' | 'verify';
  /** Since the first request was due. */
  elapsedSeconds: number;
  /** Since the start, warm-up included. */
  sent: number;
  ok: number;
  errors: number;
  /** Requests sent per second over the last interval. */
  rate: number;
  /** Corrected p95 of the answers received in the last interval, in ms. */
  p95Ms: number;
  /** Requests waiting for a free connection slot now. */
  queued: number;
}

export interface LoadtestHooks {
  /** Called about once per `progressIntervalMs` while requests are sent, and once before verifying. */
  onProgress?: (progress: LoadtestProgress) => void;
  progressIntervalMs?: number;
  /** Aborting stops sending, waits for the answers in flight and reports what was measured. */
  signal?: AbortSignal;
}

// The first request is due a little after setup, so that it is not late by construction.
const START_DELAY_MS = 5;
// A request that waited for a slot longer than the timeout would have failed anyway, so the wait
// queue holds a timeout's worth of requests (and at least MIN_QUEUE).
const MIN_QUEUE = 1024;
const MAX_QUEUE = 10_000_000;
const VERIFY_CONNECTIONS = { min: 8, max: 64 };

interface Run {
  options: Readonly<LoadtestOptions>;
  /** HTTP: the connections to the target. */
  pool: Pool | undefined;
  /** gRPC: the clients, and the module that drives them (loaded only for --protocol grpc). */
  grpc: { clients: GrpcClients; module: typeof import('./grpc-generator.js') } | undefined;
  workload: Workload;
  stats: Stats;
  ledger: Ledger | undefined;
}

interface Window {
  start: number;
  measureStart: number;
  measureEnd: number;
  /** When the run was aborted, if it was. */
  abortedAt: number | undefined;
}

/**
 * Sends requests at a constant rate through the warm-up and the duration, then, with `verify`,
 * reads every touched domain back. Never prints or exits: progress goes to `onProgress`, the
 * results into the report. Throws ValidationError for bad options and TargetUnreachableError when
 * the target does not answer at all.
 */
export async function runLoadtest(input: Partial<LoadtestOptions>, hooks: LoadtestHooks = {}): Promise<LoadtestReport> {
  const options = resolveLoadtestOptions(input);
  const run: Run = {
    options,
    pool: undefined,
    grpc: undefined,
    workload: createWorkload({ ...options, repeat: true }),
    stats: new Stats(options.lateToleranceMs),
    ledger: options.verify ? new Ledger() : undefined,
  };
  let window: Window;
  try {
    if (options.protocol === 'grpc') {
      const module = await import('./grpc-generator.js');
      run.grpc = { clients: module.grpcClients(options.target), module };
      await probeGrpc(run.grpc.clients, options);
    } else {
      run.pool = new Pool(options.target, {
        connections: options.connections,
        pipelining: options.pipelining,
        // The generator times requests out itself (see Deadlines); 0 turns undici's timers off.
        headersTimeout: 0,
        bodyTimeout: 0,
        connectTimeout: options.timeoutMs,
      });
      await probe(run.pool, options);
    }
    window = await sendAll(run, hooks);
  } finally {
    await run.pool?.close();
    run.grpc?.clients.close();
  }
  const report = summarize(run, window);
  if (run.ledger) {
    hooks.onProgress?.({ ...progressOf(run, 0), phase: 'verify', elapsedSeconds: (performance.now() - window.start) / 1000 });
    const reader = run.grpc?.module.grpcClients(options.verifyUrl);
    try {
      report.verify = await verifyCounts(run.ledger, {
        url: options.verifyUrl,
        connections: Math.min(VERIFY_CONNECTIONS.max, Math.max(VERIFY_CONNECTIONS.min, options.connections)),
        timeoutMs: options.timeoutMs,
        token: options.readToken,
        name: (index) => run.workload.name(index),
        read: reader && run.grpc!.module.grpcReadCounts(reader, options.readToken, options.timeoutMs),
      });
    } finally {
      reader?.close();
    }
  }
  return report;
}

/** gRPC: the channel must connect before the clock starts. */
async function probeGrpc(clients: GrpcClients, { target, timeoutMs }: Readonly<LoadtestOptions>): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => clients.ingest.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve())));
  } catch (error) {
    throw new TargetUnreachableError(target, error);
  }
}

/** Any HTTP answer will do: it only proves that something listens before the clock starts. */
async function probe(pool: Pool, { target, timeoutMs }: Readonly<LoadtestOptions>): Promise<void> {
  try {
    const response = await pool.request({ method: 'GET', path: '/healthz', headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    await response.body.dump();
  } catch (error) {
    throw new TargetUnreachableError(target, error);
  }
}

async function sendAll(run: Run, hooks: LoadtestHooks): Promise<Window> {
  const { options } = run;
  const start = performance.now() + START_DELAY_MS;
  const measureStart = start + options.warmupMs;
  const window: Window = { start, measureStart, measureEnd: measureStart + options.durationMs, abortedAt: undefined };
  run.stats.measureStart = measureStart;
  run.stats.timeline.start = start;
  const onFree = () => pacer.release();
  const generator = run.grpc
    ? new run.grpc.module.GrpcGenerator({ ...run, clients: run.grpc.clients, onFree })
    : new Generator({ ...run, pool: run.pool!, onFree });
  const pacer = new Pacer(generator, {
    startMs: start,
    intervalMs: 1000 / options.rps,
    total: Math.round(((options.warmupMs + options.durationMs) * options.rps) / 1000),
    maxQueue: Math.min(MAX_QUEUE, Math.max(MIN_QUEUE, Math.ceil((options.timeoutMs * options.rps) / 1000))),
    drainMs: options.timeoutMs,
  });
  if (hooks.signal?.aborted) return { ...window, abortedAt: start };
  const onAbort = () => {
    window.abortedAt = performance.now();
    pacer.stop();
  };
  hooks.signal?.addEventListener('abort', onAbort, { once: true });
  const intervalMs = hooks.progressIntervalMs ?? 1000;
  let last = performance.now();
  const progress = setInterval(() => {
    const now = performance.now();
    const phase = now < measureStart ? 'warmup' : now < window.measureEnd ? 'run' : 'drain';
    hooks.onProgress?.({ ...progressOf(run, pacer.queued, (now - last) / 1000), phase, elapsedSeconds: (now - start) / 1000 });
    last = now;
  }, intervalMs);
  try {
    await pacer.run();
    await generator.idle();
  } finally {
    generator.close();
    clearInterval(progress);
    hooks.signal?.removeEventListener('abort', onAbort);
  }
  return window;
}

function progressOf(run: Run, queued: number, seconds = 0): Omit<LoadtestProgress, 'phase' | 'elapsedSeconds'> {
  const { stats } = run;
  const interval = stats.takeInterval();
  return {
    sent: stats.totalSent,
    ok: stats.totalOk,
    errors: stats.totalErrors,
    rate: seconds > 0 ? Math.round(interval.sent / seconds) : 0,
    p95Ms: interval.p95Ms,
    queued,
  };
}

function summarize({ options, stats }: Run, window: Window): LoadtestReport {
  const measuredMs =
    window.abortedAt !== undefined
      ? Math.max(0, Math.min(window.abortedAt, window.measureEnd) - window.measureStart)
      : // Sends that fell behind stretch the phase: the achieved rate must show it.
        Math.max(options.durationMs, stats.lastSendAt - window.measureStart);
  const seconds = measuredMs / 1000;
  const perSecond = (n: number) => (seconds > 0 ? round(n / seconds, 2) : 0);
  const failures = [...stats.failures.values()].reduce((a, b) => a + b, 0);
  const scheduled = stats.sent + stats.dropped;
  const report = {
    target: options.target,
    protocol: options.protocol,
    mode: options.mode,
    batchSize: options.mode === 'event' ? 1 : options.batchSize,
    idempotencyKeys: options.idempotencyKeys,
    maxRetries: options.retries,
    readRatio: options.readRatio,
    distribution: options.distribution,
    domains: options.domains,
    seed: options.seed,
    connections: options.connections,
    pipelining: options.pipelining,
    requestedRps: options.rps,
    achievedRps: perSecond(stats.sendsSinceStart),
    durationSeconds: round(seconds, 3),
    warmupSeconds: options.warmupMs / 1000,
    scheduled,
    sent: stats.sent,
    ok: stats.ok,
    errors: stats.errors,
    errorRate: scheduled > 0 ? round((stats.errors + stats.dropped) / scheduled, 6) : 0,
    statusCodes: Object.fromEntries([...stats.statusCodes].sort(([a], [b]) => a - b)),
    errorsByKind: { status: stats.errors - failures, ...Object.fromEntries(stats.failures) },
    latencyMs: stats.corrected.percentiles(),
    uncorrectedLatencyMs: stats.uncorrected.percentiles(),
    lateToleranceMs: options.lateToleranceMs,
    late: stats.late,
    generatorLate: stats.generatorLate,
    retries: stats.retries,
    queued: stats.queued,
    dropped: stats.dropped,
    events: { sent: stats.eventsSent, acknowledged: stats.eventsAcknowledged, perSecond: perSecond(stats.eventsSent) },
    reads: stats.reads,
    aborted: window.abortedAt !== undefined,
    timeline: stats.timeline.seconds(),
    measureStartSecond: round((window.measureStart - window.start) / 1000, 3),
    latencyCurve: latencyCurve(stats),
  };
  return { ...report, warnings: warningsFor(report) };
}

/** The corrected and uncorrected latency at percentiles spread on a log scale of 1 / (1 − p), up to 99.999 %. */
function latencyCurve({ corrected, uncorrected }: Stats): LatencyPoint[] {
  const points: LatencyPoint[] = [];
  for (let step = 0; step <= 50; step++) {
    const percentile = round(100 * (1 - 10 ** (-step / 10)), 4);
    points.push({ percentile, correctedMs: corrected.at(percentile), uncorrectedMs: uncorrected.at(percentile) });
  }
  return points;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
