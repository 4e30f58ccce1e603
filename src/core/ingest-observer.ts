import type { RejectReason } from './errors.js';

/**
 * What ingestion reports as it goes, for metrics. The core calls these hooks and knows nothing of
 * what is behind them; they run on the hot path, so an implementation must be cheap and must not
 * throw.
 */
export interface IngestObserver {
  /** A batch is in the store: its distinct domains, its events by type, and how long the store took. */
  committed(domains: number, delivered: number, bounced: number, seconds: number): void;
  /** The store refused a batch; its events are also reported as rejected (`store_unavailable`). */
  commitFailed(domains: number, events: number, seconds: number): void;
  /** Events or NDJSON lines that were not counted, and why. */
  rejected(reason: RejectReason, count: number): void;
}

export const NO_INGEST_OBSERVER: IngestObserver = {
  committed() {},
  commitFailed() {},
  rejected() {},
};
