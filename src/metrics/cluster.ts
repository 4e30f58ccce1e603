import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * With --workers, a scrape lands on any one worker, yet must describe the whole daemon. The
 * worker asks the primary over IPC; the primary collects every worker's registry through
 * prom-client's AggregatorRegistry (counters and histograms summed, gauges by their aggregator)
 * and sends the text back.
 */
const REQUEST = 'svc:metrics-request';
const RESPONSE = 'svc:metrics-response';
/** Above prom-client's own 5 s wait for the workers' answers. */
const TIMEOUT_MS = 7_000;

interface Request {
  type: typeof REQUEST;
  id: number;
}

interface Response {
  type: typeof RESPONSE;
  id: number;
  text?: string;
  error?: string;
}

/**
 * In the primary: answers the workers' requests for the cluster-wide metrics, and returns the
 * same scrape for a primary that serves GET /metrics itself (serve-grpc's --metrics-port).
 */
export function serveClusterMetrics(): { scrape(): Promise<string>; contentType: string } {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: Request) => {
    if (message?.type !== REQUEST) return;
    const reply = (response: Omit<Response, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: RESPONSE, id: message.id, ...response });
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (error: Error) => reply({ error: error.message }),
    );
  });
  return { scrape: () => aggregator.clusterMetrics(), contentType: aggregator.contentType };
}

/**
 * In a worker: hands `registry` to the primary when it collects, and returns the scrape function
 * that answers with the cluster-wide aggregate.
 */
export function clusterScrape(registry: Registry): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one is what makes prom-client answer the primary's collection requests here.
  new AggregatorRegistry();
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 0;
  process.on('message', (message: Response) => {
    if (message?.type !== RESPONSE) return;
    const request = waiting.get(message.id);
    if (request === undefined) return;
    waiting.delete(message.id);
    clearTimeout(request.timer);
    if (message.text === undefined) request.reject(new Error(message.error ?? 'no metrics from the primary'));
    else request.resolve(message.text);
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('the primary did not answer with the cluster metrics'));
      }, TIMEOUT_MS);
      waiting.set(id, { resolve, reject, timer });
      process.send!({ type: REQUEST, id } satisfies Request);
    });
}
