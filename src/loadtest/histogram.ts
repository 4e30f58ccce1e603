import { build, type Histogram } from 'hdr-histogram-js';

export interface Percentiles {
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
}

// An hour in microseconds: anything slower is recorded as an hour rather than lost.
const MAX_MICROSECONDS = 3_600_000_000;

/** Latencies in milliseconds, recorded at microsecond resolution with 3 significant digits. */
export class LatencyHistogram {
  readonly #histogram: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_MICROSECONDS,
    numberOfSignificantValueDigits: 3,
    autoResize: false,
  });

  record(milliseconds: number): void {
    const microseconds = Math.round(milliseconds * 1000);
    this.#histogram.recordValue(microseconds < 0 ? 0 : microseconds > MAX_MICROSECONDS ? MAX_MICROSECONDS : microseconds);
  }

  get count(): number {
    return this.#histogram.totalCount;
  }

  /** The value at a percentile (0..100), in milliseconds; 0 when nothing was recorded. */
  at(percentile: number): number {
    return this.count === 0 ? 0 : toMilliseconds(this.#histogram.getValueAtPercentile(percentile));
  }

  percentiles(): Percentiles {
    const max = this.count === 0 ? 0 : toMilliseconds(this.#histogram.maxValue);
    // A percentile is reported as the top of its bucket, which can lie just above the largest value.
    const at = (percentile: number) => Math.min(this.at(percentile), max);
    return { p50: at(50), p90: at(90), p95: at(95), p99: at(99), p999: at(99.9), max };
  }

  reset(): void {
    this.#histogram.reset();
  }
}

function toMilliseconds(microseconds: number): number {
  return Math.round(microseconds) / 1000;
}
