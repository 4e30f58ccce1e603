import cluster from 'node:cluster';
import { createServer, type RequestListener, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runPrimary, stopWhenPrimaryGone } from '../cluster-primary.js';
import { metricsRoutes } from '../http/metrics-route.js';
import { createRouter } from '../http/router.js';
import { announce, log, setLogLevel, type LogLevel } from '../log.js';
import { createGrpcApp, type GrpcAppOptions } from './grpc-app.js';

/** How long the store may take to commit what is pending on shutdown, as serve-http gives it. */
const CLOSE_GRACE_MS = 5_000;

export interface GrpcDaemonOptions {
  host: string;
  port: number;
  /** Worker processes sharing the port (node:cluster); 1 serves in this process. */
  workers: number;
  /** Serve GET /metrics on this HTTP port, when given. */
  metricsPort: number | undefined;
  shutdownTimeoutMs: number;
  logLevel: LogLevel;
  /** Every option as given, secrets masked: logged at debug level when the daemon starts. */
  settings: Record<string, unknown>;
}

/**
 * Runs serve-grpc until SIGTERM or SIGINT: then health turns NOT_SERVING, new events are refused
 * (UNAVAILABLE), calls in flight get their answers within --shutdown-timeout, what is pending is
 * committed, and the process exits 0. With `workers > 1` this process is a node:cluster primary:
 * the workers share the gRPC port, and the primary serves the metrics of them all.
 */
export async function runGrpcDaemon(options: GrpcDaemonOptions, appOptions: GrpcAppOptions): Promise<void> {
  setLogLevel(options.logLevel);
  if (cluster.isPrimary) log('debug', 'settings', { daemon: 'serve-grpc', ...options.settings });
  if (options.workers > 1 && cluster.isPrimary) {
    // Before any worker exists, so that none can ask for the cluster's metrics unanswered.
    const metrics = (await import('../metrics/index.js')).serveClusterMetrics();
    const metricsServer = await serveMetrics(options, createRouter(metricsRoutes(metrics)));
    runPrimary({
      name: 'serve-grpc',
      workers: options.workers,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
      url: (port) => `${options.host}:${port}`,
      announced: metricsServer ? { metrics: metricsServer.url } : {},
    });
    return;
  }
  await serve(options, appOptions);
}

async function serve(options: GrpcDaemonOptions, appOptions: GrpcAppOptions): Promise<void> {
  const app = await createGrpcApp(appOptions);
  // Port taken: the store opened for nothing is closed, so that it leaves nothing behind.
  const port = await app.server.listen(options.host, options.port).catch(async (error: unknown) => {
    await app.close();
    throw error;
  });
  const where = { daemon: 'serve-grpc', url: `${options.host}:${port}` };
  // A worker's metrics are served by the primary, for the whole cluster.
  const metrics = cluster.isWorker ? undefined : await serveMetrics(options, app.metricsListener);
  if (cluster.isWorker) log('info', 'worker listening', where);
  else announce('listening', { ...where, ...(metrics ? { metrics: metrics.url } : {}) });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { daemon: 'serve-grpc', signal });
    app.drain();
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      app.server.shutdown().then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), options.shutdownTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (!drained) app.server.forceShutdown();
    // A store that hangs must not keep the process for ever; what it did not commit was never acknowledged.
    const closed = await Promise.race([app.close().then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), CLOSE_GRACE_MS))]);
    if (!closed) log('error', 'the store did not close in time; events still pending were not acknowledged', { daemon: 'serve-grpc' });
    metrics?.server.close();
    log('info', 'stopped', { daemon: 'serve-grpc', callsCutOff: !drained });
    process.exit(closed ? 0 : 1);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  stopWhenPrimaryGone(stop);
}

/** GET /metrics on --metrics-port, when it is set. */
async function serveMetrics(options: GrpcDaemonOptions, listener: RequestListener): Promise<{ server: HttpServer; url: string } | undefined> {
  if (options.metricsPort === undefined) return undefined;
  const server = createServer(listener);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(options.metricsPort, options.host, resolve));
  return { server, url: `http://${options.host}:${(server.address() as AddressInfo).port}/metrics` };
}
