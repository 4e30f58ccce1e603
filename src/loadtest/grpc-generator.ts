import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { DomainCounts } from '../core/status.js';
import type { GrpcClients } from '../client/grpc-clients.js';
import { Random, mix32 } from '../workload/random.js';
import type { Workload, WorkloadEvent } from '../workload/workload.js';
import { retryDelayMs } from './generator.js';
import type { Ledger, Outcome } from './ledger.js';
import type { LoadtestOptions } from './options.js';
import type { PacedSender } from './pacer.js';
import type { Stats } from './stats.js';

const READ_DECISIONS = 0x52454144;
const TYPES = { delivered: 'EVENT_TYPE_DELIVERED', bounced: 'EVENT_TYPE_BOUNCED' } as const;

/**
 * A gRPC status as the report's status codes show it: the HTTP status that gRPC's own mapping
 * pairs with it (OK 200, INVALID_ARGUMENT 400, UNAUTHENTICATED 401, RESOURCE_EXHAUSTED 429,
 * UNAVAILABLE 503, …), so that one report reads the same for both protocols.
 */
const HTTP_EQUIVALENT: Partial<Record<grpc.status, number>> = {
  [grpc.status.OK]: 200,
  [grpc.status.INVALID_ARGUMENT]: 400,
  [grpc.status.UNAUTHENTICATED]: 401,
  [grpc.status.PERMISSION_DENIED]: 403,
  [grpc.status.NOT_FOUND]: 404,
  [grpc.status.ABORTED]: 409,
  [grpc.status.FAILED_PRECONDITION]: 422,
  [grpc.status.RESOURCE_EXHAUSTED]: 429,
  [grpc.status.UNIMPLEMENTED]: 501,
  [grpc.status.UNAVAILABLE]: 503,
};

interface Ack {
  batch: number;
  accepted: number;
  rejections: { index: number }[];
}

/** Sent again by --retries (with the same idempotency_key): those of HTTP's 409, 429, 5xx and no answer. */
const RETRYABLE = new Set([
  grpc.status.ABORTED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.INTERNAL,
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.UNKNOWN,
]);

interface BatchMessage {
  events: { domain: string; type: string }[];
  idempotency_key?: string;
}

interface Exchange {
  due: number;
  sentAt: number;
  events: WorkloadEvent[];
  /** Kept for --retries; undefined for a read. */
  batch?: BatchMessage;
  retriesLeft: number;
  /** Times sent: every one before the last may have been counted, unless the batch has a key. */
  attempts: number;
}

/** One Publish stream: its batches in flight, acked in the order they were written. */
interface Stream {
  call: grpc.ClientDuplexStream<unknown, Ack>;
  pending: Exchange[];
}

/** Status/Get for one domain, for reads and for --verify. */
export function grpcReadCounts(clients: GrpcClients, token: string, timeoutMs: number): (domain: string) => Promise<DomainCounts> {
  const metadata = clients.metadata(token);
  return (domain) =>
    new Promise((resolve, reject) =>
      clients.status.Get!({ domain }, metadata, { deadline: Date.now() + timeoutMs }, (error: grpc.ServiceError | null, reply: DomainCounts) =>
        error ? reject(new Error(`${grpc.status[error.code]}: ${error.details}`)) : resolve({ delivered: reply.delivered, bounced: reply.bounced }),
      ),
    );
}

/**
 * `svc loadtest --protocol grpc`: due times become PublishOne calls (modes event and batch) or
 * batches on `connections` Publish streams (mode stream), with at most connections × pipelining
 * in flight, and the same records as over HTTP.
 */
export { grpcClients, type GrpcClients } from '../client/grpc-clients.js';

export class GrpcGenerator implements PacedSender {
  readonly #clients: GrpcClients;
  readonly #workload: Workload;
  readonly #stats: Stats;
  readonly #ledger: Ledger | undefined;
  readonly #options: Readonly<LoadtestOptions>;
  readonly #readDecisions: Random;
  readonly #onFree: () => void;
  readonly #slots: number;
  readonly #ingestMetadata: grpc.Metadata;
  readonly #readMetadata: grpc.Metadata;
  readonly #streams: (Stream | undefined)[];
  /** With --idempotency-keys: keys are this run's id and a sequence number, so that no two runs share one. */
  readonly #keyPrefix: string | undefined;
  #keySeq = 0;
  #nextStream = 0;
  #inFlight = 0;
  #idle: (() => void) | undefined;

  constructor(options: { clients: GrpcClients; workload: Workload; stats: Stats; ledger: Ledger | undefined; options: Readonly<LoadtestOptions>; onFree: () => void }) {
    this.#clients = options.clients;
    this.#workload = options.workload;
    this.#stats = options.stats;
    this.#ledger = options.ledger;
    this.#options = options.options;
    this.#readDecisions = new Random(mix32(options.options.seed ^ READ_DECISIONS));
    this.#onFree = options.onFree;
    this.#slots = options.options.connections * options.options.pipelining;
    this.#ingestMetadata = this.#clients.metadata(options.options.ingestToken);
    this.#readMetadata = this.#clients.metadata(options.options.readToken);
    this.#streams = new Array(options.options.mode === 'stream' ? options.options.connections : 0).fill(undefined);
    this.#keyPrefix = options.options.idempotencyKeys ? randomUUID() : undefined;
  }

  ready(): boolean {
    return this.#inFlight < this.#slots;
  }

  send(due: number, queued: boolean): void {
    const now = performance.now();
    const { mode, batchSize, readRatio, timeoutMs } = this.#options;
    this.#inFlight++;
    if (readRatio > 0 && this.#readDecisions.next() < readRatio) {
      const exchange: Exchange = { due, sentAt: now, events: [], retriesLeft: 0, attempts: 1 };
      this.#stats.sentOne(due, now, 0, queued);
      const domain = this.#workload.name(this.#workload.sampleDomain());
      this.#clients.status.Get!({ domain }, this.#readMetadata, { deadline: Date.now() + timeoutMs }, (error: grpc.ServiceError | null) => this.#finish(exchange, error, undefined));
      return;
    }
    const events = Array.from({ length: mode === 'event' ? 1 : batchSize }, () => this.#workload.next()!);
    const batch: BatchMessage = { events: events.map((event) => ({ domain: this.#workload.name(event.index), type: TYPES[event.type] })) };
    if (this.#keyPrefix !== undefined) batch.idempotency_key = `${this.#keyPrefix}-${this.#keySeq++}`;
    const exchange: Exchange = { due, sentAt: now, events, batch, retriesLeft: this.#options.retries, attempts: 0 };
    this.#stats.sentOne(due, now, events.length, queued);
    this.#dispatch(exchange);
  }

  #dispatch(exchange: Exchange): void {
    exchange.attempts++;
    if (this.#options.mode === 'stream') {
      const stream = this.#stream(this.#nextStream++ % this.#streams.length);
      stream.pending.push(exchange);
      stream.call.write(exchange.batch);
    } else {
      const deadline = Date.now() + this.#options.timeoutMs;
      this.#clients.ingest.PublishOne!(exchange.batch, this.#ingestMetadata, { deadline }, (error: grpc.ServiceError | null, ack: Ack) =>
        this.#finish(exchange, error, ack),
      );
    }
  }

  drop(due: number): void {
    this.#stats.droppedOne(due);
  }

  /** Ends the streams once every batch is acked. */
  close(): void {
    for (const stream of this.#streams) stream?.call.end();
  }

  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#idle = resolve));
  }

  #stream(index: number): Stream {
    const existing = this.#streams[index];
    if (existing) return existing;
    const stream: Stream = { call: this.#clients.ingest.Publish!(this.#ingestMetadata), pending: [] };
    stream.call.on('data', (ack: Ack) => this.#finish(stream.pending.shift()!, null, ack));
    stream.call.on('error', (error: grpc.ServiceError) => {
      // The stream is over and later batches open a new one. The status is the answer of the
      // oldest batch without an ack; those written after it may or may not have been counted.
      if (this.#streams[index] === stream) this.#streams[index] = undefined;
      const [first, ...rest] = stream.pending.splice(0);
      if (first) this.#finish(first, error, undefined);
      for (const exchange of rest) this.#finish(exchange, Object.assign(new Error(error.message), { code: grpc.status.UNKNOWN, details: '', metadata: error.metadata }), undefined);
    });
    // A stream the server ended without an error while batches were unacknowledged: those may or may not count.
    stream.call.on('end', () => {
      if (this.#streams[index] === stream) this.#streams[index] = undefined;
      for (const exchange of stream.pending.splice(0)) this.#finish(exchange, Object.assign(new Error('stream ended'), { code: grpc.status.UNKNOWN, details: '', metadata: new grpc.Metadata() }), undefined);
    });
    this.#streams[index] = stream;
    return stream;
  }

  #finish(exchange: Exchange, error: grpc.ServiceError | null, ack: Ack | undefined): void {
    if (error && exchange.retriesLeft > 0 && RETRYABLE.has(error.code)) return this.#retry(exchange);
    const now = performance.now();
    if (error?.code === grpc.status.DEADLINE_EXCEEDED) {
      this.#stats.failed(exchange.due, 'timeout');
      this.#recordAll(exchange, 'indefinite');
    } else if (error && HTTP_EQUIVALENT[error.code] === undefined && error.code !== grpc.status.INTERNAL) {
      this.#stats.failed(exchange.due, 'other');
      this.#recordAll(exchange, 'indefinite');
    } else {
      const code = error ? error.code : grpc.status.OK;
      this.#stats.answered(exchange.due, exchange.sentAt, now, HTTP_EQUIVALENT[code] ?? 500);
      if (!error && ack) {
        const rejected = new Set(ack.rejections.map((r) => r.index));
        exchange.events.forEach((event, i) => this.#record(exchange, event, rejected.has(i) ? 'rejected' : 'acknowledged'));
        this.#stats.acknowledged(exchange.due, exchange.events.length - rejected.size);
      } else {
        this.#recordAll(exchange, error ? outcomeOfStatus(error) : 'acknowledged');
      }
    }
    this.#inFlight--;
    this.#onFree();
    if (this.#inFlight === 0 && this.#idle) {
      this.#idle();
      this.#idle = undefined;
    }
  }

  /** Sends the batch again, with the same key, after a pause; it keeps its slot meanwhile. */
  #retry(exchange: Exchange): void {
    const retry = this.#options.retries - exchange.retriesLeft;
    exchange.retriesLeft--;
    this.#stats.retried(exchange.due);
    setTimeout(() => this.#dispatch(exchange), retryDelayMs(retry));
  }

  #recordAll(exchange: Exchange, outcome: Outcome): void {
    exchange.events.forEach((event) => this.#record(exchange, event, outcome));
  }

  #record(exchange: Exchange, event: WorkloadEvent, outcome: Outcome): void {
    if (!this.#ledger) return;
    // Every attempt before the last may have been counted; with a key, the service counts them
    // once, but a last attempt refused says nothing of an earlier one.
    if (exchange.batch?.idempotency_key !== undefined) {
      this.#ledger.record(event.index, event.type, outcome === 'rejected' && exchange.attempts > 1 ? 'indefinite' : outcome);
      return;
    }
    this.#ledger.record(event.index, event.type, outcome);
    for (let i = 1; i < exchange.attempts; i++) this.#ledger.record(event.index, event.type, 'indefinite');
  }
}

/** Refusals before anything was taken in are definite; a store failure may follow a write that landed. */
function outcomeOfStatus(error: grpc.ServiceError): Outcome {
  if (error.code === grpc.status.INVALID_ARGUMENT || error.code === grpc.status.UNAUTHENTICATED || error.code === grpc.status.RESOURCE_EXHAUSTED) return 'rejected';
  if (error.code === grpc.status.UNAVAILABLE && error.details === 'server is shutting down') return 'rejected';
  return 'indefinite';
}
