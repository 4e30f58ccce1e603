import type { RequestListener } from 'node:http';
import { CounterEngine, DEFAULT_ENGINE_OPTIONS, type EngineOptions } from '../core/counter-engine.js';
import { DomainReader } from '../core/domain-reader.js';
import { openStore, type StoreOptions } from '../store/open-store.js';
import { WatchedStore } from '../store/watched-store.js';
import { requireToken } from './auth.js';
import { IdempotentRequests } from './idempotency.js';
import { metricsRoutes } from './metrics-route.js';
import { createRouter } from './router.js';
import { healthRoutes, ingestRoutes, statusRoutes, type BatchLimits } from './routes.js';

// Loaded when a daemon starts rather than at import: prom-client would cost every other command
// (`svc status`…) a tenth of a second at start.
const loadMetrics = () => import('../metrics/index.js');

/** What a daemon serves, and how to put it away once the server has stopped taking requests. */
export interface App {
  listener: RequestListener;
  /**
   * The daemon is stopping: events that arrive from now on are refused (503 shutting down, so
   * that clients go elsewhere at once), while those already taken in are committed and answered.
   */
  drain?(): void;
  /** Commits what is pending, then closes the store. */
  close(): Promise<void>;
}

/** Bearer tokens; a route group without one is open. */
export interface TokenOptions {
  ingestToken?: string;
  readToken?: string;
}

/** The engine's options, where batches in flight left unset are the store's own choice. */
export type IngestEngineOptions = Omit<EngineOptions, 'maxInFlight'> & { maxInFlight?: number };

export interface IngestAppOptions extends StoreOptions, IngestEngineOptions, TokenOptions, BatchLimits {
  threshold: number;
  /** How long an Idempotency-Key is remembered. */
  idempotencyWindowMs: number;
}

/** What every ingesting daemon runs on: the store opened for writing, the engine, a reader, metrics. */
export async function openIngestion(options: StoreOptions & IngestEngineOptions & { threshold: number }) {
  const { createMetrics, engineGauges, ingestMetrics, journalMetrics } = await loadMetrics();
  const metrics = createMetrics();
  const opened = await openStore({ ...options, use: 'ingest', journalObserver: journalMetrics(metrics.registry) });
  const store = new WatchedStore(opened, metrics.store);
  const ingest = ingestMetrics(metrics.registry);
  // A store that dedupes keys where the counts are made (Kafka) needs each keyed request alone in its batch.
  const maxInFlight = options.maxInFlight ?? opened.commitsInFlight ?? DEFAULT_ENGINE_OPTIONS.maxInFlight;
  const engine = new CounterEngine(store, { ...options, maxInFlight, keyedAlone: opened.keyedBatchesAlone }, ingest);
  engineGauges(metrics.registry, () => engine.stats);
  return { metrics, store, ingest, engine, reader: new DomainReader(store, options.threshold) };
}

/** serve-http: ingestion plus the read routes, so one process serves the whole API. */
export async function createIngestApp(options: IngestAppOptions): Promise<App> {
  const { metrics, store, ingest, engine, reader } = await openIngestion(options);
  return {
    listener: createRouter(
      [
        ...healthRoutes(store),
        ...metricsRoutes(metrics),
        ...requireToken(ingestRoutes(engine, options, new IdempotentRequests(store, options.idempotencyWindowMs), ingest), options.ingestToken),
        ...requireToken(statusRoutes(reader), options.readToken),
      ],
      metrics.requests,
    ),
    drain: () => engine.refuseNewEvents(),
    async close() {
      await engine.close();
      await store.close();
    },
  };
}

export interface ReadAppOptions extends StoreOptions, Pick<TokenOptions, 'readToken'> {
  threshold: number;
  cacheSize: number;
  /** A Redis shared by every read node for `not catch-all` answers (redis:// or redis-cluster://). */
  cache?: string;
}

/** serve-read: status reads only, with caches of answers that can no longer change. */
export async function createReadApp(options: ReadAppOptions): Promise<App> {
  const { cacheMetrics, createMetrics, journalMetrics, sharedCacheMetrics } = await loadMetrics();
  const metrics = createMetrics();
  const opened = await openStore({ ...options, use: 'read', journalObserver: journalMetrics(metrics.registry) });
  const store = new WatchedStore(opened, metrics.store);
  const shared = options.cache === undefined ? undefined : (await import('../store/redis/answer-cache.js')).openAnswerCache(options.cache);
  const reader = new DomainReader(store, options.threshold, options.cacheSize, shared);
  if (reader.cacheStats) cacheMetrics(metrics.registry, () => reader.cacheStats!);
  if (shared) sharedCacheMetrics(metrics.registry, shared.stats);
  return {
    listener: createRouter(
      [...healthRoutes(store), ...metricsRoutes(metrics), ...requireToken(statusRoutes(reader), options.readToken)],
      metrics.requests,
    ),
    close: async () => {
      await shared?.close();
      await store.close();
    },
  };
}
