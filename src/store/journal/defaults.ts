/**
 * The journal's defaults. A segment is applied to LMDB once it is full or old; larger jobs cost
 * LMDB less per domain (its pages are shared by more of the job's domains), and cost memory: at
 * 10M uniform domains a 32 MiB segment holds about 1.2 million distinct ones, about 70 MB in the
 * index of every process that reads it.
 */
export const DEFAULT_JOURNAL = {
  segmentBytes: 32 * 1024 * 1024,
  applyAfterMs: 30_000,
  /** Three segments: one being written, one being applied, one of slack. */
  maxBytes: 96 * 1024 * 1024,
  pollMs: 100,
  leaseMs: 15_000,
  /**
   * LMDB's cost of a write transaction grows faster than its size (its dirty-page lists are sorted
   * arrays), while a job's sorted domains still share each page: short transactions over sorted
   * keys keep both (1M random domains over a 10M-domain store: 3 µs of CPU each in parts of
   * 10,000, 6–10 µs in one transaction).
   */
  domainsPerTransaction: 10_000,
};
