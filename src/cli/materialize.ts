import { Command } from 'commander';
import { ValidationError } from '../core/errors.js';
import { isKafkaUrl, parseKafkaUrl } from '../kafka/url.js';
import { announce, log, setLogLevel, type LogLevel } from '../log.js';
import { parseFieldPath, parseMatchers, type EventMapping } from '../materialize/event-mapping.js';
import { Materializer } from '../materialize/materializer.js';
import { SourceForwarder } from '../materialize/source-forwarder.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostOption, logLevelOption, option, parseDuration, parsePort, stateOption } from './options.js';

const MAPPING_OPTIONS = ['domainField', 'recipientField', 'typeField', 'delivered', 'bounced', 'deadLetter'] as const;

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
    .addOption(option('--source <topic>', 'also forward an existing topic of JSON events (one per record) into PREFIX.events, exactly once', 'SVC_SOURCE'))
    .addOption(option('--domain-field <path>', 'with --source: field holding the domain (a.b for nested)', 'SVC_DOMAIN_FIELD').default('domain'))
    .addOption(option('--recipient-field <path>', 'with --source: field holding an address (user@Example.COM) to take the domain from, instead', 'SVC_RECIPIENT_FIELD'))
    .addOption(option('--type-field <path>', 'with --source: field holding the event name', 'SVC_TYPE_FIELD').default('type'))
    .addOption(option('--delivered <names>', 'with --source: event names counted as delivered, comma-separated; name[field=value] adds a condition', 'SVC_DELIVERED').default('delivered'))
    .addOption(option('--bounced <names>', 'with --source: event names counted as bounced, e.g. bounced,failed[severity=permanent]', 'SVC_BOUNCED').default('bounced'))
    .addOption(option('--dead-letter <topic>', 'with --source: copy records that do not parse or map to this topic', 'SVC_DEAD_LETTER'))
    .addOption(option('--metrics-port <n>', 'serve GET /metrics (Prometheus) on this HTTP port; 0 picks a free one', 'SVC_METRICS_PORT').argParser(parsePort))
    .addOption(hostOption())
    .addOption(logLevelOption())
    .action(async (options, cmd: Command) => {
      if (!options.store || !isKafkaUrl(options.store)) throw new ValidationError('svc materialize needs --store kafka://HOST:PORT[,HOST:PORT…]/PREFIX');
      if (!options.state) throw new ValidationError('svc materialize needs --state DIR for the counts of its partitions');
      const location = parseKafkaUrl(options.store);
      const given = MAPPING_OPTIONS.filter((name) => cmd.getOptionValueSource(name) === 'cli' || cmd.getOptionValueSource(name) === 'env');
      if (!options.source && given.length > 0) throw new ValidationError(`--${kebab(given[0]!)} needs --source TOPIC`);
      const mapping: EventMapping = {
        domainField: options.recipientField ? undefined : parseFieldPath(options.domainField),
        recipientField: options.recipientField ? parseFieldPath(options.recipientField) : undefined,
        typeField: parseFieldPath(options.typeField),
        delivered: parseMatchers(options.delivered),
        bounced: parseMatchers(options.bounced),
      };
      setLogLevel(options.logLevel as LogLevel);
      // A consumer kafkajs gave up on counts nothing more: exit non-zero so that a supervisor restarts the member.
      const onFatal = (error: Error) => {
        log('error', 'the consumer stopped; exiting', { error: String(error) });
        process.exit(1);
      };
      const timeouts = { sessionTimeoutMs: options.sessionTimeout, transactionTimeoutMs: options.transactionTimeout, onFatal };
      const parts: Part[] = [];
      const forwarder = options.source
        ? new SourceForwarder({ location, source: options.source, mapping, deadLetterTopic: options.deadLetter, ...timeouts })
        : undefined;
      if (forwarder) parts.push({ name: 'forwarded', start: () => forwarder.start(), stop: () => forwarder.stop(), stats: () => forwarder.stats });
      const materializer = new Materializer({ location, state: options.state, ...timeouts });
      parts.push({ name: 'counted', start: () => materializer.start(), stop: () => materializer.stop(), stats: () => materializer.stats });
      const metrics =
        options.metricsPort === undefined
          ? undefined
          : await serveMetrics(options.host, options.metricsPort, { counted: () => materializer.stats, forwarded: forwarder && (() => forwarder.stats) });
      await run(parts, { store: options.store, state: options.state, source: options.source, metrics });
    });
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

interface Part {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): object;
}

/** Runs until SIGTERM or SIGINT, then leaves the groups so that their partitions move at once. */
async function run(parts: Part[], where: Record<string, unknown>): Promise<void> {
  for (const part of parts) await part.start();
  announce('materializing', where);
  const stats = () => Object.fromEntries(parts.map((part) => [part.name, part.stats()]));
  let last = '';
  const report = setInterval(() => {
    const now = JSON.stringify(stats());
    if (now !== last) log('info', 'progress', stats());
    last = now;
  }, 10_000);
  report.unref();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { signal });
    clearInterval(report);
    for (const part of parts) await part.stop();
    log('info', 'stopped', stats());
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** GET /metrics on --metrics-port; resolves with its URL. prom-client is loaded only then. */
async function serveMetrics(host: string, port: number, stats: import('../metrics/materialize-metrics.js').MaterializeStatsSource): Promise<string> {
  const { Registry, collectDefaultMetrics } = await import('prom-client');
  const { materializeMetrics } = await import('../metrics/materialize-metrics.js');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  materializeMetrics(registry, stats);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
  });
  server.unref();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return `http://${host}:${(server.address() as AddressInfo).port}/metrics`;
}
