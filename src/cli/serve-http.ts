import { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import { createIngestApp } from '../http/apps.js';
import { runDaemon } from '../http/daemon.js';
import {
  addDaemonOptions,
  addStoreOptions,
  daemonOptionsFrom,
  ingestTokenOption,
  option,
  parseDuration,
  parseInteger,
  readTokenOption,
  storeOptionsFrom,
  maxReadLagOption,
  journalMaxOption,
  applyIntervalOption,
  journalLeaseOption,
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
      option('--commit-interval <duration>', 'under load, commit at most this often, so that batches grow larger', 'SVC_COMMIT_INTERVAL')
        .default(DEFAULTS.commitIntervalMs)
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
    .addOption(journalMaxOption())
    .addOption(applyIntervalOption())
    .addOption(journalLeaseOption())
    .addOption(maxReadLagOption())
    .addOption(ingestTokenOption())
    .addOption(readTokenOption())
    .action(async (options) => {
      await runDaemon(daemonOptionsFrom('serve-http', options), () =>
        createIngestApp({
          ...storeOptionsFrom(options),
          threshold: options.threshold,
          maxBatch: options.maxBatch,
          flushMs: options.flushMs,
          commitIntervalMs: options.commitInterval,
          maxPending: options.maxPending,
          maxInFlight: options.maxInFlight,
          maxBody: options.maxBody,
          maxBatchLines: options.maxBatchLines,
          maxBodyMemory: options.maxBodyMemory,
          ingestToken: options.ingestToken,
          readToken: options.readToken,
        }),
      );
    });
}
