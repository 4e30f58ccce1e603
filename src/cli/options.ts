import { type Command, InvalidArgumentError, Option } from 'commander';
import type { IngestEngineOptions } from '../http/apps.js';
import type { ReadPreferenceMode, W } from 'mongodb';
import type { DaemonOptions } from '../http/daemon.js';
import type { StoreOptions } from '../store/open-store.js';
import { DEFAULTS } from '../defaults.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { storeKind } from '../store/store-location.js';
import { checkCacheUrl } from '../store/redis/url.js';

/** Options shared by several commands, each readable from an SVC_* environment variable. */

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `expected an integer >= ${min}` : `expected an integer from ${min} to ${max}`);
    }
    return n;
  };
}

/** A TCP port to listen on; 0 picks a free one. */
export const parsePort = integer(0, 65_535);

/** A `--store` value that some store handles, checked before anything is opened. */
function storeLocation(value: string): string {
  try {
    storeKind(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
  return value;
}

/** A serve-read `--cache` value: a Redis URL. */
export function cacheUrl(value: string): string {
  try {
    return checkCacheUrl(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function duration(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError('expected a duration such as 500ms, 30s, 2m or 1h');
  const scale = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[match[2] ?? 'ms']!;
  // A bare number is milliseconds.
  return Number(match[1]) * scale;
}

/** A size in bytes: `4MiB`, `512KiB`, `1000000`. */
function size(value: string): number {
  const match = /^(\d+)\s*(B|KiB|MiB|GiB)?$/i.exec(value.trim());
  const scale = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }[(match?.[2] ?? 'b').toLowerCase()];
  if (!match || !scale || Number(match[1]) === 0) throw new InvalidArgumentError('expected a size such as 4MiB, 512KiB or 1000000 (bytes)');
  return Number(match[1]) * scale;
}

export const parseInteger = integer;
export const parseDuration = duration;
export const parseSize = size;

export function option(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(env);
}

const READ_PREFERENCES = ['primary', 'primaryPreferred', 'secondaryPreferred', 'nearest'];

function writeConcern(value: string): W {
  if (value === 'majority') return value;
  return integer(0)(value);
}

/**
 * The store options: `--store` always; the MongoDB ones and `--fsync` as the command needs them.
 * `writes` adds what only writers use, `reads` what only readers use.
 */
export function addStoreOptions(command: Command, use: { writes?: boolean; reads?: boolean } = {}): Command {
  command
    .addOption(
      option('--store <dir|uri>', 'embedded store directory, a mongodb:// or mongodb+srv:// connection string, kafka://HOST:PORT[,HOST:PORT…]/PREFIX, redis://HOST:PORT[/DB] or redis-cluster://HOST:PORT[,HOST:PORT…]', 'SVC_STORE')
        .default(DEFAULTS.store)
        .argParser(storeLocation),
    )
    .addOption(option('--collection <name>', 'MongoDB collection', 'SVC_COLLECTION').default(DEFAULTS.collection))
    .addOption(
      option('--store-timeout <duration>', 'MongoDB, Kafka, Redis: fail an operation that finds no reachable server (Redis: or gets no answer) within this time', 'SVC_STORE_TIMEOUT')
        .default(DEFAULTS.storeTimeoutMs, '5s')
        .argParser(duration),
    );
  if (use.writes) {
    command
      .addOption(
        option('--write-concern <w>', 'MongoDB write concern: majority or a number of members', 'SVC_WRITE_CONCERN')
          .default(DEFAULTS.writeConcern)
          .argParser(writeConcern),
      )
      .addOption(
        option('--redis-wait <n>', 'Redis: acknowledge a batch only once n replicas have it (WAIT), else 503 in doubt', 'SVC_REDIS_WAIT')
          .default(DEFAULTS.redisWait)
          .argParser(integer(0)),
      )
      .addOption(
        option('--fsync', 'embedded store: acknowledge only once flushed to disk (survives power loss)', 'SVC_FSYNC'),
      );
  }
  if (use.reads) {
    command.addOption(
      option('--read-preference <mode>', 'MongoDB read preference (status is near-real-time on secondaries)', 'SVC_READ_PREFERENCE')
        .choices(READ_PREFERENCES)
        .default(DEFAULTS.readPreference),
    );
  }
  return command;
}

/** Embedded store, serve-http: how much journal may wait to be applied before events get 503. */
export const journalMaxOption = () =>
  option('--journal-max <bytes>', 'embedded store: journal not yet applied to LMDB that one process may hold (503 beyond)', 'SVC_JOURNAL_MAX')
    .default(DEFAULTS.journalMaxBytes, '96MiB')
    .argParser(size);
/** Embedded store, serve-http: how often the journal is applied to LMDB at the least. */
export const applyIntervalOption = () =>
  option('--apply-interval <duration>', 'embedded store: apply the journal to LMDB at least this often (larger batches cost LMDB less per domain)', 'SVC_APPLY_INTERVAL')
    .default(DEFAULTS.applyIntervalMs, '30s')
    .argParser(duration);
/** Embedded store, serve-http: how long a writer may be silent before its journal is taken over. */
export const journalLeaseOption = () =>
  option('--journal-lease <duration>', 'embedded store: a writer silent this long (killed) has its journal applied by another serve-http', 'SVC_JOURNAL_LEASE')
    .default(DEFAULTS.journalLeaseMs, '15s')
    .argParser(duration);
/** Embedded store, daemons: how stale their view of other processes' events may get. */
export const maxReadLagOption = () =>
  option('--max-read-lag <duration>', 'embedded store: read the journals of other processes (workers, serve-http) this often', 'SVC_MAX_READ_LAG')
    .default(DEFAULTS.maxReadLagMs, '100ms')
    .argParser(duration);

export function storeOptionsFrom(options: Record<string, unknown>): StoreOptions {
  return {
    store: options.store as string,
    journalMaxBytes: options.journalMax as number | undefined,
    applyIntervalMs: options.applyInterval as number | undefined,
    journalLeaseMs: options.journalLease as number | undefined,
    maxReadLagMs: options.maxReadLag as number | undefined,
    collection: options.collection as string,
    storeTimeoutMs: options.storeTimeout as number,
    writeConcern: options.writeConcern as W | undefined,
    redisWait: options.redisWait as number | undefined,
    fsync: Boolean(options.fsync),
    readPreference: options.readPreference as ReadPreferenceMode | undefined,
    partitions: options.partitions as number | undefined,
    state: options.state as string | undefined,
  };
}
export const thresholdOption = () =>
  option('--threshold <n>', 'deliveries above which a domain without bounces is a catch-all', 'SVC_THRESHOLD')
    .default(DEFAULTS.threshold)
    .argParser(integer(0));
export const hostOption = () =>
  option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', 'SVC_HOST').default(DEFAULTS.host);
export const portOption = (port: number) =>
  option('--port <n>', 'port to listen on (0 picks a free one)', 'SVC_PORT').default(port).argParser(parsePort);
export const workersOption = () =>
  option('--workers <n>', 'worker processes sharing the port (node:cluster)', 'SVC_WORKERS')
    .default(DEFAULTS.workers)
    .argParser(integer(1));
const requestTimeoutOption = () =>
  option('--request-timeout <duration>', 'cut off a request not fully received within this time', 'SVC_REQUEST_TIMEOUT')
    .default(DEFAULTS.requestTimeoutMs, '30s')
    .argParser(duration);
const keepAliveTimeoutOption = () =>
  option('--keep-alive-timeout <duration>', 'close an idle keep-alive connection after this time', 'SVC_KEEP_ALIVE_TIMEOUT')
    .default(DEFAULTS.keepAliveTimeoutMs, '5s')
    .argParser(duration);
export const shutdownTimeoutOption = () =>
  option('--shutdown-timeout <duration>', 'on SIGTERM, wait at most this long for requests in flight', 'SVC_SHUTDOWN_TIMEOUT')
    .default(DEFAULTS.shutdownTimeoutMs, '30s')
    .argParser(duration);
export const idempotencyWindowOption = (what: string) =>
  option('--idempotency-window <duration>', `how long an ${what} and its answer are kept: a repeat within it counts nothing`, 'SVC_IDEMPOTENCY_WINDOW')
    .default(DEFAULTS.idempotencyWindowMs, '24h')
    .argParser(duration);
export const jsonOption = () => new Option('--json', 'print one JSON object per line');
export const logLevelOption = () =>
  option('--log-level <level>', 'least severe log line printed (the "listening" line always is)', 'SVC_LOG_LEVEL')
    .choices(LOG_LEVELS)
    .default('info');
// Tokens are better passed in the environment: a command line is visible to every user in `ps`.
// The same variables configure the daemons and the commands that talk to them.
export const ingestTokenOption = (description = 'require Authorization: Bearer <token> on the ingestion routes') =>
  option('--ingest-token <token>', description, 'SVC_INGEST_TOKEN');
export const readTokenOption = (description = 'require Authorization: Bearer <token> on GET /domains/:domain') =>
  option('--read-token <token>', description, 'SVC_READ_TOKEN');

/** The listening, process and timeout options every daemon takes. */
export function addDaemonOptions(command: Command, port: number): Command {
  return command
    .addOption(portOption(port))
    .addOption(hostOption())
    .addOption(workersOption())
    .addOption(requestTimeoutOption())
    .addOption(keepAliveTimeoutOption())
    .addOption(shutdownTimeoutOption())
    .addOption(logLevelOption());
}

export function daemonOptionsFrom(name: string, options: Record<string, unknown>, command: Command): DaemonOptions {
  return {
    name,
    host: options.host as string,
    port: options.port as number,
    workers: options.workers as number,
    requestTimeoutMs: options.requestTimeout as number,
    keepAliveTimeoutMs: options.keepAliveTimeout as number,
    shutdownTimeoutMs: options.shutdownTimeout as number,
    logLevel: options.logLevel as LogLevel,
    settings: loggableSettings(options, command),
  };
}

/**
 * Every option's effective value for the debug log: each token shown only as set or unset, and
 * the password of a connection string (`mongodb://user:password@host`) masked. Options the command
 * declares but nobody set are absent from `options`, hence the command.
 */
export function loggableSettings(options: Record<string, unknown>, command: Command): Record<string, unknown> {
  const masked = (name: string, value: unknown) => {
    if (/token/i.test(name)) return value ? 'set' : 'unset';
    if (value === undefined) return 'unset';
    return typeof value === 'string' ? value.replace(/(\/\/[^:@/]*):[^@/]*@/, '$1:***@') : value;
  };
  const names = new Set([...command.options.map((declared) => declared.attributeName()), ...Object.keys(options)]);
  return Object.fromEntries([...names].map((name) => [name, masked(name, options[name])]));
}

/** How the counter engine batches and commits: serve-http and serve-grpc take the same options. */
export function addEngineOptions(command: Command): Command {
  return command
    .addOption(option('--max-batch <n>', 'distinct domains per committed batch', 'SVC_MAX_BATCH').default(DEFAULTS.maxBatch).argParser(integer(1)))
    .addOption(
      option('--flush-ms <duration>', 'wait this long before committing the first events of an idle batch', 'SVC_FLUSH_MS')
        .default(DEFAULTS.flushMs)
        .argParser(duration),
    )
    .addOption(
      option('--commit-interval <duration>', 'under load, commit at most this often, so that batches grow larger', 'SVC_COMMIT_INTERVAL')
        .default(DEFAULTS.commitIntervalMs)
        .argParser(duration),
    )
    .addOption(
      option('--max-in-flight <n>', `batches being committed at the same time (default: the store's, 4 on Redis, ${DEFAULTS.maxInFlight} elsewhere)`, 'SVC_MAX_IN_FLIGHT').argParser(integer(1)),
    )
    .addOption(
      option('--max-pending <n>', 'events waiting for a commit before new ones are refused (503, RESOURCE_EXHAUSTED)', 'SVC_MAX_PENDING')
        .default(DEFAULTS.maxPending)
        .argParser(integer(1)),
    );
}

export function engineOptionsFrom(options: Record<string, unknown>): IngestEngineOptions {
  return {
    maxBatch: options.maxBatch as number,
    flushMs: options.flushMs as number,
    commitIntervalMs: options.commitInterval as number,
    maxPending: options.maxPending as number,
    maxInFlight: options.maxInFlight as number | undefined,
  };
}

/** The embedded store's journal, for the daemons that write: serve-http and serve-grpc. */
export function addJournalOptions(command: Command): Command {
  return command.addOption(journalMaxOption()).addOption(applyIntervalOption()).addOption(journalLeaseOption()).addOption(maxReadLagOption());
}

/** Everything a daemon that writes events takes: the store, the engine, the journal, the threshold. */
export function addWriterOptions(command: Command): Command {
  addStoreOptions(command, { writes: true });
  addEngineOptions(command);
  addJournalOptions(command);
  return command.addOption(thresholdOption());
}

/** Kafka: the directory of a process's local store (materialize, serve-read). */
export const stateOption = (what: string) => option('--state <dir>', `kafka:// store: directory of ${what}`, 'SVC_STATE');
