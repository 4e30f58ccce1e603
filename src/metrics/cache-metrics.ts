import { Counter, Gauge, type Registry } from 'prom-client';

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
