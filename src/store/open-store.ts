import type { CounterStore } from './counter-store.js';
import { LmdbStore } from './lmdb-store.js';

export interface StoreOptions {
  /** A directory for the embedded store. */
  store: string;
  fsync?: boolean;
}

/** Opens the store a `--store` value names. */
export async function openStore(options: StoreOptions): Promise<CounterStore> {
  return new LmdbStore(options.store, { fsync: options.fsync });
}
