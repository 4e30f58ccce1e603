import { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import { createReadApp } from '../http/apps.js';
import { runDaemon } from '../http/daemon.js';
import {
  addDaemonOptions,
  addStoreOptions,
  daemonOptionsFrom,
  option,
  parseInteger,
  readTokenOption,
  storeOptionsFrom,
  maxReadLagOption,
  thresholdOption,
} from './options.js';

export function serveReadCommand(): Command {
  const command = new Command('serve-read').description(
    'run the read daemon: GET /domains/:domain, with a cache of answers that can no longer change',
  );
  addDaemonOptions(command, DEFAULTS.readPort);
  addStoreOptions(command, { reads: true });
  return command
    .addOption(thresholdOption())
    .addOption(
      option('--cache-size <n>', 'not-catch-all answers kept in memory per process (0 disables)', 'SVC_CACHE_SIZE')
        .default(DEFAULTS.cacheSize)
        .argParser(parseInteger(0)),
    )
    .addOption(maxReadLagOption())
    .addOption(readTokenOption())
    .action(async (options, command: Command) => {
      await runDaemon(daemonOptionsFrom('serve-read', options, command), () =>
        createReadApp({ ...storeOptionsFrom(options), threshold: options.threshold, cacheSize: options.cacheSize, readToken: options.readToken }),
      );
    });
}
