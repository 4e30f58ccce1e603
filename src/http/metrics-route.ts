import { log } from '../log.js';
import { HttpError } from './http-error.js';
import type { Route } from './router.js';

/** `GET /metrics` in the Prometheus text format; open like the health routes (no token). */
export function metricsRoutes(metrics: { scrape(): Promise<string>; contentType: string }): Route[] {
  return [
    {
      pattern: ['metrics'],
      methods: {
        GET: async (_req, res) => {
          let text: string;
          try {
            text = await metrics.scrape();
          } catch (error) {
            log('warn', 'metrics unavailable', { error: (error as Error).message });
            throw new HttpError(503, 'metrics unavailable', { 'retry-after': '1' });
          }
          res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
      },
    },
  ];
}
