import cluster from 'node:cluster';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { RequestObserver } from '../http/router.js';
import type { StoreWatcher } from '../store/watched-store.js';
import { clusterScrape } from './cluster.js';
import { httpMetrics } from './http-metrics.js';
import { storeMetrics } from './store-metrics.js';

/** What every daemon measures; the ingestion and cache metrics are added by the app that has them. */
export interface DaemonMetrics {
  registry: Registry;
  requests: RequestObserver;
  store: StoreWatcher;
  /** The text for GET /metrics: this process's metrics, or in a cluster worker the whole cluster's. */
  scrape(): Promise<string>;
  contentType: string;
}

/** One per process: it also registers the process-wide default metrics (CPU, memory, event loop lag). */
export function createMetrics(): DaemonMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: httpMetrics(registry),
    store: storeMetrics(registry),
    scrape: cluster.isWorker ? clusterScrape(registry) : () => registry.metrics(),
    contentType: registry.contentType,
  };
}
