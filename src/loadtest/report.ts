import type { Distribution } from '../workload/workload.js';
import type { Percentiles } from './histogram.js';
import type { Mode, Protocol } from './options.js';
import type { TimelineSecond } from './timeline.js';
import type { VerifyReport } from './verify.js';

/** Everything a run measured; `--json` writes it as is. */
export interface LoadtestReport {
  target: string;
  protocol: Protocol;
  mode: Mode;
  /** Events per request: 1 in mode event. */
  batchSize: number;
  /** --idempotency-keys: every event request carried a key of its own. */
  idempotencyKeys: boolean;
  /** --retries: how many times a failed event request could be sent again. */
  maxRetries: number;
  readRatio: number;
  distribution: Distribution;
  domains: number;
  seed: number;
  connections: number;
  pipelining: number;
  requestedRps: number;
  /** Requests sent per second from the end of the warm-up to the last send. */
  achievedRps: number;
  /** The measured phase: the requested duration, longer if sends fell behind, shorter if aborted. */
  durationSeconds: number;
  warmupSeconds: number;
  /** Requests due in the measured phase. */
  scheduled: number;
  sent: number;
  /** Requests answered with a 2xx. */
  ok: number;
  /** Requests answered with another status or not answered at all. */
  errors: number;
  /** (errors + dropped) / (sent + dropped). */
  errorRate: number;
  statusCodes: Record<string, number>;
  /** `status` for non-2xx answers, then the transport failures: timeout, connect, socket, other. */
  errorsByKind: Record<string, number>;
  /** From each request's due time to its answer: includes any wait for the generator or a connection. */
  latencyMs: Percentiles;
  /** From the moment the request was written to its answer, as closed-loop tools measure. */
  uncorrectedLatencyMs: Percentiles;
  lateToleranceMs: number;
  /** Requests sent more than lateToleranceMs after their due time. */
  late: number;
  /** Late requests that had a free connection slot: the generator itself fell behind. */
  generatorLate: number;
  /** Requests that had to wait for a free connection slot. */
  queued: number;
  /** Requests sent again after a failure (--retries); each request's answer is its last attempt's. */
  retries: number;
  /** Requests due but never sent: the wait queue was full, or they still waited when the run ended. */
  dropped: number;
  events: { sent: number; acknowledged: number; perSecond: number };
  reads: number;
  aborted: boolean;
  /** Every second from the first due request, warm-up included (see Timeline). */
  timeline: TimelineSecond[];
  /** Where the measured phase starts on the timeline, in seconds. */
  measureStartSecond: number;
  /** The measured phase's latency distribution, as HdrHistogram's percentile plot draws it. */
  latencyCurve: LatencyPoint[];
  /** What makes the figures less trustworthy, in words. */
  warnings: string[];
  verify?: VerifyReport;
}

export interface LatencyPoint {
  percentile: number;
  correctedMs: number;
  uncorrectedMs: number;
}

/** When at least this share of requests was late or dropped, the report says so. */
export const WARNING_SHARE = 0.01;

export function warningsFor(report: Omit<LoadtestReport, 'warnings'>): string[] {
  const warnings: string[] = [];
  const share = (n: number) => (report.scheduled === 0 ? 0 : n / report.scheduled);
  const percent = (n: number) => `${(share(n) * 100).toFixed(1)}%`;
  if (share(report.dropped) >= WARNING_SHARE) {
    warnings.push(
      `${percent(report.dropped)} of the requests were dropped (never sent): the target did not keep up with ` +
        `${report.requestedRps}/s on ${report.connections}×${report.pipelining} connection slots`,
    );
  }
  if (share(report.queued) >= WARNING_SHARE) {
    warnings.push(
      `${percent(report.queued)} of the requests waited for a free connection slot: the target was slower than the ` +
        'requested rate, or more --connections/--pipelining are needed; their wait is in latencyMs',
    );
  }
  if (share(report.generatorLate) >= WARNING_SHARE) {
    warnings.push(
      `${percent(report.generatorLate)} of the requests left more than ${report.lateToleranceMs} ms late with a slot free: ` +
        'the generator itself could not keep up (CPU)',
    );
  }
  return warnings;
}
