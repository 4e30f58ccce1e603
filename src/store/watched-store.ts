import type { KeyClaim } from '../core/idempotency.js';
import type { DomainCounts } from '../core/status.js';
import type { BatchExtras, CounterStore, Deltas, ReplayCheckpoint } from './counter-store.js';

export type StoreOperation = 'write' | 'read' | 'ping';

/** Hears a store's failures, and its changes of state: once when it fails, once when it answers again. */
export interface StoreWatcher {
  failed(operation: StoreOperation, error: unknown): void;
  unreachable(error: unknown): void;
  reachable(): void;
}

/**
 * A store that reports to a watcher. Any store fits behind it, so the daemons learn of an outage
 * the same way on LMDB and MongoDB: from the operations their requests make (the MongoDB driver's
 * own monitoring would say nothing about LMDB).
 */
export class WatchedStore implements CounterStore {
  readonly #store: CounterStore;
  readonly #watcher: StoreWatcher;
  #reachable = true;
  // Bound once: `get` runs on every status read and should not allocate closures for its `then`.
  readonly #succeeded = <T>(value: T): T => {
    if (!this.#reachable) this.#becameReachable();
    return value;
  };
  readonly #readFailed = (error: unknown): never => this.#fail('read', error);

  constructor(store: CounterStore, watcher: StoreWatcher) {
    this.#store = store;
    this.#watcher = watcher;
  }

  applyBatch(deltas: Deltas, extras?: BatchExtras): Promise<void> {
    return this.#watch('write', this.#store.applyBatch(deltas, extras));
  }

  claimKey(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    return this.#watch('write', this.#store.claimKey(key, fingerprint, now));
  }

  releaseKey(key: string): Promise<void> {
    return this.#watch('write', this.#store.releaseKey(key));
  }

  getCheckpoint(source: string): Promise<ReplayCheckpoint | undefined> {
    return this.#watch('read', this.#store.getCheckpoint(source));
  }

  get(domain: string): Promise<DomainCounts | undefined> {
    return this.#store.get(domain).then(this.#succeeded, this.#readFailed);
  }

  getMany(domains: readonly string[]): Promise<Map<string, DomainCounts>> {
    return this.#watch('read', this.#store.getMany(domains));
  }

  setup(): Promise<string[]> {
    return this.#store.setup();
  }

  ping(): Promise<void> {
    return this.#watch('ping', this.#store.ping());
  }

  close(): Promise<void> {
    return this.#store.close();
  }

  #watch<T>(operation: StoreOperation, result: Promise<T>): Promise<T> {
    return result.then(this.#succeeded, (error: unknown) => this.#fail(operation, error));
  }

  #fail(operation: StoreOperation, error: unknown): never {
    this.#watcher.failed(operation, error);
    if (this.#reachable) {
      this.#reachable = false;
      this.#watcher.unreachable(error);
    }
    throw error;
  }

  #becameReachable(): void {
    this.#reachable = true;
    this.#watcher.reachable();
  }
}
