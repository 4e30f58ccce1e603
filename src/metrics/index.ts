/** The metrics a daemon wires in; imported on demand (prom-client takes a tenth of a second to load). */
export { cacheMetrics, sharedCacheMetrics } from './cache-metrics.js';
export { serveClusterMetrics } from './cluster.js';
export { engineGauges, ingestMetrics } from './ingest-metrics.js';
export { journalMetrics } from './journal-metrics.js';
export { createMetrics } from './metrics.js';
