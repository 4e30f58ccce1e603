import { ValidationError } from '../core/errors.js';
import { DEFAULTS } from '../defaults.js';
import { MAX_DOMAINS } from '../workload/domain-names.js';
import { DEFAULT_WORKLOAD_OPTIONS, DISTRIBUTIONS, type Distribution } from '../workload/workload.js';

export const MODES = ['event', 'batch', 'stream'] as const;
/**
 * event: one `PUT /events/:domain/:type` (gRPC: PublishOne) per event; batch: `POST /events` with
 * batchSize NDJSON lines (gRPC: PublishOne with batchSize events); stream (gRPC only): batches of
 * batchSize events on `connections` Publish streams.
 */
export type Mode = (typeof MODES)[number];
export const PROTOCOLS = ['http', 'grpc'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export interface LoadtestOptions {
  /** Origin of the service under test, e.g. http://127.0.0.1:8080; with gRPC, host:port. */
  target: string;
  protocol: Protocol;
  /** Requests per second (a batch is one request). */
  rps: number;
  durationMs: number;
  /** Run this long first and leave it out of the results. */
  warmupMs: number;
  connections: number;
  /** Requests in flight per connection. */
  pipelining: number;
  /** Per request: connecting, waiting for the headers, waiting between body chunks. */
  timeoutMs: number;
  mode: Mode;
  batchSize: number;
  /** Share of requests that are `GET /domains/:domain` reads. */
  readRatio: number;
  domains: number;
  distribution: Distribution;
  bounceRatio: number;
  seed: number;
  /** Read every touched domain back at the end and compare with what was acknowledged. */
  verify: boolean;
  /** Where to read counts back; '' means the target. */
  verifyUrl: string;
  /** Bearer tokens for the ingestion routes and for reads; '' sends none. */
  ingestToken: string;
  readToken: string;
  /** A request sent more than this after its due time counts as late. */
  lateToleranceMs: number;
  /** Send an Idempotency-Key with every ingestion request, so that a retry is never counted twice. */
  idempotencyKeys: boolean;
  /** Send an ingestion request again, after a pause, when it got no answer, a 409 or a 5xx; at most this many times. */
  retries: number;
}

/** Every default of the load test, shown by the CLI's --help and used by the library. */
export const DEFAULT_LOADTEST_OPTIONS = {
  target: `http://${DEFAULTS.host}:${DEFAULTS.ingestPort}`,
  protocol: 'http',
  rps: 1000,
  durationMs: 30_000,
  warmupMs: 0,
  connections: 16,
  pipelining: 1,
  timeoutMs: 10_000,
  mode: 'event',
  batchSize: 100,
  readRatio: 0,
  domains: DEFAULT_WORKLOAD_OPTIONS.domains,
  distribution: DEFAULT_WORKLOAD_OPTIONS.distribution,
  bounceRatio: DEFAULT_WORKLOAD_OPTIONS.bounceRatio,
  seed: DEFAULT_WORKLOAD_OPTIONS.seed,
  verify: false,
  verifyUrl: '',
  ingestToken: '',
  readToken: '',
  lateToleranceMs: 10,
  idempotencyKeys: false,
  retries: 0,
} as const satisfies LoadtestOptions;

/** Fills in the defaults and checks every option once, before anything is sent. */
export function resolveLoadtestOptions(input: Partial<LoadtestOptions>): Readonly<LoadtestOptions> {
  const options: LoadtestOptions = { ...DEFAULT_LOADTEST_OPTIONS, ...input };
  oneOf('protocol', options.protocol, PROTOCOLS);
  const address = options.protocol === 'grpc' ? hostPort : origin;
  options.target = address('target', options.target);
  options.verifyUrl = options.verifyUrl ? address('verifyUrl', options.verifyUrl) : options.target;
  if (options.mode === 'stream' && options.protocol !== 'grpc') throw new ValidationError('mode: stream needs --protocol grpc');
  positive('rps', options.rps);
  positive('durationMs', options.durationMs);
  atLeast('warmupMs', options.warmupMs, 0);
  positive('timeoutMs', options.timeoutMs);
  atLeast('lateToleranceMs', options.lateToleranceMs, 0);
  integer('connections', options.connections, 1, 10_000);
  integer('pipelining', options.pipelining, 1, 1_000);
  integer('batchSize', options.batchSize, 1, 1_000_000);
  integer('domains', options.domains, 1, MAX_DOMAINS);
  integer('seed', options.seed, 0, 2 ** 32 - 1);
  integer('retries', options.retries, 0, 100);
  ratio('readRatio', options.readRatio);
  ratio('bounceRatio', options.bounceRatio);
  oneOf('mode', options.mode, MODES);
  oneOf('distribution', options.distribution, DISTRIBUTIONS);
  return options;
}

function origin(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(`${name}: ${JSON.stringify(value)} is not a URL`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.hash) {
    throw new ValidationError(`${name}: expected an http(s) origin such as http://127.0.0.1:8080, without a path`);
  }
  return url.origin;
}

/** A gRPC target: host:port (a grpc:// prefix is allowed and dropped). */
function hostPort(name: string, value: string): string {
  const target = value.replace(/^grpc:\/\//, '');
  if (!/^[^\s/:]+:\d+$/.test(target) && !/^\[[0-9a-f:]+\]:\d+$/i.test(target)) {
    throw new ValidationError(`${name}: expected host:port for gRPC, such as 127.0.0.1:8082`);
  }
  return target;
}

function positive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new ValidationError(`${name}: expected a number > 0`);
}

function atLeast(name: string, value: number, min: number): void {
  if (!(Number.isFinite(value) && value >= min)) throw new ValidationError(`${name}: expected a number >= ${min}`);
}

function integer(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(`${name}: expected an integer from ${min} to ${max}`);
  }
}

function ratio(name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) throw new ValidationError(`${name}: expected a number from 0 to 1`);
}

function oneOf(name: string, value: string, choices: readonly string[]): void {
  if (!choices.includes(value)) throw new ValidationError(`${name}: expected one of ${choices.join(', ')}`);
}
