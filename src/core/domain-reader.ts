import type { CounterStore } from '../store/counter-store.js';
import { reportOf, type DomainReport } from './status.js';

export interface SharedCacheStats {
  hits: number;
  misses: number;
  /** Reads and writes that failed or timed out (a read that failed went to the store). */
  errors: number;
}

/** `not catch-all` answers kept outside the process and shared by every read node (serve-read --cache). */
export interface SharedAnswers {
  /** The answer if the cache holds it; undefined on a miss or when the cache cannot be read. */
  get(domain: string): Promise<DomainReport | undefined>;
  /** Keeps the answer if it is `not catch-all`, in the background. */
  offer(report: DomainReport): void;
  readonly stats: SharedCacheStats;
}

/**
 * Answers status queries from a store, optionally through a cache of settled answers in memory,
 * then one shared by every read node.
 */
export class DomainReader {
  readonly #store: CounterStore;
  readonly #threshold: number;
  readonly #cache: SettledCache | undefined;
  readonly #shared: SharedAnswers | undefined;

  constructor(store: CounterStore, threshold: number, cacheSize = 0, shared?: SharedAnswers) {
    this.#store = store;
    this.#threshold = threshold;
    this.#cache = cacheSize > 0 ? new SettledCache(cacheSize) : undefined;
    this.#shared = shared;
  }

  /** `domain` must already be normalised. */
  async report(domain: string): Promise<DomainReport> {
    const cached = this.#cache?.get(domain);
    if (cached) return cached;
    const shared = await this.#shared?.get(domain);
    if (shared) {
      this.#cache?.offer(shared);
      return shared;
    }
    const report = reportOf(domain, await this.#store.get(domain), this.#threshold);
    this.#cache?.offer(report);
    this.#shared?.offer(report);
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
