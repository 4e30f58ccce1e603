import { Counter, Gauge, type Registry } from 'prom-client';
import type { SharedCacheStats } from '../core/domain-reader.js';

export interface CacheStats {
  hits: number;
  misses: number;
  size: number;
}

/**
 * The read cache's hits, misses and size. The cache counts for itself; they are copied at scrape
 * time, so a read costs not one call more. Hit ratio: hits / (hits + misses).
 */
export function cacheMetrics(registry: Registry, stats: () => CacheStats): void {
  const registers = [registry];
  new Counter({
    name: 'svc_cache_hits_total',
    help: 'Status reads answered from the cache of not-catch-all answers',
    registers,
    collect() {
      copy(this, stats().hits);
    },
  });
  new Counter({
    name: 'svc_cache_misses_total',
    help: 'Status reads the cache could not answer (read from the store)',
    registers,
    collect() {
      copy(this, stats().misses);
    },
  });
  new Gauge({
    name: 'svc_cache_entries',
    help: 'Answers held in the cache',
    registers,
    collect() {
      this.set(stats().size);
    },
  });
}

// A prom-client counter only goes up by increments; this one mirrors a count kept elsewhere.
function copy(counter: Counter, total: number): void {
  counter.reset();
  counter.inc(total);
}

/** The shared cache of serve-read --cache: hits, misses and failures, copied at scrape time as above. */
export function sharedCacheMetrics(registry: Registry, stats: SharedCacheStats): void {
  const registers = [registry];
  const counters: Array<[keyof SharedCacheStats, string]> = [
    ['hits', 'Status reads answered from the shared cache (--cache), after a miss of the in-memory one'],
    ['misses', 'Status reads the shared cache did not hold (read from the store)'],
    ['errors', 'Shared-cache reads and writes that failed or timed out (a failed read went to the store)'],
  ];
  for (const [field, help] of counters) {
    new Counter({
      name: `svc_shared_cache_${field}_total`,
      help,
      registers,
      collect() {
        copy(this, stats[field]);
      },
    });
  }
}
