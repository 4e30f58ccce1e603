import type { ReadPreferenceMode, W } from 'mongodb';
import { ValidationError } from '../core/errors.js';
import { DEFAULTS } from '../defaults.js';
import type { CounterStore } from './counter-store.js';
import { LmdbStore, type JournalObserver, type StoreUse } from './lmdb/lmdb-store.js';
import { storeKind } from './store-location.js';
import { parseKafkaUrl } from '../kafka/url.js';

export interface StoreOptions {
  /** `mongodb://…` or `mongodb+srv://…` selects MongoDB, `redis://…` Redis, `redis-cluster://…` a Redis Cluster, a path the embedded store (see storeKind). */
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
  /** Kafka, svc setup: partitions of the topics it creates. */
  partitions?: number;
  /** Kafka, serve-read: the directory of its local copy of the counts. */
  state?: string;
  /** Redis: replicas that must have a batch before it is acknowledged. */
  redisWait?: number;
}

/**
 * Opens the store a `--store` value names. Never waits for a server: a daemon starts while
 * MongoDB is down. The MongoDB driver is loaded only when it is needed (it costs a fifth of a
 * second at every start of the CLI otherwise).
 */
export async function openStore(options: StoreOptions): Promise<CounterStore> {
  const kind = storeKind(options.store);
  if (kind === 'kafka') return openKafka(options);
  if (kind === 'redis-cluster') {
    const { openRedisClusterStore } = await import('./redis/open.js');
    return openRedisClusterStore(options.store, options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs, options.redisWait ?? DEFAULTS.redisWait);
  }
  if (kind === 'redis') {
    const { openRedisStore } = await import('./redis/open.js');
    return openRedisStore(options.store, options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs, options.redisWait ?? DEFAULTS.redisWait);
  }
  if (kind === 'mongodb') {
    const { MongoStore } = await import('./mongo/mongo-store.js');
    return new MongoStore(options.store, {
      collection: options.collection ?? DEFAULTS.collection,
      writeConcern: options.writeConcern ?? DEFAULTS.writeConcern,
      readPreference: options.readPreference ?? DEFAULTS.readPreference,
      timeoutMs: options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs,
    });
  }
  // A reader never creates a store: a mistyped path would answer "unknown" for every domain.
  if (options.use === 'read' && !LmdbStore.exists(options.store)) {
    throw new ValidationError(`no embedded store in ${options.store} (serve-http, serve-grpc, replay or setup creates one)`);
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

/**
 * kafka://: the writers (serve-http, serve-grpc, setup, replay) produce to PREFIX.events; readers
 * (serve-read) follow PREFIX.counts into a local store; counting is `svc materialize`'s.
 */
async function openKafka(options: StoreOptions): Promise<CounterStore> {
  const location = parseKafkaUrl(options.store);
  if (options.use === 'read') {
    if (options.state === undefined) {
      throw new ValidationError(
        `a kafka:// store is read through svc serve-read --store ${options.store} --state DIR; ask it with svc status --url http://HOST:PORT`,
      );
    }
    const { KafkaCountsReader } = await import('./kafka/counts-reader.js');
    return KafkaCountsReader.open(location, options.state);
  }
  const { KafkaSink } = await import('./kafka/kafka-sink.js');
  return new KafkaSink(location, {
    url: options.store,
    timeoutMs: options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs,
    partitions: options.partitions,
  });
}
