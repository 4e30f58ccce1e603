import type { EventType } from '../core/event.js';
import type { DomainCounts } from '../core/status.js';

/**
 * What became of an event, as far as the generator can know:
 * - acknowledged: a 2xx answer, so the service promised to have counted it;
 * - rejected: an answer that says it was not counted (4xx, 503 overloaded or shutting down);
 * - indefinite: no definite answer (timeout, reset connection, another 5xx, a retried
 *   pipelined request), so it may or may not have been counted.
 */
export type Outcome = 'acknowledged' | 'rejected' | 'indefinite';

export interface DomainLedger {
  index: number;
  acknowledged: DomainCounts;
  indefinite: DomainCounts;
}

const FIELDS = 4; // acknowledged delivered, acknowledged bounced, indefinite delivered, indefinite bounced

/** Per touched domain, the events acknowledged and the events without a definite answer. */
export class Ledger {
  readonly #slots = new Map<number, number>();
  // One flat typed array rather than an object per domain: millions of domains stay compact.
  #counts = new Uint32Array(FIELDS * 1024);

  record(index: number, type: EventType, outcome: Outcome): void {
    const base = this.#slot(index);
    if (outcome === 'rejected') return;
    this.#counts[base + (outcome === 'acknowledged' ? 0 : 2) + (type === 'bounced' ? 1 : 0)]!++;
  }

  get size(): number {
    return this.#slots.size;
  }

  *domains(): IterableIterator<DomainLedger> {
    for (const [index, base] of this.#slots) {
      const c = this.#counts;
      yield {
        index,
        acknowledged: { delivered: c[base]!, bounced: c[base + 1]! },
        indefinite: { delivered: c[base + 2]!, bounced: c[base + 3]! },
      };
    }
  }

  #slot(index: number): number {
    let base = this.#slots.get(index);
    if (base === undefined) {
      base = this.#slots.size * FIELDS;
      if (base === this.#counts.length) {
        const grown = new Uint32Array(this.#counts.length * 2);
        grown.set(this.#counts);
        this.#counts = grown;
      }
      this.#slots.set(index, base);
    }
    return base;
  }
}
