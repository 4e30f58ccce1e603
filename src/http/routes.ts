import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CounterEngine } from '../core/counter-engine.js';
import type { DomainReader } from '../core/domain-reader.js';
import { ValidationError, type RejectReason } from '../core/errors.js';
import { parseEventType, type EventType } from '../core/event.js';
import { NO_INGEST_OBSERVER, type IngestObserver } from '../core/ingest-observer.js';
import { parseNdjsonBatch } from '../core/ndjson.js';
import type { CounterStore } from '../store/counter-store.js';
import { BodyBudget, readBody } from './body.js';
import { sendJson } from './http-error.js';
import type { IdempotentRequests } from './idempotency.js';
import { domainFromSegment } from './path.js';
import type { Route } from './router.js';

/** Health and readiness: every daemon serves them, without a token (orchestrators probe them). */
export function healthRoutes(store: CounterStore): Route[] {
  return [
    { pattern: ['healthz'], methods: { GET: (_req, res) => sendJson(res, 200, { status: 'ok' }) } },
    {
      pattern: ['readyz'],
      methods: {
        GET: async (_req, res) => {
          try {
            await store.ping();
            sendJson(res, 200, { status: 'ready' });
          } catch {
            sendJson(res, 503, { status: 'unavailable', error: 'store unreachable' });
          }
        },
      },
    },
  ];
}

/** Status reads: every daemon serves them. */
export function statusRoutes(reader: DomainReader): Route[] {
  return [
    {
      pattern: ['domains', ':domain'],
      methods: {
        GET: async (_req, res, [segment]) => sendJson(res, 200, await reader.report(domainFromSegment(segment!))),
      },
    },
  ];
}

/** What one POST /events may carry, and all of them at once. */
export interface BatchLimits {
  /** Bytes of one body (413 beyond). */
  maxBody: number;
  /** Lines of one body (413 beyond). */
  maxBatchLines: number;
  /** Bytes of all bodies held at once (503 beyond); never less than maxBody. */
  maxBodyMemory: number;
}

interface BatchPolicy extends BatchLimits {
  budget: BodyBudget;
}

/** The ingestion routes of serve-http. */
export function ingestRoutes(engine: CounterEngine, limits: BatchLimits, keys: IdempotentRequests, observer: IngestObserver = NO_INGEST_OBSERVER): Route[] {
  const policy: BatchPolicy = { ...limits, budget: new BodyBudget(Math.max(limits.maxBodyMemory, limits.maxBody)) };
  return [
    { pattern: ['events', ':domain', ':type'], methods: { PUT: (req, res, params) => putEvent(engine, keys, observer, req, res, params) } },
    { pattern: ['events'], methods: { POST: (req, res) => postEvents(engine, keys, observer, policy, req, res) } },
  ];
}

const NO_CONTENT = { status: 204, body: '' };

async function putEvent(
  engine: CounterEngine,
  keys: IdempotentRequests,
  observer: IngestObserver,
  req: IncomingMessage,
  res: ServerResponse,
  [domainSegment, typeSegment]: string[],
) {
  // The body carries nothing we need; drain it so the connection can be reused.
  req.resume();
  let domain: string;
  let type: EventType;
  try {
    domain = domainFromSegment(domainSegment!);
    type = parseEventType(typeSegment);
  } catch (error) {
    observer.rejected(error instanceof ValidationError ? error.reason : 'invalid_input', 1);
    throw error;
  }
  await keys.respond(req, res, NO_CONTENT, (key) => engine.add(domain, type, key));
}

async function postEvents(
  engine: CounterEngine,
  keys: IdempotentRequests,
  observer: IngestObserver,
  policy: BatchPolicy,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const body = await readBody(req, res, policy.maxBody, policy.budget);
  const onRejected = (reason: RejectReason) => observer.rejected(reason, 1);
  const { events, rejected, errors } = parseNdjsonBatch(body.toString('utf8'), 10, onRejected, policy.maxBatchLines);
  if (events.length === 0) {
    sendJson(res, 400, { error: rejected === 0 ? 'body holds no events' : 'no valid events', accepted: 0, rejected, errors });
    return;
  }
  const answer = { status: 200, body: JSON.stringify({ accepted: events.length, rejected, errors }) };
  await keys.respond(req, res, answer, (key) => engine.addAll(events, key), body);
}
