import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestServer {
  url: string;
  /** Requests received so far. */
  requests(): number;
  close(): Promise<void>;
}

/** An in-process node:http server on a free loopback port. */
export async function startServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    handler(req, res);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers every request with `status` and an empty body, after `delayMs` if given. */
export function answer(status: number, delayMs = 0) {
  return (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const send = () => res.writeHead(status, { 'content-length': 0 }).end();
    if (delayMs > 0) setTimeout(send, delayMs);
    else send();
  };
}

/**
 * A fake service that acknowledges every PUT with 204 and counts each event `factor` times:
 * 0 is a service that loses acknowledged events, 2 one that counts them twice.
 */
export function fakeService(options: { factor: number }) {
  const counts = new Map<string, { delivered: number; bounced: number }>();
  return (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const [, resource, domain = '', type] = (req.url ?? '').split('/');
    if (req.method === 'PUT' && resource === 'events' && (type === 'delivered' || type === 'bounced')) {
      const c = counts.get(domain.toLowerCase()) ?? { delivered: 0, bounced: 0 };
      c[type] += options.factor;
      counts.set(domain.toLowerCase(), c);
      res.writeHead(204).end();
    } else if (req.method === 'GET' && resource === 'domains') {
      const c = counts.get(domain.toLowerCase()) ?? { delivered: 0, bounced: 0 };
      const body = JSON.stringify({ domain: domain.toLowerCase(), status: 'unknown', ...c });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    } else {
      res.writeHead(200, { 'content-length': 0 }).end();
    }
  };
}
