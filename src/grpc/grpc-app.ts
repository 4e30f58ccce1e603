import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProto } from 'grpc-health-check';
import type { EngineOptions } from '../core/counter-engine.js';
import { normalizeDomain } from '../core/domain.js';
import { KeyInFlightError, KeyMismatchError, OverloadedError, SvcError, ValidationError, type RejectReason } from '../core/errors.js';
import type { DomainEvent, EventType } from '../core/event.js';
import { fingerprint, KeyedCommits, parseIdempotencyKey } from '../core/idempotency.js';
import { bearerMatcher } from '../http/auth.js';
import { openIngestion, type TokenOptions } from '../http/apps.js';
import { metricsRoutes } from '../http/metrics-route.js';
import { createRouter } from '../http/router.js';
import type { StoreOptions } from '../store/open-store.js';

export const PROTO_FILE = fileURLToPath(new URL('../../proto/svc/v1/ingest.proto', import.meta.url));
const SERVICES = ['svc.v1.Ingest', 'svc.v1.Status'];
/** Rejections listed in an Ack, as `POST /events` lists its first errors. */
const MAX_REJECTIONS = 10;

export interface GrpcAppOptions extends StoreOptions, EngineOptions, TokenOptions {
  threshold: number;
  /** How long an idempotency_key is remembered. */
  idempotencyWindowMs: number;
  /** Largest message a client may send, in bytes. */
  maxMessageBytes: number;
  /** Batches of one Publish stream being committed at once; the stream is not read beyond. */
  maxStreamBatches: number;
}

export interface GrpcApp {
  server: grpc.Server;
  /** Serves GET /metrics for --metrics-port. */
  metricsListener: import('node:http').RequestListener;
  /** The daemon is stopping: health turns NOT_SERVING and new events are refused (UNAVAILABLE). */
  drain(): void;
  /** Commits what is pending, then closes the store. */
  close(): Promise<void>;
}

interface EventMessage {
  domain?: string;
  type?: string | number;
}
interface BatchMessage {
  events?: EventMessage[];
  idempotency_key?: string;
}
/** What an Ack says of its batch, stored with an idempotency key and sent again to its repeats. */
interface Outcome {
  accepted: number;
  rejected: number;
  rejections: { index: number; reason: string }[];
}
interface Ack extends Outcome {
  batch: number;
  replayed: boolean;
}

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
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes,
    // A connection without a call for this long is closed (idle streams cost a socket each).
    'grpc.max_connection_idle_ms': 5 * 60_000,
  });
  const health = new HealthImplementation(Object.fromEntries(['', ...SERVICES].map((name) => [name, 'SERVING'])));
  health.addToServer(server);
  // Reflection describes the health service too, so that grpcurl can call it by name.
  new ReflectionService(protoLoader.loadSync([PROTO_FILE, healthProto], LOAD_OPTIONS)).addToServer(server);

  /** Open Publish streams, each closed with UNAVAILABLE once its batches in flight are acked, when the daemon stops. */
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
    (batch.events ?? []).forEach((event, index) => {
      try {
        events.push({ domain: normalizeDomain(event.domain ?? ''), type: eventType(event.type) });
      } catch (error) {
        const reason: RejectReason = error instanceof ValidationError ? error.reason : 'invalid_input';
        observer.rejected(reason, 1);
        rejected++;
        if (rejections.length < MAX_REJECTIONS) rejections.push({ index, reason: (error as Error).message });
      }
    });
    if (events.length === 0) {
      throw statusError(grpc.status.INVALID_ARGUMENT, rejected === 0 ? 'the batch holds no events' : `no valid events: ${rejections[0]!.reason}`);
    }
    const outcome: Outcome = { accepted: events.length, rejected, rejections };
    if (key === undefined) {
      await engine.addAll(events);
      return { batch: sequence, ...outcome, replayed: false };
    }
    const request = { key, fingerprint: batchFingerprint(batch), answer: { status: 0, body: JSON.stringify(outcome) } };
    const { answer, replayed } = await keys.once(request, (claimed) => engine.addAll(events, claimed));
    return { batch: sequence, ...(JSON.parse(answer.body) as Outcome), replayed };
  }

  server.addService(proto.svc.v1.Ingest!.service, {
    Publish: (call: grpc.ServerDuplexStream<BatchMessage, Ack>) => {
      if (!ingestAllowed(call)) return void call.emit('error', unauthenticated());
      let sequence = 0;
      let inFlight = 0;
      let failed = false;
      // Acks go out in batch order: each waits for the one before it.
      let previous: Promise<void> = Promise.resolve();
      call.on('data', (batch: BatchMessage) => {
        // After an error status nothing more of this stream is taken in.
        if (failed) return;
        const result = ingest(batch, ++sequence);
        result.catch(() => {});
        if (++inFlight >= options.maxStreamBatches) call.pause();
        previous = previous.then(async () => {
          try {
            if (failed) return;
            const ack = await result;
            // A client that does not read its acks stops this stream from being read: memory stays bounded.
            if (!call.write(ack)) await writable(call);
          } catch (error) {
            failed = true;
            call.emit('error', toStatus(error));
          } finally {
            if (--inFlight < options.maxStreamBatches) call.resume();
          }
        });
      });
      const closeForShutdown = () =>
        void previous.then(() => {
          if (failed) return;
          failed = true;
          call.emit('error', statusError(grpc.status.UNAVAILABLE, 'server is shutting down'));
        });
      openStreams.add(closeForShutdown);
      call.on('end', () => {
        openStreams.delete(closeForShutdown);
        void previous.then(() => failed || call.end());
      });
      call.on('error', () => {
        openStreams.delete(closeForShutdown);
        failed = true;
      });
    },
    PublishOne: (call: grpc.ServerUnaryCall<BatchMessage, Ack>, callback: grpc.sendUnaryData<Ack>) => {
      if (!ingestAllowed(call)) return callback(unauthenticated());
      ingest(call.request, 1).then(
        (ack) => callback(null, ack),
        (error) => callback(toStatus(error)),
      );
    },
  });

  server.addService(proto.svc.v1.Status!.service, {
    Get: (call: grpc.ServerUnaryCall<{ domain?: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      if (!readAllowed(call)) return callback(unauthenticated());
      let domain: string;
      try {
        domain = normalizeDomain(call.request.domain ?? '');
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

/** Resolves once the call can take more writes, or will never need to (cancelled, closed). */
function writable(call: grpc.ServerDuplexStream<BatchMessage, Ack>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done).off('cancelled', done).off('close', done);
      resolve();
    };
    call.once('drain', done).once('cancelled', done).once('close', done);
  });
}

/** What identifies a keyed batch: its events as sent, in order (a key used over HTTP never matches). */
function batchFingerprint(batch: BatchMessage): string {
  const events = (batch.events ?? []).map((event) => [event.domain ?? '', event.type ?? 0]);
  return fingerprint('gRPC', 'svc.v1.Ingest', Buffer.from(JSON.stringify(events)));
}

function eventType(type: string | number | undefined): EventType {
  if (type === 'EVENT_TYPE_DELIVERED') return 'delivered';
  if (type === 'EVENT_TYPE_BOUNCED') return 'bounced';
  throw new ValidationError(`unknown event type ${JSON.stringify(type ?? 'EVENT_TYPE_UNSPECIFIED')}`, 'invalid_type');
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

function unauthenticated(): grpc.ServiceError {
  return statusError(grpc.status.UNAUTHENTICATED, 'a valid bearer token is required (metadata authorization: Bearer <token>)');
}

const KEY_IN_FLIGHT = 'a batch with this idempotency_key is being committed; retry once it is acknowledged';
const KEY_MISMATCH = 'this idempotency_key was used for another batch (other events)';

/** The gRPC status for an error, as the HTTP API maps the same errors to 400, 409, 422, 429, 503. */
function toStatus(error: unknown): grpc.ServiceError {
  if ((error as grpc.ServiceError)?.code !== undefined && typeof (error as grpc.ServiceError).code === 'number') return error as grpc.ServiceError;
  if (error instanceof ValidationError) return statusError(grpc.status.INVALID_ARGUMENT, error.message);
  if (error instanceof OverloadedError) return statusError(grpc.status.RESOURCE_EXHAUSTED, error.message);
  if (error instanceof KeyInFlightError) return statusError(grpc.status.ABORTED, KEY_IN_FLIGHT);
  if (error instanceof KeyMismatchError) return statusError(grpc.status.FAILED_PRECONDITION, KEY_MISMATCH);
  // A store failure or a stopping server: nothing of the batch was acknowledged, retry later.
  if (error instanceof SvcError) return statusError(grpc.status.UNAVAILABLE, error.message);
  return statusError(grpc.status.INTERNAL, 'internal error');
}

function statusError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}
