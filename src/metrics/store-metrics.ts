import { Counter, Gauge, type Registry } from 'prom-client';
import { log } from '../log.js';
import { zeroed } from './zeroed.js';
import type { StoreOperation, StoreWatcher } from '../store/watched-store.js';

/**
 * `svc_store_errors_total{operation}` and `svc_store_up`; a change of state is also one log line,
 * never one per failed request.
 */
export function storeMetrics(registry: Registry): StoreWatcher {
  const errors = new Counter({
    name: 'svc_store_errors_total',
    help: 'Store operations that failed, by operation (write, read, ping)',
    labelNames: ['operation'],
    registers: [registry],
  });
  const up = new Gauge({
    name: 'svc_store_up',
    help: '1 while the store answers, 0 from a failed operation until one succeeds',
    // Across workers, the store is up only if it is up for every one of them.
    aggregator: 'min',
    registers: [registry],
  });
  up.set(1);
  const byOperation: Record<StoreOperation, Counter.Internal> = {
    write: zeroed(errors.labels('write')),
    read: zeroed(errors.labels('read')),
    ping: zeroed(errors.labels('ping')),
  };
  return {
    failed(operation) {
      byOperation[operation].inc();
    },
    unreachable(error) {
      up.set(0);
      log('warn', 'store unreachable', { error: (error as Error)?.message ?? String(error) });
    },
    reachable() {
      up.set(1);
      log('info', 'store reachable again');
    },
  };
}
