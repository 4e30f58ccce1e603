import { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import { createReadApp } from '../http/apps.js';
import { runDaemon } from '../http/daemon.js';
import {
  addDaemonOptions,
  addStoreOptions,
  cacheUrl,
  daemonOptionsFrom,
  option,
  parseInteger,
  readTokenOption,
  storeOptionsFrom,
  maxReadLagOption,
  thresholdOption,
  stateOption,
} from './options.js';
import { ValidationError } from '../core/errors.js';
import { isKafkaUrl } from '../kafka/url.js';

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
    .addOption(
      option('--cache <url>', 'a Redis shared by every read node for not-catch-all answers: redis://HOST:PORT[/DB] or redis-cluster://HOST:PORT[,…]', 'SVC_CACHE').argParser(
        cacheUrl,
      ),
    )
    .addOption(maxReadLagOption())
    .addOption(readTokenOption())
    .addOption(stateOption('the local copy of PREFIX.counts (rebuilt at every start)'))
    .action(async (options, command: Command) => {
      if (isKafkaUrl(options.store)) {
        if (options.state === undefined) throw new ValidationError('serve-read on a kafka:// store needs --state DIR for its copy of the counts');
        // Each worker would rebuild the same directory: scale read nodes by starting more, each with its own DIR.
        if (options.workers > 1) throw new ValidationError('serve-read on a kafka:// store runs one process (--workers 1): start more read nodes instead');
      }
      await runDaemon(daemonOptionsFrom('serve-read', options, command), () =>
        createReadApp({ ...storeOptionsFrom(options), threshold: options.threshold, cacheSize: options.cacheSize, cache: options.cache, readToken: options.readToken }),
      );
    });
}
