import { Command } from 'commander';
import { ValidationError } from '../core/errors.js';
import { isKafkaUrl, parseKafkaUrl } from '../kafka/url.js';
import { announce, log, setLogLevel, type LogLevel } from '../log.js';
import { Materializer } from '../materialize/materializer.js';
import { logLevelOption, option, parseDuration, stateOption } from './options.js';

export function materializeCommand(): Command {
  const command = new Command('materialize').description(
    'count the events of a kafka:// store (PREFIX.events) per partition, publishing totals to PREFIX.counts exactly once',
  );
  return command
    .addOption(option('--store <url>', 'kafka://HOST:PORT[,HOST:PORT…]/PREFIX', 'SVC_STORE'))
    .addOption(stateOption('the local stores of the partitions this member counts (rebuilt from PREFIX.counts when given a partition)'))
    .addOption(
      option('--session-timeout <duration>', 'a member silent this long (killed) loses its partitions to the others', 'SVC_SESSION_TIMEOUT')
        .default(10_000, '10s')
        .argParser(parseDuration),
    )
    .addOption(
      option('--transaction-timeout <duration>', 'Kafka aborts a transaction left open this long by a killed member', 'SVC_TRANSACTION_TIMEOUT')
        .default(10_000, '10s')
        .argParser(parseDuration),
    )
    .addOption(logLevelOption())
    .action(async (options) => {
      if (!options.store || !isKafkaUrl(options.store)) throw new ValidationError('svc materialize needs --store kafka://HOST:PORT[,HOST:PORT…]/PREFIX');
      if (!options.state) throw new ValidationError('svc materialize needs --state DIR for the counts of its partitions');
      const location = parseKafkaUrl(options.store);
      setLogLevel(options.logLevel as LogLevel);
      const materializer = new Materializer({
        location,
        state: options.state,
        sessionTimeoutMs: options.sessionTimeout,
        transactionTimeoutMs: options.transactionTimeout,
      });
      await run(materializer, { store: options.store, state: options.state });
    });
}

/** Runs until SIGTERM or SIGINT, then leaves the group so that its partitions move at once. */
export async function run(materializer: Materializer, where: Record<string, unknown>): Promise<void> {
  await materializer.start();
  announce('materializing', where);
  let last = '';
  const report = setInterval(() => {
    const now = JSON.stringify(materializer.stats);
    if (now !== last) log('info', 'progress', { ...materializer.stats });
    last = now;
  }, 10_000);
  report.unref();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { signal });
    clearInterval(report);
    await materializer.stop();
    log('info', 'stopped', { ...materializer.stats });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
