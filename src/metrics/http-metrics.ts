import { Histogram, type Registry } from 'prom-client';
import type { RequestObserver, RouteRecorder } from '../http/router.js';

const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Timer = ReturnType<Histogram<'route' | 'method' | 'status'>['labels']>;

/**
 * `svc_http_request_duration_seconds{route,method,status}`; its `_count` is the request counter.
 * The route label is the route's pattern, never the raw path, and Node's parser accepts only
 * the methods it knows, so every label stays bounded.
 */
export function httpMetrics(registry: Registry): RequestObserver {
  const histogram = new Histogram({
    name: 'svc_http_request_duration_seconds',
    help: 'HTTP requests by route pattern, method and status (0: the client left before the answer), from routing to the end of the response',
    labelNames: ['route', 'method', 'status'],
    buckets: SECONDS_BUCKETS,
    registers: [registry],
  });
  return { route: (label) => new RouteTimer(histogram, label) };
}

/** One route's label children, created on first use and kept: labels() hashes and allocates. */
class RouteTimer implements RouteRecorder {
  readonly #histogram: Histogram<'route' | 'method' | 'status'>;
  readonly #route: string;
  readonly #byMethod = new Map<string, Map<number, Timer>>();

  constructor(histogram: Histogram<'route' | 'method' | 'status'>, route: string) {
    this.#histogram = histogram;
    this.#route = route;
  }

  record(method: string, status: number, seconds: number): void {
    let byStatus = this.#byMethod.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#byMethod.set(method, byStatus);
    }
    let timer = byStatus.get(status);
    if (timer === undefined) {
      timer = this.#histogram.labels(this.#route, method, String(status));
      byStatus.set(status, timer);
    }
    timer.observe(seconds);
  }
}
