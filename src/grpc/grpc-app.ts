import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProto } from 'grpc-health-check';
import { normalizeDomain } from '../core/domain.js';
import { KeyInFlightError, KeyMismatchError, OverloadedError, SvcError, ValidationError, type RejectReason } from '../core/errors.js';
import type { DomainEvent, EventType } from '../core/event.js';
import { fingerprint, KeyedCommits, parseIdempotencyKey } from '../core/idempotency.js';
import { bearerMatcher } from '../http/auth.js';
import { openIngestion, type IngestEngineOptions, type TokenOptions } from '../http/apps.js';
import { metricsRoutes } from '../http/metrics-route.js';
import { createRouter } from '../http/router.js';
import type { StoreOptions } from '../store/open-store.js';
import { Http2GrpcServer, type CallStatus, type ServerCall } from './http2-server.js';
import { ingestCodec, type AckMessage as Ack, type BatchMessage } from './ingest-codec.js';
import { reflectionDefinition } from './reflection-descriptors.js';

export const PROTO_FILE = fileURLToPath(new URL('../../proto/svc/v1/ingest.proto', import.meta.url));
const SERVICES = ['svc.v1.Ingest', 'svc.v1.Status'];
/** Rejections listed in an Ack, as `POST /events` lists its first errors. */
const MAX_REJECTIONS = 10;
/**
 * Events of one Publish stream being committed at once, beyond which it is not read (besides
 * --max-stream-batches): a few MB, and far below --max-pending, so that large batches slow their
 * stream down rather than fail it with RESOURCE_EXHAUSTED.
 */
const MAX_STREAM_EVENTS = 20_000;

export interface GrpcAppOptions extends StoreOptions, IngestEngineOptions, TokenOptions {
  threshold: number;
  /** How long an idempotency_key is remembered. */
  idempotencyWindowMs: number;
  /** Largest message a client may send, in bytes. */
  maxMessageBytes: number;
  /** Batches of one Publish stream being committed at once; the stream is not read beyond. */
  maxStreamBatches: number;
}

export interface GrpcApp {
  server: Http2GrpcServer;
  /** Serves GET /metrics for --metrics-port. */
  metricsListener: import('node:http').RequestListener;
  /** The daemon is stopping: health turns NOT_SERVING and new events are refused (UNAVAILABLE). */
  drain(): void;
  /** Commits what is pending, then closes the store. */
  close(): Promise<void>;
}

/** What an Ack says of its batch, stored with an idempotency key and sent again to its repeats. */
type Outcome = Pick<Ack, 'accepted' | 'rejected' | 'rejections'>;

/** The proto, loaded as protobufjs reads it: field names as written, enums by name, uint64 as numbers. */
const LOAD_OPTIONS: protoLoader.Options = { keepCase: true, enums: String, longs: Number, defaults: true, arrays: true };

export function loadProto(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_FILE, LOAD_OPTIONS);
}

/** serve-grpc: the Ingest and Status services of proto/svc/v1/ingest.proto over the same engine and stores as serve-http. */
export async function createGrpcApp(options: GrpcAppOptions): Promise<GrpcApp> {
  const { metrics, store, ingest: observer, engine, reader } = await openIngestion(options);

  const definition = loadProto();
  const proto = grpc.loadPackageDefinition(definition) as unknown as { svc: { v1: Record<string, { service: grpc.ServiceDefinition }> } };
  // A connection without traffic for this long is closed (idle streams cost a socket each).
  const server = new Http2GrpcServer({ maxMessageBytes: options.maxMessageBytes, idleTimeoutMs: 5 * 60_000 });
  // The standard implementations, written for grpc-js's server: ours takes the same addService.
  const asGrpcServer = server as unknown as grpc.Server;
  const health = new HealthImplementation(Object.fromEntries(['', ...SERVICES].map((name) => [name, 'SERVING'])));
  health.addToServer(asGrpcServer);
  // Reflection describes the health service too, so that grpcurl can call it by name.
  new ReflectionService(reflectionDefinition(protoLoader.loadSync([PROTO_FILE, healthProto], LOAD_OPTIONS))).addToServer(asGrpcServer);

  /** Open Publish streams, each ended with UNAVAILABLE once its batches in flight are acked, when the daemon stops. */
  const openStreams = new Set<() => void>();
  const ingestAllowed = guard(options.ingestToken);
  const readAllowed = guard(options.readToken);
  const keys = new KeyedCommits(store, options.idempotencyWindowMs);

  /**
   * Validates a batch and commits its valid events, once per idempotency key when it has one;
   * throws when none is valid, the key is bad or in use, or the engine refuses.
   */
  async function ingest(batch: BatchMessage, sequence: number): Promise<Ack> {
    // proto3 sends no field for an empty string: '' is no key.
    const key = parseIdempotencyKey(batch.idempotency_key || undefined, 'idempotency_key');
    const events: DomainEvent[] = [];
    const rejections: Outcome['rejections'] = [];
    let rejected = 0;
    batch.events.forEach((event, index) => {
      try {
        events.push({ domain: normalizeDomain(event.domain), type: eventType(event.type) });
      } catch (error) {
        const reason: RejectReason = error instanceof ValidationError ? error.reason : 'invalid_input';
        observer.rejected(reason, 1);
        rejected++;
        if (rejections.length < MAX_REJECTIONS) rejections.push({ index, reason: (error as Error).message });
      }
    });
    if (events.length === 0) {
      throw new ValidationError(rejected === 0 ? 'the batch holds no events' : `no valid events: ${rejections[0]!.reason}`);
    }
    const outcome: Outcome = { accepted: events.length, rejected, rejections };
    if (key === undefined) {
      await engine.addAll(events);
      return { batch: sequence, ...outcome, replayed: false };
    }
    const request = { key, fingerprint: batchFingerprint(batch), answer: { status: 0, body: JSON.stringify(outcome) } };
    const { answer, replayed } = await keys.once(request, (claimed) => engine.addAll(events, claimed), true);
    // Only a replay needs the stored answer read back: a first use's is `outcome` itself.
    return { batch: sequence, ...(replayed ? (JSON.parse(answer.body) as Outcome) : outcome), replayed };
  }

  const codec = ingestCodec(PROTO_FILE);
  const ingestService = withCodec(proto.svc.v1.Ingest!.service, codec.decodeBatch, codec.encodeAck);
  server.addService(ingestService, {
    Publish: (call: ServerCall<BatchMessage, Ack>) => {
      if (!ingestAllowed(call)) return call.sendStatus(unauthenticated());
      openStreams.add(publishStream(call));
    },
    PublishOne: (call: ServerCall<BatchMessage, Ack>, callback: (error: CallStatus | null, ack?: Ack) => void) => {
      if (!ingestAllowed(call)) return callback(unauthenticated());
      ingest(call.request!, 1).then(
        (ack) => callback(null, ack),
        (error) => callback(toStatus(error)),
      );
    },
  });

  /**
   * One Publish stream: batches are committed as they come, at most --max-stream-batches at once,
   * and acked in their order; the first failure ends the stream with its status. Returns what
   * ends the stream when the daemon stops: the acks of the batches in flight, then UNAVAILABLE.
   */
  function publishStream(call: ServerCall<BatchMessage, Ack>): () => void {
    let sequence = 0;
    /** Batches being committed, oldest first. */
    const waiting: { ack?: Ack; error?: unknown; settled: boolean }[] = [];
    let eventsInFlight = 0;
    let ended = false;
    let requestsEnded = false;
    let stopping = false;
    let paused = false;
    let writable = true;
    const finish = (status: CallStatus) => {
      if (ended) return;
      ended = true;
      openStreams.delete(stop);
      call.sendStatus(status);
    };
    // A slow store (batches in flight) or a client that does not read its acks (writes buffered)
    // stops the stream from being read: memory stays bounded.
    const flow = () => {
      if (ended) return;
      const hold = waiting.length >= options.maxStreamBatches || eventsInFlight >= MAX_STREAM_EVENTS || !writable;
      if (hold !== paused) (paused = hold) ? call.pause() : call.resume();
    };
    const release = () => {
      while (!ended && waiting.length > 0 && waiting[0]!.settled) {
        const { ack, error } = waiting.shift()!;
        if (error !== undefined) return finish(toStatus(error));
        if (!call.write(ack!)) writable = false;
      }
      if (waiting.length === 0 && requestsEnded) finish({ code: grpc.status.OK, details: '' });
      else if (waiting.length === 0 && stopping) finish(statusError(grpc.status.UNAVAILABLE, 'server is shutting down'));
      flow();
    };
    const stop = () => {
      stopping = true;
      release();
    };
    call.on('data', (batch: BatchMessage) => {
      if (ended || stopping) return;
      const entry: (typeof waiting)[number] = { settled: false };
      const events = batch.events.length;
      waiting.push(entry);
      eventsInFlight += events;
      const settle = () => {
        entry.settled = true;
        eventsInFlight -= events;
        release();
      };
      ingest(batch, ++sequence).then(
        (ack) => ((entry.ack = ack), settle()),
        (error) => ((entry.error = error ?? new Error('failed')), settle()),
      );
      flow();
    });
    call.on('drain', () => ((writable = true), flow()));
    call.on('end', () => ((requestsEnded = true), release()));
    call.on('cancelled', () => {
      ended = true;
      openStreams.delete(stop);
    });
    return stop;
  }

  server.addService(proto.svc.v1.Status!.service, {
    Get: (call: ServerCall<{ domain?: string }, unknown>, callback: (error: CallStatus | null, status?: unknown) => void) => {
      if (!readAllowed(call)) return callback(unauthenticated());
      let domain: string;
      try {
        domain = normalizeDomain(call.request!.domain ?? '');
      } catch (error) {
        return callback(toStatus(error));
      }
      reader.report(domain).then(
        (report) => callback(null, report),
        (error) => callback(toStatus(error)),
      );
    },
  });

  return {
    server,
    metricsListener: createRouter([...metricsRoutes(metrics)], metrics.requests),
    drain() {
      for (const name of ['', ...SERVICES]) health.setStatus(name, 'NOT_SERVING');
      engine.refuseNewEvents();
      for (const close of openStreams) close();
    },
    async close() {
      await engine.close();
      await store.close();
    },
  };
}

/** What identifies a keyed batch: its events as sent, in order (a key used over HTTP never matches). */
function batchFingerprint(batch: BatchMessage): string {
  const events = batch.events.map((event) => [event.domain, event.type]);
  return fingerprint('gRPC', 'svc.v1.Ingest', Buffer.from(JSON.stringify(events)));
}

const EVENT_TYPES: Record<number, EventType> = { 1: 'delivered', 2: 'bounced' };
const EVENT_TYPE_NAMES: Record<number, string> = { 0: 'EVENT_TYPE_UNSPECIFIED', 1: 'EVENT_TYPE_DELIVERED', 2: 'EVENT_TYPE_BOUNCED' };

function eventType(type: number): EventType {
  const known = EVENT_TYPES[type];
  if (known) return known;
  throw new ValidationError(`unknown event type ${JSON.stringify(EVENT_TYPE_NAMES[type] ?? type)}`, 'invalid_type');
}

/** The service with its requests and responses read and written by `decode` and `encode`. */
function withCodec<Request, Response>(
  service: grpc.ServiceDefinition,
  decode: (bytes: Buffer) => Request,
  encode: (message: Response) => Buffer,
): grpc.ServiceDefinition {
  const methods = Object.entries(service).map(([name, method]) => [name, { ...method, requestDeserialize: decode, responseSerialize: encode }]);
  return Object.fromEntries(methods) as grpc.ServiceDefinition;
}

/** Checks `authorization: Bearer <token>` metadata when a token is set. */
function guard(token: string | undefined): (call: { metadata: grpc.Metadata }) => boolean {
  if (!token) return () => true;
  const matches = bearerMatcher(token);
  return (call) => {
    const [value] = call.metadata.get('authorization');
    return matches(typeof value === 'string' ? value : undefined);
  };
}

function unauthenticated(): CallStatus {
  return statusError(grpc.status.UNAUTHENTICATED, 'a valid bearer token is required (metadata authorization: Bearer <token>)');
}

const KEY_IN_FLIGHT = 'a batch with this idempotency_key is being committed; retry once it is acknowledged';
const KEY_MISMATCH = 'this idempotency_key was used for another batch (other events)';

/** The gRPC status for an error, as the HTTP API maps the same errors to 400, 409, 422, 429, 503. */
function toStatus(error: unknown): CallStatus {
  if (error instanceof ValidationError) return statusError(grpc.status.INVALID_ARGUMENT, error.message);
  if (error instanceof OverloadedError) return statusError(grpc.status.RESOURCE_EXHAUSTED, error.message);
  if (error instanceof KeyInFlightError) return statusError(grpc.status.ABORTED, KEY_IN_FLIGHT);
  if (error instanceof KeyMismatchError) return statusError(grpc.status.FAILED_PRECONDITION, KEY_MISMATCH);
  // Reads of a daemon that only writes (Kafka): the message names the daemon to ask.
  if (error instanceof SvcError && error.code === 'SVC_READS_ELSEWHERE') return statusError(grpc.status.UNIMPLEMENTED, error.message);
  // A store failure or a stopping server: nothing of the batch was acknowledged, retry later.
  if (error instanceof SvcError) return statusError(grpc.status.UNAVAILABLE, error.message);
  return statusError(grpc.status.INTERNAL, 'internal error');
}

function statusError(code: grpc.status, details: string): CallStatus {
  return { code, details };
}
