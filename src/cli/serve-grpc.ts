import { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import {
  addWriterOptions,
  engineOptionsFrom,
  idempotencyWindowOption,
  ingestTokenOption,
  hostOption,
  logLevelOption,
  loggableSettings,
  option,
  parseInteger,
  parsePort,
  portOption,
  shutdownTimeoutOption,
  readTokenOption,
  workersOption,
  storeOptionsFrom,
} from './options.js';
import type { LogLevel } from '../log.js';

export function serveGrpcCommand(): Command {
  const command = new Command('serve-grpc').description(
    'run the gRPC daemon (proto/svc/v1/ingest.proto): Ingest.Publish (stream), Ingest.PublishOne, Status.Get, health and reflection',
  );
  command
    .addOption(portOption(DEFAULTS.grpcPort))
    .addOption(hostOption())
    .addOption(workersOption())
    .addOption(option('--metrics-port <n>', 'serve GET /metrics (Prometheus) on this HTTP port; 0 picks a free one', 'SVC_METRICS_PORT').argParser(parsePort))
    .addOption(shutdownTimeoutOption())
    .addOption(logLevelOption());
  return addWriterOptions(command)
    .addOption(
      option('--max-message-bytes <n>', 'largest message a client may send (RESOURCE_EXHAUSTED beyond)', 'SVC_MAX_MESSAGE_BYTES')
        .default(4 * 1024 * 1024, '4MiB')
        .argParser(parseInteger(1)),
    )
    .addOption(
      option('--max-stream-batches <n>', 'batches of one Publish stream committed at once; the stream is not read beyond', 'SVC_MAX_STREAM_BATCHES')
        .default(1024)
        .argParser(parseInteger(1)),
    )
    .addOption(idempotencyWindowOption('idempotency_key'))
    .addOption(ingestTokenOption('require metadata authorization: Bearer <token> on Ingest'))
    .addOption(readTokenOption('require metadata authorization: Bearer <token> on Status'))
    .action(async (options, command: Command) => {
      // gRPC and protobufjs are loaded only by this command: every other one starts faster without them.
      const { runGrpcDaemon } = await import('../grpc/grpc-daemon.js');
      await runGrpcDaemon(
        {
          host: options.host,
          port: options.port,
          workers: options.workers,
          metricsPort: options.metricsPort,
          shutdownTimeoutMs: options.shutdownTimeout,
          logLevel: options.logLevel as LogLevel,
          settings: loggableSettings(options, command),
        },
        {
          ...storeOptionsFrom(options),
          ...engineOptionsFrom(options),
          threshold: options.threshold,
          maxMessageBytes: options.maxMessageBytes,
          maxStreamBatches: options.maxStreamBatches,
          idempotencyWindowMs: options.idempotencyWindow,
          ingestToken: options.ingestToken,
          readToken: options.readToken,
        },
      );
    });
}
