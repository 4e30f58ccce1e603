import { Counter, Gauge, type Registry } from 'prom-client';

export interface MaterializeStatsSource {
  /** The counting stage (PREFIX.events → PREFIX.counts). */
  counted(): { partitions: number[]; events: number; records: number; rejected: number; duplicates: number; restores: number };
  /** The forwarding stage of --source, when there is one. */
  forwarded?(): { records: number; events: number; rejected: number };
}

/** A counter whose value is read from the stats at each scrape. */
function readCounter(registry: Registry, name: string, help: string, labelNames: string[], read: (set: (labels: Record<string, string>, value: number) => void) => void) {
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      read((labels, value) => this.inc(labels, value));
    },
  });
}

/** svc materialize's metrics, for --metrics-port. */
export function materializeMetrics(registry: Registry, stats: MaterializeStatsSource): void {
  readCounter(registry, 'svc_materialize_records_total', 'records read, by stage (count, forward) and outcome (counted, rejected, duplicate)', ['stage', 'outcome'], (set) => {
    const counted = stats.counted();
    set({ stage: 'count', outcome: 'counted' }, counted.records - counted.rejected - counted.duplicates);
    set({ stage: 'count', outcome: 'rejected' }, counted.rejected);
    set({ stage: 'count', outcome: 'duplicate' }, counted.duplicates);
    const forwarded = stats.forwarded?.();
    if (forwarded) {
      set({ stage: 'forward', outcome: 'counted' }, forwarded.records - forwarded.rejected);
      set({ stage: 'forward', outcome: 'rejected' }, forwarded.rejected);
    }
  });
  readCounter(registry, 'svc_materialize_events_total', 'events counted (count) or forwarded to PREFIX.events (forward)', ['stage'], (set) => {
    set({ stage: 'count' }, stats.counted().events);
    const forwarded = stats.forwarded?.();
    if (forwarded) set({ stage: 'forward' }, forwarded.events);
  });
  readCounter(registry, 'svc_materialize_restores_total', 'partitions restored from PREFIX.counts', [], (set) => set({}, stats.counted().restores));
  new Gauge({
    name: 'svc_materialize_partitions',
    help: 'partitions of PREFIX.events this member owns',
    registers: [registry],
    collect() {
      this.set(stats.counted().partitions.length);
    },
  });
}
