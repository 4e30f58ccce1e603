import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CounterEngine } from '../core/counter-engine.js';
import type { DomainReader } from '../core/domain-reader.js';
import { ValidationError } from '../core/errors.js';
import { parseEventType } from '../core/event.js';
import { parseNdjsonBatch } from '../core/ndjson.js';
import type { CounterStore } from '../store/counter-store.js';
import { readBody } from './body.js';
import { sendJson } from './http-error.js';
import { domainFromSegment } from './path.js';
import type { Route } from './router.js';

/** Routes every daemon serves: health, readiness and status reads. */
export function readRoutes(store: CounterStore, reader: DomainReader): Route[] {
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
    {
      pattern: ['domains', '*'],
      methods: {
        GET: async (_req, res, [segment]) => sendJson(res, 200, await reader.report(domainFromSegment(segment!))),
      },
    },
  ];
}

/** The ingestion routes of serve-http. */
export function ingestRoutes(engine: CounterEngine, maxBody: number): Route[] {
  return [
    { pattern: ['events', '*', '*'], methods: { PUT: (req, res, params) => putEvent(engine, req, res, params) } },
    { pattern: ['events'], methods: { POST: (req, res) => postEvents(engine, maxBody, req, res) } },
  ];
}

async function putEvent(engine: CounterEngine, req: IncomingMessage, res: ServerResponse, [domainSegment, typeSegment]: string[]) {
  // The body carries nothing we need; drain it so the connection can be reused.
  req.resume();
  const domain = domainFromSegment(domainSegment!);
  const type = parseEventType(typeSegment);
  await engine.add(domain, type);
  res.writeHead(204).end();
}

async function postEvents(engine: CounterEngine, maxBody: number, req: IncomingMessage, res: ServerResponse) {
  const body = await readBody(req, maxBody);
  const { events, rejected, errors } = parseNdjsonBatch(body.toString('utf8'));
  if (events.length === 0) {
    if (rejected === 0) throw new ValidationError('body holds no events');
    sendJson(res, 400, { error: 'no valid events', accepted: 0, rejected, errors });
    return;
  }
  await engine.addAll(events);
  sendJson(res, 200, { accepted: events.length, rejected, errors });
}
