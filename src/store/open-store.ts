import type { ReadPreferenceMode, W } from 'mongodb';
import { DEFAULTS } from '../defaults.js';
import type { CounterStore } from './counter-store.js';
import { LmdbStore, type JournalObserver, type StoreUse } from './lmdb/lmdb-store.js';

export interface StoreOptions {
  /** `mongodb://…` or `mongodb+srv://…` selects MongoDB; anything else is an embedded-store directory. */
  store: string;
  /** What this process does with the store (see StoreUse); the embedded store depends on it. */
  use?: StoreUse;
  /** Embedded store: acknowledge only once flushed to disk. */
  fsync?: boolean;
  /** Embedded store: journal not applied yet that one process may hold before it refuses events. */
  journalMaxBytes?: number;
  /** Embedded store: how often other processes' journals are read. */
  maxReadLagMs?: number;
  /** Embedded store: apply the journal to LMDB at least this often. */
  applyIntervalMs?: number;
  /** Embedded store: a writer silent this long has its journal taken over. */
  journalLeaseMs?: number;
  journalObserver?: JournalObserver;
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
    const { MongoStore } = await import('./mongo/mongo-store.js');
    return new MongoStore(options.store, {
      collection: options.collection ?? DEFAULTS.collection,
      writeConcern: options.writeConcern ?? DEFAULTS.writeConcern,
      readPreference: options.readPreference ?? DEFAULTS.readPreference,
      timeoutMs: options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs,
    });
  }
  return LmdbStore.open(options.store, {
    use: options.use,
    fsync: options.fsync,
    maxBytes: options.journalMaxBytes,
    pollMs: options.maxReadLagMs,
    applyAfterMs: options.applyIntervalMs,
    leaseMs: options.journalLeaseMs,
    observer: options.journalObserver,
  });
}
