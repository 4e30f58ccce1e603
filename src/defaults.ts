import { DEFAULT_ENGINE_OPTIONS } from './core/counter-engine.js';
import { DEFAULT_THRESHOLD } from './core/status.js';
import { DEFAULT_JOURNAL } from './store/journal/defaults.js';

/** Every default in one place: the CLI shows these in --help, the library falls back to them. */
export const DEFAULTS = {
  store: './data',
  host: '127.0.0.1',
  ingestPort: 8080,
  readPort: 8081,
  grpcPort: 8082,
  workers: 1,
  threshold: DEFAULT_THRESHOLD,
  ...DEFAULT_ENGINE_OPTIONS,
  maxBody: 8 * 1024 * 1024,
  // A canonical event line is about 45 bytes: a full 8 MiB body of them is ~190,000 lines.
  maxBatchLines: 100_000,
  maxBodyMemory: 64 * 1024 * 1024,
  cacheSize: 100_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  shutdownTimeoutMs: 30_000,
  storeTimeoutMs: 5_000,
  journalMaxBytes: DEFAULT_JOURNAL.maxBytes,
  maxReadLagMs: DEFAULT_JOURNAL.pollMs,
  applyIntervalMs: DEFAULT_JOURNAL.applyAfterMs,
  journalLeaseMs: DEFAULT_JOURNAL.leaseMs,
  idempotencyWindowMs: 24 * 3_600_000,
  collection: 'domains',
  writeConcern: 'majority',
  readPreference: 'primary',
  redisWait: 0,
} as const satisfies Record<string, unknown>;
