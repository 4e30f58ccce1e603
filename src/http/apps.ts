import type { RequestListener } from 'node:http';
import { CounterEngine, type EngineOptions } from '../core/counter-engine.js';
import { DomainReader } from '../core/domain-reader.js';
import { openStore, type StoreOptions } from '../store/open-store.js';
import { createRouter } from './router.js';
import { ingestRoutes, readRoutes } from './routes.js';

/** What a daemon serves, and how to put it away once the server has stopped taking requests. */
export interface App {
  listener: RequestListener;
  /** Commits what is pending, then closes the store. */
  close(): Promise<void>;
}

export interface IngestAppOptions extends StoreOptions, EngineOptions {
  threshold: number;
  maxBody: number;
}

/** serve-http: ingestion plus the read routes, so one process serves the whole API. */
export async function createIngestApp(options: IngestAppOptions): Promise<App> {
  const store = await openStore(options);
  const engine = new CounterEngine(store, options);
  const reader = new DomainReader(store, options.threshold);
  return {
    listener: createRouter([...ingestRoutes(engine, options.maxBody), ...readRoutes(store, reader)]),
    async close() {
      await engine.close();
      await store.close();
    },
  };
}

export interface ReadAppOptions extends StoreOptions {
  threshold: number;
  cacheSize: number;
}

/** serve-read: status reads only, with a cache of answers that can no longer change. */
export async function createReadApp(options: ReadAppOptions): Promise<App> {
  const store = await openStore(options);
  const reader = new DomainReader(store, options.threshold, options.cacheSize);
  return {
    listener: createRouter(readRoutes(store, reader)),
    close: () => store.close(),
  };
}
