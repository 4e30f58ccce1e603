import { LatencyHistogram, type Percentiles } from './histogram.js';

type Summary = Pick<Percentiles, 'p50' | 'p95' | 'p99' | 'max'>;

/** What one second of a run saw, warm-up included: what an HTML report draws against time. */
export interface TimelineSecond {
  /** Seconds since the first request was due. */
  second: number;
  /** Requests due in this second (sent or dropped): the offered rate. */
  offered: number;
  /** Requests sent in this second: the achieved rate. */
  sent: number;
  /** Answers and failures in this second, by completion. */
  ok: number;
  errors: number;
  /** Answers by status code, and failures by kind (timeout, connect, socket, other). */
  outcomes: Record<string, number>;
  /** Latency of the answers completed in this second: from the due time, and from the send. */
  latencyMs: Summary | null;
  uncorrectedLatencyMs: Summary | null;
}

/**
 * Per-second counters and latency percentiles. Answers arrive in completion order, so one pair of
 * histograms is enough: when an answer falls in a later second, the open second is summarised and
 * the histograms reused. Times are performance.now() milliseconds.
 */
export class Timeline {
  /** When the first request was due. */
  start = 0;
  readonly #seconds: TimelineSecond[] = [];
  readonly #corrected = new LatencyHistogram();
  readonly #uncorrected = new LatencyHistogram();
  /** The second whose latencies the histograms hold, or -1. */
  #open = -1;

  due(at: number): void {
    this.#at(at).offered++;
  }

  sent(at: number): void {
    this.#at(at).sent++;
  }

  answered(at: number, latencyMs: number, uncorrectedMs: number, status: number): void {
    const second = this.#at(at);
    if (second.second > this.#open) this.#roll(second.second);
    this.#corrected.record(latencyMs);
    this.#uncorrected.record(uncorrectedMs);
    if (status >= 200 && status < 300) second.ok++;
    else second.errors++;
    second.outcomes[status] = (second.outcomes[status] ?? 0) + 1;
  }

  failed(at: number, kind: string): void {
    const second = this.#at(at);
    second.errors++;
    second.outcomes[kind] = (second.outcomes[kind] ?? 0) + 1;
  }

  /** Every second from the first due time to the last event, gaps included. */
  seconds(): TimelineSecond[] {
    this.#roll(Infinity);
    return this.#seconds.map((second, index) => second ?? empty(index));
  }

  #at(at: number): TimelineSecond {
    const index = Math.max(0, Math.floor((at - this.start) / 1000));
    for (let i = this.#seconds.length; i <= index; i++) this.#seconds.push(empty(i));
    return this.#seconds[index]!;
  }

  #roll(next: number): void {
    const closing = this.#seconds[this.#open];
    if (closing && this.#corrected.count > 0) {
      closing.latencyMs = summary(this.#corrected);
      closing.uncorrectedLatencyMs = summary(this.#uncorrected);
    }
    this.#corrected.reset();
    this.#uncorrected.reset();
    this.#open = next;
  }
}

function empty(second: number): TimelineSecond {
  return { second, offered: 0, sent: 0, ok: 0, errors: 0, outcomes: {}, latencyMs: null, uncorrectedLatencyMs: null };
}

function summary(histogram: LatencyHistogram): Summary {
  const { p50, p95, p99, max } = histogram.percentiles();
  return { p50, p95, p99, max };
}
