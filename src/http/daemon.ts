import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runPrimary, stopWhenPrimaryGone } from '../cluster-primary.js';
import { announce, log, setLogLevel, type LogLevel } from '../log.js';
import type { App } from './apps.js';
import { answerClientError } from './client-error.js';
import { httpServerOptions } from './server-options.js';

/** At least this long for the store to commit what is pending on shutdown. */
const CLOSE_GRACE_MS = 5_000;

export interface DaemonOptions {
  name: string;
  host: string;
  port: number;
  workers: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  shutdownTimeoutMs: number;
  logLevel: LogLevel;
  /** Every option as given, secrets masked: logged at debug level when the daemon starts. */
  settings?: Record<string, unknown>;
}

/**
 * Runs an HTTP daemon in this process, or with `workers > 1` as a node:cluster primary whose
 * workers share the listening socket. Resolves once it is listening; the process exits 0 after
 * a graceful shutdown on SIGTERM or SIGINT.
 */
export async function runDaemon(options: DaemonOptions, createApp: () => Promise<App>): Promise<void> {
  setLogLevel(options.logLevel);
  if (cluster.isPrimary) log('debug', 'settings', { daemon: options.name, ...options.settings });
  if (options.workers > 1 && cluster.isPrimary) {
    // Before any worker exists, so that none can ask for the cluster's metrics unanswered.
    (await import('../metrics/index.js')).serveClusterMetrics();
    runPrimary({ ...options, url: (port) => `http://${options.host}:${port}` });
    return;
  }
  await serve(options, createApp);
}

async function serve(options: DaemonOptions, createApp: () => Promise<App>): Promise<void> {
  const app = await createApp();
  let active = 0;
  let draining = false;
  // One listener for every response rather than a closure each.
  const finished = () => active--;
  const server = createServer(
    httpServerOptions(options),
    (req, res) => {
      active++;
      res.on('close', finished);
      // Clients move to another process while this one drains.
      if (draining) res.setHeader('connection', 'close');
      app.listener(req, res);
    },
  );
  // Parse errors, oversized headers and timeouts get a JSON answer like every other error.
  server.on('clientError', answerClientError);
  try {
    await listen(server, options.port, options.host);
  } catch (error) {
    // Port taken: the store opened for nothing is closed, so that it leaves nothing behind (the
    // embedded store's empty journal segment).
    await app.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  const where = { daemon: options.name, url: `http://${options.host}:${port}` };
  if (cluster.isWorker) log('info', 'worker listening', where);
  else announce('listening', where);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    draining = true;
    app.drain?.();
    log('info', 'stopping', { daemon: options.name, signal });
    const deadline = Date.now() + options.shutdownTimeoutMs;
    server.close();
    server.closeIdleConnections();
    // Requests in flight are waiting for their batch; let them get their answer.
    while (active > 0 && Date.now() < deadline) await sleep(10);
    // A store that hangs must not keep the process for ever; what it did not commit was never acknowledged.
    const closed = await Promise.race([app.close().then(() => true), sleep(Math.max(CLOSE_GRACE_MS, deadline - Date.now())).then(() => false)]);
    server.closeAllConnections();
    if (!closed) log('error', 'the store did not close in time; events still pending were not acknowledged', { daemon: options.name });
    log('info', 'stopped', { daemon: options.name, unfinishedRequests: active });
    process.exit(closed ? 0 : 1);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  stopWhenPrimaryGone(stop);
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
