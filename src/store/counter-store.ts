import type { DomainCounts } from '../core/status.js';

/** Per-domain increments of one batch, keyed by normalised domain. */
export type Deltas = ReadonlyMap<string, DomainCounts>;

/**
 * What every store implements. The core never asks which store it has.
 * Stores throw StoreUnavailableError when they cannot be reached.
 */
export interface CounterStore {
  /** Adds every delta atomically: after a crash, all of the batch is there or none of it. */
  applyBatch(deltas: Deltas): Promise<void>;
  /** Counts of one domain, or undefined if it was never seen. */
  get(domain: string): Promise<DomainCounts | undefined>;
  /** Counts of many domains in one round trip; domains never seen are absent from the map. */
  getMany(domains: readonly string[]): Promise<Map<string, DomainCounts>>;
  /** Prepares the store for production use (idempotent); returns what it did, for the operator. */
  setup(): Promise<string[]>;
  /** Resolves when the store is reachable; throws StoreUnavailableError otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
