import type { CounterStore } from '../store/counter-store.js';
import { reportOf, type DomainReport } from './status.js';

/** Answers status queries from a store, optionally through a cache of settled answers. */
export class DomainReader {
  readonly #store: CounterStore;
  readonly #threshold: number;
  readonly #cache: SettledCache | undefined;

  constructor(store: CounterStore, threshold: number, cacheSize = 0) {
    this.#store = store;
    this.#threshold = threshold;
    this.#cache = cacheSize > 0 ? new SettledCache(cacheSize) : undefined;
  }

  /** `domain` must already be normalised. */
  async report(domain: string): Promise<DomainReport> {
    const cached = this.#cache?.get(domain);
    if (cached) return cached;
    const report = reportOf(domain, await this.#store.get(domain), this.#threshold);
    this.#cache?.offer(report);
    return report;
  }

  /** Reports of many normalised domains with one store round trip, in the order given. */
  async reportMany(domains: readonly string[]): Promise<DomainReport[]> {
    const counts = await this.#store.getMany(domains);
    return domains.map((domain) => reportOf(domain, counts.get(domain), this.#threshold));
  }

  get cacheStats(): { hits: number; misses: number; size: number } | undefined {
    return this.#cache?.stats;
  }
}

/**
 * A bounded LRU of `not catch-all` answers only: a bounce is for ever, so such an answer never
 * goes stale (its counts may; the status cannot). Every other status reads through.
 */
class SettledCache {
  readonly #entries = new Map<string, DomainReport>();
  readonly #capacity: number;
  hits = 0;
  misses = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get(domain: string): DomainReport | undefined {
    const report = this.#entries.get(domain);
    if (report === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Re-insert so that Map's insertion order is the recency order.
    this.#entries.delete(domain);
    this.#entries.set(domain, report);
    return report;
  }

  offer(report: DomainReport): void {
    if (report.status !== 'not catch-all') return;
    this.#entries.set(report.domain, report);
    if (this.#entries.size > this.#capacity) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }

  get stats(): { hits: number; misses: number; size: number } {
    return { hits: this.hits, misses: this.misses, size: this.#entries.size };
  }
}
