import type { DomainCounts } from '../core/status.js';

/** The order of JavaScript's `<` on strings: that of sorted deltas, and of the journal's cursors. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Deltas sorted by domain, in parallel arrays: `delivered[i]` and `bounced[i]` belong to
 * `domains[i]`. The embedded store applies deltas in this order (neighbouring domains share LMDB's
 * pages), so a batch that comes sorted (replay's, merged from sorted chunks) is not sorted again.
 * It reads as a map for any store that wants one.
 */
export class SortedDeltas implements ReadonlyMap<string, DomainCounts> {
  constructor(
    readonly domains: readonly string[],
    readonly delivered: ArrayLike<number>,
    readonly bounced: ArrayLike<number>,
  ) {}

  /** Sorts a map of deltas. */
  static of(deltas: ReadonlyMap<string, DomainCounts>): SortedDeltas {
    if (deltas instanceof SortedDeltas) return deltas;
    const keys = [...deltas.keys()].sort(byCodeUnit);
    const delivered = new Float64Array(keys.length);
    const bounced = new Float64Array(keys.length);
    keys.forEach((key, i) => {
      const counts = deltas.get(key)!;
      delivered[i] = counts.delivered;
      bounced[i] = counts.bounced;
    });
    return new SortedDeltas(keys, delivered, bounced);
  }

  /**
   * Merges runs that are each sorted into one, summing a domain's counts across runs: a k-way merge
   * over a heap of the runs' next domains, about log2(runs) comparisons a domain.
   */
  static merge(runs: ReadonlyArray<{ domains: readonly string[]; delivered: ArrayLike<number>; bounced: ArrayLike<number> }>): SortedDeltas {
    let total = 0;
    for (const run of runs) total += run.domains.length;
    const keys: string[] = [];
    const delivered = new Float64Array(total);
    const bounced = new Float64Array(total);
    const positions = new Int32Array(runs.length);
    // A binary min-heap of run indices, keyed by each run's domain at its position.
    const heap: number[] = [];
    const keyOf = (run: number) => runs[run]!.domains[positions[run]!]!;
    const less = (a: number, b: number) => keyOf(a) < keyOf(b);
    const siftDown = (from: number) => {
      for (let i = from; ; ) {
        const left = 2 * i + 1;
        if (left >= heap.length) return;
        const child = left + 1 < heap.length && less(heap[left + 1]!, heap[left]!) ? left + 1 : left;
        if (!less(heap[child]!, heap[i]!)) return;
        [heap[i], heap[child]] = [heap[child]!, heap[i]!];
        i = child;
      }
    };
    runs.forEach((run, index) => run.domains.length > 0 && heap.push(index));
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(i);
    while (heap.length > 0) {
      const run = heap[0]!;
      const at = positions[run]!;
      const key = runs[run]!.domains[at]!;
      const last = keys.length - 1;
      if (last >= 0 && keys[last] === key) {
        delivered[last]! += runs[run]!.delivered[at]!;
        bounced[last]! += runs[run]!.bounced[at]!;
      } else {
        delivered[keys.length] = runs[run]!.delivered[at]!;
        bounced[keys.length] = runs[run]!.bounced[at]!;
        keys.push(key);
      }
      positions[run] = at + 1;
      if (at + 1 === runs[run]!.domains.length) {
        // The run is spent: the heap's last entry takes its place (unless it was the last).
        const tail = heap.pop()!;
        if (heap.length === 0) break;
        heap[0] = tail;
      }
      siftDown(0);
    }
    return new SortedDeltas(keys, delivered.subarray(0, keys.length), bounced.subarray(0, keys.length));
  }

  get size(): number {
    return this.domains.length;
  }

  /** The index of `domain`, or -1: a binary search. */
  indexOf(domain: string): number {
    let low = 0;
    let high = this.domains.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const key = this.domains[middle]!;
      if (key === domain) return middle;
      if (key < domain) low = middle + 1;
      else high = middle - 1;
    }
    return -1;
  }

  get(domain: string): DomainCounts | undefined {
    const i = this.indexOf(domain);
    return i < 0 ? undefined : { delivered: this.delivered[i]!, bounced: this.bounced[i]! };
  }

  has(domain: string): boolean {
    return this.indexOf(domain) >= 0;
  }

  *entries(): MapIterator<[string, DomainCounts]> {
    for (let i = 0; i < this.domains.length; i++) yield [this.domains[i]!, { delivered: this.delivered[i]!, bounced: this.bounced[i]! }];
  }

  keys(): MapIterator<string> {
    return this.domains.values();
  }

  *values(): MapIterator<DomainCounts> {
    for (const [, counts] of this.entries()) yield counts;
  }

  forEach(callback: (value: DomainCounts, key: string, map: ReadonlyMap<string, DomainCounts>) => void): void {
    for (const [key, counts] of this.entries()) callback(counts, key, this);
  }

  [Symbol.iterator](): MapIterator<[string, DomainCounts]> {
    return this.entries();
  }
}
