import type { ReadPreferenceMode, W } from 'mongodb';
import { DEFAULTS } from '../defaults.js';
import type { CounterStore } from './counter-store.js';
import { LmdbStore } from './lmdb-store.js';

export interface StoreOptions {
  /** `mongodb://…` or `mongodb+srv://…` selects MongoDB; anything else is an embedded-store directory. */
  store: string;
  /** Embedded store: acknowledge only once flushed to disk. */
  fsync?: boolean;
  /** MongoDB collection. */
  collection?: string;
  writeConcern?: W;
  readPreference?: ReadPreferenceMode;
  storeTimeoutMs?: number;
}

export function isMongoUri(store: string): boolean {
  return store.startsWith('mongodb://') || store.startsWith('mongodb+srv://');
}

/**
 * Opens the store a `--store` value names. Never waits for a server: a daemon starts while
 * MongoDB is down. The MongoDB driver is loaded only when it is needed (it costs a fifth of a
 * second at every start of the CLI otherwise).
 */
export async function openStore(options: StoreOptions): Promise<CounterStore> {
  if (isMongoUri(options.store)) {
    const { MongoStore } = await import('./mongo-store.js');
    return new MongoStore(options.store, {
      collection: options.collection ?? DEFAULTS.collection,
      writeConcern: options.writeConcern ?? DEFAULTS.writeConcern,
      readPreference: options.readPreference ?? DEFAULTS.readPreference,
      timeoutMs: options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs,
    });
  }
  return new LmdbStore(options.store, { fsync: options.fsync });
}
