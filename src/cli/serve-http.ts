import { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import { createIngestApp } from '../http/apps.js';
import { runDaemon } from '../http/daemon.js';
import {
  addDaemonOptions,
  addWriterOptions,
  engineOptionsFrom,
  daemonOptionsFrom,
  ingestTokenOption,
  idempotencyWindowOption,
  option,
  parseInteger,
  readTokenOption,
  storeOptionsFrom,
} from './options.js';

export function serveHttpCommand(): Command {
  const command = new Command('serve-http').description(
    'run the ingestion daemon: PUT /events/:domain/:type, POST /events, GET /domains/:domain',
  );
  addDaemonOptions(command, DEFAULTS.ingestPort);
  return addWriterOptions(command)
    .addOption(
      option('--max-body <bytes>', 'largest POST /events body (413 beyond)', 'SVC_MAX_BODY')
        .default(DEFAULTS.maxBody)
        .argParser(parseInteger(1)),
    )
    .addOption(
      option('--max-batch-lines <n>', 'most lines in one POST /events body (413 beyond)', 'SVC_MAX_BATCH_LINES')
        .default(DEFAULTS.maxBatchLines)
        .argParser(parseInteger(1)),
    )
    .addOption(
      option('--max-body-memory <bytes>', 'POST bodies held in memory at once, in total (503 beyond; at least --max-body)', 'SVC_MAX_BODY_MEMORY')
        .default(DEFAULTS.maxBodyMemory)
        .argParser(parseInteger(1)),
    )
    .addOption(idempotencyWindowOption('Idempotency-Key'))
    .addOption(ingestTokenOption())
    .addOption(readTokenOption())
    .action(async (options, command: Command) => {
      await runDaemon(daemonOptionsFrom('serve-http', options, command), () =>
        createIngestApp({
          ...storeOptionsFrom(options),
          ...engineOptionsFrom(options),
          threshold: options.threshold,
          maxBody: options.maxBody,
          maxBatchLines: options.maxBatchLines,
          maxBodyMemory: options.maxBodyMemory,
          idempotencyWindowMs: options.idempotencyWindow,
          ingestToken: options.ingestToken,
          readToken: options.readToken,
        }),
      );
    });
}
