import { LatencyHistogram } from './histogram.js';
import { Timeline } from './timeline.js';

/** Why a request got no HTTP answer. */
export type FailureKind = 'timeout' | 'connect' | 'socket' | 'other';

/** What one progress interval saw, whatever the phase. */
export interface IntervalStats {
  sent: number;
  ok: number;
  errors: number;
  /** Corrected p95 of the answers received in the interval, in ms. */
  p95Ms: number;
}

/**
 * Counters and latency histograms. Only requests due after the warm-up (`measureStart`) count
 * in the results; the totals and interval figures cover everything, so progress shows the
 * warm-up too. Times are performance.now() milliseconds.
 */
export class Stats {
  /** Completion − due time: what a user of the service would have waited. */
  readonly corrected = new LatencyHistogram();
  /** Completion − actual send: what a closed-loop tool would report. */
  readonly uncorrected = new LatencyHistogram();
  readonly statusCodes = new Map<number, number>();
  readonly failures = new Map<FailureKind, number>();
  /** Every second of the run, warm-up included, for the HTML report. */
  readonly timeline = new Timeline();
  measureStart = Infinity;
  sent = 0;
  ok = 0;
  /** Requests answered with a non-2xx status or not answered at all. */
  errors = 0;
  late = 0;
  /** Late although a slot was free: only the generator's own slowness delayed them. */
  generatorLate = 0;
  queued = 0;
  dropped = 0;
  eventsSent = 0;
  eventsAcknowledged = 0;
  /** Requests sent again after a failure (--retries): not in `sent`, whose answers are the last attempt's. */
  retries = 0;
  reads = 0;
  /**
   * Sends since measureStart, whenever their request was due: the achieved rate. A saturated run
   * still sends warm-up requests from its queue after the warm-up; they count here, not in `sent`.
   */
  sendsSinceStart = 0;
  lastSendAt = 0;
  /** Every request so far, warm-up included. */
  totalSent = 0;
  totalOk = 0;
  totalErrors = 0;

  readonly #lateToleranceMs: number;
  readonly #interval = new LatencyHistogram();
  #intervalSent = 0;
  #intervalOk = 0;
  #intervalErrors = 0;

  constructor(lateToleranceMs: number) {
    this.#lateToleranceMs = lateToleranceMs;
  }

  sentOne(due: number, now: number, events: number, queued: boolean): void {
    this.timeline.due(due);
    this.timeline.sent(now);
    this.totalSent++;
    this.#intervalSent++;
    if (now >= this.measureStart) {
      this.sendsSinceStart++;
      this.lastSendAt = now;
    }
    if (due < this.measureStart) return;
    this.sent++;
    if (queued) this.queued++;
    this.eventsSent += events;
    if (events === 0) this.reads++;
    if (now - due > this.#lateToleranceMs) {
      this.late++;
      if (!queued) this.generatorLate++;
    }
  }

  droppedOne(due: number): void {
    this.timeline.due(due);
    if (due >= this.measureStart) this.dropped++;
  }

  answered(due: number, sentAt: number, now: number, status: number): void {
    const ok = status >= 200 && status < 300;
    this.timeline.answered(now, now - due, now - sentAt, status);
    this.#interval.record(now - due);
    if (ok) {
      this.totalOk++;
      this.#intervalOk++;
    } else {
      this.totalErrors++;
      this.#intervalErrors++;
    }
    if (due < this.measureStart) return;
    this.corrected.record(now - due);
    this.uncorrected.record(now - sentAt);
    this.statusCodes.set(status, (this.statusCodes.get(status) ?? 0) + 1);
    if (ok) this.ok++;
    else this.errors++;
  }

  failed(due: number, kind: FailureKind): void {
    this.timeline.failed(performance.now(), kind);
    this.totalErrors++;
    this.#intervalErrors++;
    if (due < this.measureStart) return;
    this.errors++;
    this.failures.set(kind, (this.failures.get(kind) ?? 0) + 1);
  }

  retried(due: number): void {
    if (due >= this.measureStart) this.retries++;
  }

  acknowledged(due: number, events: number): void {
    if (due >= this.measureStart) this.eventsAcknowledged += events;
  }

  /** The figures since the previous call. */
  takeInterval(): IntervalStats {
    const interval = { sent: this.#intervalSent, ok: this.#intervalOk, errors: this.#intervalErrors, p95Ms: this.#interval.at(95) };
    this.#interval.reset();
    this.#intervalSent = this.#intervalOk = this.#intervalErrors = 0;
    return interval;
  }
}
