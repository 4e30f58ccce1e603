import { randomUUID } from 'node:crypto';
import type { Dispatcher, Pool } from 'undici';
import { bearerHeaders } from '../client/bearer.js';
import { Random, mix32 } from '../workload/random.js';
import type { Workload, WorkloadEvent } from '../workload/workload.js';
import { Deadlines, type Deadline } from './deadlines.js';
import type { Ledger, Outcome } from './ledger.js';
import type { LoadtestOptions } from './options.js';
import { failureKind, outcomeOf, rejectedLines } from './outcome.js';
import type { PacedSender } from './pacer.js';
import type { Stats } from './stats.js';

export interface GeneratorOptions {
  pool: Pool;
  workload: Workload;
  stats: Stats;
  /** Present when the run is verified. */
  ledger: Ledger | undefined;
  options: Readonly<LoadtestOptions>;
  /** Called whenever a slot becomes free. */
  onFree: () => void;
}

const READ_DECISIONS = 0x52454144;
const NO_EVENTS: WorkloadEvent[] = [];
const NDJSON = { 'content-type': 'application/x-ndjson' };
/** Answers after which a request is worth sending again: in flight elsewhere, overloaded, or failed in the service. */
const RETRYABLE = new Set([409, 429, 500, 502, 503, 504]);

/** The pause before the nth retry: 250 ms, doubled each time, at most 2 s (the service asks for 1 s with Retry-After). */
export function retryDelayMs(retry: number): number {
  return Math.min(2_000, 250 * 2 ** retry);
}

/**
 * Turns due times into HTTP requests on an undici Pool, with at most connections × pipelining in
 * flight, and records what comes back: latency, status, and for verification the outcome of
 * every event.
 */
export class Generator implements PacedSender {
  readonly #pool: Pool;
  readonly #workload: Workload;
  readonly #stats: Stats;
  readonly #ledger: Ledger | undefined;
  readonly #mode: LoadtestOptions['mode'];
  readonly #batchSize: number;
  readonly #readRatio: number;
  readonly #readDecisions: Random;
  readonly #onFree: () => void;
  readonly #slots: number;
  // Pipelined requests are sent before the previous answers arrive; undici only does that for
  // requests marked idempotent, and resends those that were behind a failed one. A resent event
  // may have been counted twice, which the ledger records as indefinite (see Exchange.attempts).
  readonly #idempotent: boolean;
  readonly #deadlines: Deadlines;
  // Built once: a header object per request would be garbage at 100k requests/s.
  readonly #readHeaders: Record<string, string>;
  readonly #putHeaders: Record<string, string>;
  readonly #postHeaders: Record<string, string>;
  /** With --idempotency-keys: keys are this run's id and a sequence number, so that no two runs share one. */
  readonly #keyPrefix: string | undefined;
  #keySeq = 0;
  readonly #retries: number;
  #inFlight = 0;
  #idle: (() => void) | undefined;

  constructor(options: GeneratorOptions) {
    this.#pool = options.pool;
    this.#workload = options.workload;
    this.#stats = options.stats;
    this.#ledger = options.ledger;
    this.#mode = options.options.mode;
    this.#batchSize = options.options.batchSize;
    this.#readRatio = options.options.readRatio;
    this.#readDecisions = new Random(mix32(options.options.seed ^ READ_DECISIONS));
    this.#onFree = options.onFree;
    this.#slots = options.options.connections * options.options.pipelining;
    this.#idempotent = options.options.pipelining > 1;
    this.#deadlines = new Deadlines(options.options.timeoutMs);
    this.#readHeaders = bearerHeaders(options.options.readToken);
    this.#putHeaders = bearerHeaders(options.options.ingestToken);
    this.#postHeaders = { ...NDJSON, ...this.#putHeaders };
    this.#keyPrefix = options.options.idempotencyKeys ? randomUUID() : undefined;
    this.#retries = options.options.retries;
  }

  ready(): boolean {
    return this.#inFlight < this.#slots;
  }

  send(due: number, queued: boolean): void {
    const now = performance.now();
    let exchange: Exchange;
    let request: Dispatcher.DispatchOptions;
    if (this.#readRatio > 0 && this.#readDecisions.next() < this.#readRatio) {
      const name = this.#workload.name(this.#workload.sampleDomain());
      exchange = new Exchange(this, due, NO_EVENTS, false);
      request = { method: 'GET', path: `/domains/${name}`, headers: this.#readHeaders, blocking: false };
    } else if (this.#mode === 'event') {
      const event = this.#nextEvent();
      exchange = new Exchange(this, due, [event], false);
      request = {
        method: 'PUT',
        path: `/events/${this.#workload.name(event.index)}/${event.type}`,
        headers: this.#keyed(this.#putHeaders),
        idempotent: this.#idempotent,
        blocking: false,
      };
    } else {
      const events = new Array<WorkloadEvent>(this.#batchSize);
      let body = '';
      for (let i = 0; i < events.length; i++) {
        const event = (events[i] = this.#nextEvent());
        body += `{"domain":"${this.#workload.name(event.index)}","type":"${event.type}"}\n`;
      }
      exchange = new Exchange(this, due, events, true);
      request = { method: 'POST', path: '/events', headers: this.#keyed(this.#postHeaders), body, idempotent: this.#idempotent, blocking: false };
    }
    if (exchange.events.length > 0) {
      exchange.request = request;
      exchange.retriesLeft = this.#retries;
    }
    this.#inFlight++;
    this.#stats.sentOne(due, now, exchange.events.length, queued);
    exchange.dispatchedAt = now;
    this.#deadlines.add(exchange);
    this.#pool.dispatch(request, exchange);
  }

  drop(due: number): void {
    this.#stats.droppedOne(due);
  }

  /** Stops timing requests out; call once idle. */
  close(): void {
    this.#deadlines.close();
  }

  /** Resolves once no request is in flight. */
  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#idle = resolve));
  }

  /** Called by an exchange once it has its whole answer. */
  answered(exchange: Exchange, body: string | undefined): void {
    const status = exchange.status;
    if (exchange.retriesLeft > 0 && RETRYABLE.has(status)) return this.#retry(exchange);
    this.#stats.answered(exchange.due, exchange.sentAt, performance.now(), status);
    const outcome = outcomeOf(status, body);
    if (exchange.batch && outcome === 'acknowledged') {
      // 200 to a batch: each line was accepted or rejected, as the answer lists.
      const rejected = rejectedLines(body ?? '', exchange.events.length);
      let acknowledged = 0;
      exchange.events.forEach((event, i) => {
        // An answer that cannot be read leaves every event of the batch indefinite.
        const own = !rejected ? 'indefinite' : rejected.has(i + 1) ? 'rejected' : 'acknowledged';
        if (own === 'acknowledged') acknowledged++;
        this.#record(exchange, event, own);
      });
      this.#stats.acknowledged(exchange.due, acknowledged);
    } else {
      for (const event of exchange.events) this.#record(exchange, event, outcome);
      if (outcome === 'acknowledged') this.#stats.acknowledged(exchange.due, exchange.events.length);
    }
    this.#done(exchange);
  }

  /** Called by an exchange that got no answer. */
  failed(exchange: Exchange, error: Error): void {
    // Later in any case: see the comment below on undici's loop.
    if (exchange.retriesLeft > 0) return this.#retry(exchange);
    this.#stats.failed(exchange.due, failureKind(error));
    for (const event of exchange.events) this.#record(exchange, event, 'indefinite');
    // undici fails every request queued on a connection that could not be made in one loop, then
    // asserts that none was added meanwhile: a request sent from inside it would crash the process.
    this.#done(exchange, true);
  }

  #record(exchange: Exchange, event: WorkloadEvent, outcome: Outcome): void {
    if (!this.#ledger) return;
    // Every attempt before the last may have reached the service and been counted; with a key,
    // the service counts all the attempts of a request once, but a last attempt refused (429, 503
    // shutting down) says nothing of an earlier one.
    if (this.#keyPrefix !== undefined) {
      this.#ledger.record(event.index, event.type, outcome === 'rejected' && exchange.attempts > 1 ? 'indefinite' : outcome);
      return;
    }
    this.#ledger.record(event.index, event.type, outcome);
    for (let i = 1; i < exchange.attempts; i++) this.#ledger.record(event.index, event.type, 'indefinite');
  }

  #keyed(headers: Record<string, string>): Record<string, string> {
    if (this.#keyPrefix === undefined) return headers;
    return { ...headers, 'idempotency-key': `${this.#keyPrefix}-${this.#keySeq++}` };
  }

  /** Sends the request again, with the same key, after a pause; it keeps its slot meanwhile. */
  #retry(exchange: Exchange): void {
    const retry = this.#retries - exchange.retriesLeft;
    exchange.retriesLeft--;
    this.#stats.retried(exchange.due);
    this.#deadlines.remove(exchange);
    setTimeout(() => {
      exchange.restart();
      exchange.dispatchedAt = performance.now();
      this.#deadlines.add(exchange);
      this.#pool.dispatch(exchange.request!, exchange);
    }, retryDelayMs(retry));
  }

  #nextEvent(): WorkloadEvent {
    const event = this.#workload.next();
    if (!event) throw new Error('the workload ran out of events'); // repeat: true never does
    return event;
  }

  #done(exchange: Exchange, later = false): void {
    this.#deadlines.remove(exchange);
    this.#inFlight--;
    if (later) queueMicrotask(this.#onFree);
    else this.#onFree();
    if (this.#inFlight === 0 && this.#idle) {
      this.#idle();
      this.#idle = undefined;
    }
  }
}

/**
 * One request's undici handler. It uses the handler interface undici calls natively (onConnect,
 * onHeaders, …): the newer onRequestStart/onResponseStart interface is wrapped in an adapter that
 * allocates a controller and parses every header into an object, which costs throughput here.
 */
class Exchange implements Dispatcher.DispatchHandler, Deadline {
  status = 0;
  /** How many times undici started sending it: more than once after a pipelining retry or a --retries one. */
  attempts = 0;
  /** An ingestion request, kept for --retries. */
  request: Dispatcher.DispatchOptions | undefined;
  retriesLeft = 0;
  sentAt = 0;
  dispatchedAt = 0;
  abort: ((error: Error) => void) | undefined;
  previous: Deadline | undefined;
  next: Deadline | undefined;
  #body: Buffer[] | undefined;

  constructor(
    readonly generator: Generator,
    readonly due: number,
    readonly events: WorkloadEvent[],
    readonly batch: boolean,
  ) {}

  /** Forgets the last attempt's answer before the next one. */
  restart(): void {
    this.status = 0;
    this.#body = undefined;
    this.abort = undefined;
  }

  onConnect(abort: (error?: Error) => void): void {
    this.abort = abort;
    this.attempts++;
    this.sentAt = performance.now();
  }

  onHeaders(status: number): boolean {
    this.status = status;
    // Only batch answers and 503s carry something we need; other bodies are skipped unread.
    if ((this.batch && status < 300) || status === 503) this.#body = [];
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#body?.push(chunk);
    return true;
  }

  onComplete(): void {
    this.generator.answered(this, this.#body && Buffer.concat(this.#body).toString('utf8'));
  }

  onError(error: Error): void {
    this.generator.failed(this, error);
  }
}
