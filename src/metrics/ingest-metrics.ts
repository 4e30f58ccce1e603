import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EngineStats } from '../core/counter-engine.js';
import { REJECT_REASONS, type RejectReason } from '../core/errors.js';
import type { IngestObserver } from '../core/ingest-observer.js';
import { zeroed } from './zeroed.js';

const COMMIT_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const SIZE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000];

/**
 * The engine's metrics. Every label child is created here, once: the hooks run for every batch
 * and every rejected event, and a series that exists from the start at 0 makes `rate()` exact.
 */
export function ingestMetrics(registry: Registry): IngestObserver {
  const registers = [registry];
  const accepted = new Counter({
    name: 'svc_events_accepted_total',
    help: 'Events committed to the store and acknowledged, by type',
    labelNames: ['type'],
    registers,
  });
  const rejected = new Counter({
    name: 'svc_events_rejected_total',
    help: 'Events (PUT) or NDJSON lines (POST) not counted, by reason',
    labelNames: ['reason'],
    registers,
  });
  const batchDomains = new Histogram({
    name: 'svc_batch_domains',
    help: 'Distinct domains per batch sent to the store',
    buckets: SIZE_BUCKETS,
    registers,
  });
  const batchEvents = new Histogram({
    name: 'svc_batch_events',
    help: 'Events per batch sent to the store',
    buckets: SIZE_BUCKETS,
    registers,
  });
  const commitSeconds = new Histogram({
    name: 'svc_commit_duration_seconds',
    help: 'Time the store took to commit a batch, by result (committed or failed)',
    labelNames: ['result'],
    buckets: COMMIT_SECONDS_BUCKETS,
    registers,
  });

  const delivered = zeroed(accepted.labels('delivered'));
  const bounced = zeroed(accepted.labels('bounced'));
  const byReason = Object.fromEntries(REJECT_REASONS.map((reason) => [reason, zeroed(rejected.labels(reason))])) as Record<
    RejectReason,
    Counter.Internal
  >;
  commitSeconds.zero({ result: 'committed' });
  commitSeconds.zero({ result: 'failed' });
  const committedIn = commitSeconds.labels('committed');
  const failedIn = commitSeconds.labels('failed');

  return {
    committed(domains, deliveredEvents, bouncedEvents, seconds) {
      delivered.inc(deliveredEvents);
      bounced.inc(bouncedEvents);
      batchDomains.observe(domains);
      batchEvents.observe(deliveredEvents + bouncedEvents);
      committedIn.observe(seconds);
    },
    commitFailed(domains, events, seconds) {
      batchDomains.observe(domains);
      batchEvents.observe(events);
      failedIn.observe(seconds);
    },
    rejected(reason, count) {
      byReason[reason].inc(count);
    },
  };
}

/** Gauges read from the engine when scraped, so that they cost nothing in between. */
export function engineGauges(registry: Registry, stats: () => EngineStats): void {
  new Gauge({
    name: 'svc_pending_events',
    help: 'Events accepted but not yet committed (503 beyond --max-pending)',
    registers: [registry],
    collect() {
      this.set(stats().pendingEvents);
    },
  });
  new Gauge({
    name: 'svc_batches_in_flight',
    help: 'Batches being committed now',
    registers: [registry],
    collect() {
      this.set(stats().inFlightBatches);
    },
  });
}
