import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { log } from '../log.js';
import type { App } from './apps.js';

export interface DaemonOptions {
  name: string;
  host: string;
  port: number;
  workers: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  shutdownTimeoutMs: number;
}

/**
 * Runs an HTTP daemon in this process, or with `workers > 1` as a node:cluster primary whose
 * workers share the listening socket. Resolves once it is listening; the process exits 0 after
 * a graceful shutdown on SIGTERM or SIGINT.
 */
export async function runDaemon(options: DaemonOptions, createApp: () => Promise<App>): Promise<void> {
  if (options.workers > 1 && cluster.isPrimary) {
    runPrimary(options);
    return;
  }
  await serve(options, createApp);
}

async function serve(options: DaemonOptions, createApp: () => Promise<App>): Promise<void> {
  const app = await createApp();
  let active = 0;
  let draining = false;
  const server = createServer(
    {
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: Math.min(options.requestTimeoutMs, 60_000),
      keepAliveTimeout: options.keepAliveTimeoutMs,
    },
    (req, res) => {
      active++;
      res.once('close', () => active--);
      // Clients move to another process while this one drains.
      if (draining) res.setHeader('connection', 'close');
      app.listener(req, res);
    },
  );
  await listen(server, options.port, options.host);
  const { port } = server.address() as AddressInfo;
  log('info', cluster.isWorker ? 'worker listening' : 'listening', { daemon: options.name, url: `http://${options.host}:${port}` });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    draining = true;
    log('info', 'stopping', { daemon: options.name, signal });
    const deadline = Date.now() + options.shutdownTimeoutMs;
    server.close();
    server.closeIdleConnections();
    // Requests in flight are waiting for their batch; let them get their answer.
    while (active > 0 && Date.now() < deadline) await sleep(10);
    await app.close();
    server.closeAllConnections();
    log('info', 'stopped', { daemon: options.name, unfinishedRequests: active });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

function runPrimary(options: DaemonOptions): void {
  let stopping = false;
  let listening = 0;
  let failed = false;
  const fork = () => cluster.fork();
  for (let i = 0; i < options.workers; i++) fork();

  cluster.on('listening', (_worker, address) => {
    listening++;
    if (listening === options.workers) {
      log('info', 'listening', { daemon: options.name, url: `http://${options.host}:${address.port}`, workers: options.workers });
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      if (listening >= options.workers) {
        log('error', 'worker died, starting another', { daemon: options.name, worker: worker.process.pid, code, signal });
        setTimeout(fork, 1000).unref();
        return;
      }
      // A worker that dies before the daemon ever listened (port taken, store unusable) would die again.
      log('error', 'worker failed to start', { daemon: options.name, worker: worker.process.pid, code, signal });
      stop('startup failure');
    }
    if (code !== 0) failed = true;
    if (Object.keys(cluster.workers ?? {}).length === 0) {
      log('info', 'stopped', { daemon: options.name });
      process.exit(failed ? 1 : 0);
    }
  });

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { daemon: options.name, signal });
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    // A worker that cannot finish within its own deadline is not waited for for ever.
    setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    }, options.shutdownTimeoutMs + 5_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
