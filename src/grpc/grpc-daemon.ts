import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { announce, log, setLogLevel, type LogLevel } from '../log.js';
import { createGrpcApp, type GrpcAppOptions } from './grpc-app.js';

export interface GrpcDaemonOptions {
  host: string;
  port: number;
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
 * committed, and the process exits 0.
 */
export async function runGrpcDaemon(options: GrpcDaemonOptions, appOptions: GrpcAppOptions): Promise<void> {
  setLogLevel(options.logLevel);
  log('debug', 'settings', { daemon: 'serve-grpc', ...options.settings });
  const app = await createGrpcApp(appOptions);
  const port = await new Promise<number>((resolve, reject) =>
    app.server.bindAsync(`${options.host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  let metrics: HttpServer | undefined;
  let metricsUrl: string | undefined;
  if (options.metricsPort !== undefined) {
    metrics = createServer(app.metricsListener);
    await new Promise<void>((resolve, reject) => metrics!.once('error', reject).listen(options.metricsPort, options.host, resolve));
    metricsUrl = `http://${options.host}:${(metrics.address() as AddressInfo).port}/metrics`;
  }
  announce('listening', { daemon: 'serve-grpc', url: `${options.host}:${port}`, ...(metricsUrl ? { metrics: metricsUrl } : {}) });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { daemon: 'serve-grpc', signal });
    app.drain();
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), options.shutdownTimeoutMs);
      app.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!drained) app.server.forceShutdown();
    await app.close();
    metrics?.close();
    log('info', 'stopped', { daemon: 'serve-grpc', callsCutOff: !drained });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
