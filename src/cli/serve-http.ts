import { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import { createIngestApp } from '../http/apps.js';
import { runDaemon } from '../http/daemon.js';
import {
  addDaemonOptions,
  addStoreOptions,
  daemonOptionsFrom,
  option,
  parseDuration,
  parseInteger,
  storeOptionsFrom,
  thresholdOption,
} from './options.js';

export function serveHttpCommand(): Command {
  const command = new Command('serve-http').description(
    'run the ingestion daemon: PUT /events/:domain/:type, POST /events, GET /domains/:domain',
  );
  addDaemonOptions(command, DEFAULTS.ingestPort);
  addStoreOptions(command, { writes: true });
  return command
    .addOption(thresholdOption())
    .addOption(
      option('--max-batch <n>', 'distinct domains per committed batch', 'SVC_MAX_BATCH')
        .default(DEFAULTS.maxBatch)
        .argParser(parseInteger(1)),
    )
    .addOption(
      option('--flush-ms <duration>', 'wait this long before committing the first events of an idle batch', 'SVC_FLUSH_MS')
        .default(DEFAULTS.flushMs)
        .argParser(parseDuration),
    )
    .addOption(
      option('--max-in-flight <n>', 'batches being committed at the same time', 'SVC_MAX_IN_FLIGHT')
        .default(DEFAULTS.maxInFlight)
        .argParser(parseInteger(1)),
    )
    .addOption(
      option('--max-pending <n>', 'events waiting for a commit before requests get 503', 'SVC_MAX_PENDING')
        .default(DEFAULTS.maxPending)
        .argParser(parseInteger(1)),
    )
    .addOption(
      option('--max-body <bytes>', 'largest POST /events body (413 beyond)', 'SVC_MAX_BODY')
        .default(DEFAULTS.maxBody)
        .argParser(parseInteger(1)),
    )
    .action(async (options) => {
      await runDaemon(daemonOptionsFrom('serve-http', options), () =>
        createIngestApp({
          ...storeOptionsFrom(options),
          threshold: options.threshold,
          maxBatch: options.maxBatch,
          flushMs: options.flushMs,
          maxPending: options.maxPending,
          maxInFlight: options.maxInFlight,
          maxBody: options.maxBody,
        }),
      );
    });
}
