import type { CounterStore } from '../store/counter-store.js';
import type { DomainCounts } from './status.js';
import type { DomainEvent, EventType } from './event.js';
import type { ClaimedKey } from './idempotency.js';
import { OverloadedError, ShuttingDownError, StoreUnavailableError, SvcError } from './errors.js';
import { NO_INGEST_OBSERVER, type IngestObserver } from './ingest-observer.js';

export interface EngineOptions {
  /** A batch is sealed once it holds this many distinct domains. */
  maxBatch: number;
  /** Extra wait before an idle engine commits its first events; 0 commits on the next tick. */
  flushMs: number;
  /** Events accepted but not yet committed; beyond this, add() throws OverloadedError. */
  maxPending: number;
  /** Batches committed at the same time. */
  maxInFlight: number;
  /**
   * A batch that is not full waits until this long after the previous commit began: under load
   * batches then grow past what one commit's duration gathers, and a store's cost per commit
   * (a transaction, a disk flush, a round trip) is paid less often. 0 commits back to back.
   */
  commitIntervalMs: number;
  /**
   * A request with an idempotency key gets a batch of its own, so that a store which dedupes
   * where the counts are made (Kafka: at the materializer) can drop exactly that request's events.
   */
  keyedAlone?: boolean;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  maxBatch: 10_000,
  flushMs: 0,
  maxPending: 200_000,
  maxInFlight: 1,
  commitIntervalMs: 0,
};

class Batch {
  readonly deltas = new Map<string, DomainCounts>();
  /** The idempotency keys of the requests in the batch, stored with its counts. */
  readonly keys: ClaimedKey[] = [];
  events = 0;
  /** Of `events`; the rest are deliveries. */
  bounced = 0;
  /** Set when the batch may be committed as soon as a commit slot is free. */
  ready = false;
  timer: NodeJS.Timeout | undefined;
  readonly committed: Promise<void>;
  resolve!: () => void;
  reject!: (error: Error) => void;

  constructor() {
    this.committed = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Every caller awaits `committed`; this only keeps a rejection nobody awaits any more from
    // being reported as unhandled.
    this.committed.catch(() => {});
  }

  add(domain: string, type: EventType): void {
    let counts = this.deltas.get(domain);
    if (counts === undefined) {
      counts = { delivered: 0, bounced: 0 };
      this.deltas.set(domain, counts);
    }
    counts[type]++;
    this.events++;
    if (type === 'bounced') this.bounced++;
  }
}

export interface EngineStats {
  pendingEvents: number;
  inFlightBatches: number;
  committedBatches: number;
  committedEvents: number;
  failedBatches: number;
}

/**
 * Group commit: increments gather in memory per domain and go to the store one batch at a time.
 * While a commit is in flight new events gather into the next batch, so batches grow with load
 * and an idle engine commits at once. The promise returned for an event settles when the batch
 * holding it is committed (or has failed): that is the moment a request may be acknowledged.
 */
export class CounterEngine {
  readonly #store: CounterStore;
  readonly #options: EngineOptions;
  readonly #observer: IngestObserver;
  #open: Batch | undefined;
  readonly #sealed: Batch[] = [];
  #inFlight = 0;
  #pending = 0;
  #closing = false;
  #idleWaiters: Array<() => void> = [];
  #lastCommitStart = Number.NEGATIVE_INFINITY;
  #paceTimer: NodeJS.Timeout | undefined;
  readonly #stats = { committedBatches: 0, committedEvents: 0, failedBatches: 0 };

  constructor(store: CounterStore, options: Partial<EngineOptions> = {}, observer: IngestObserver = NO_INGEST_OBSERVER) {
    this.#store = store;
    this.#options = { ...DEFAULT_ENGINE_OPTIONS, ...options };
    this.#observer = observer;
  }

  /** Counts one event (and stores the key of its request with it); resolves once it is committed. */
  add(domain: string, type: EventType, key?: ClaimedKey): Promise<void> {
    this.#admit(1, 1);
    const batch = key && this.#options.keyedAlone ? this.#aloneBatch() : this.#openBatch();
    batch.add(domain, type);
    if (key) batch.keys.push(key);
    this.#afterAdd(batch);
    return batch.committed;
  }

  /** Counts several events in one batch, so that they are committed or failed together. */
  addAll(events: readonly DomainEvent[], key?: ClaimedKey): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    this.#admit(events.length, events.length);
    const batch = key && this.#options.keyedAlone ? this.#aloneBatch() : this.#openBatch();
    for (const event of events) batch.add(event.domain, event.type);
    if (key) batch.keys.push(key);
    this.#afterAdd(batch);
    return batch.committed;
  }

  get stats(): EngineStats {
    return { pendingEvents: this.#pending, inFlightBatches: this.#inFlight, ...this.#stats };
  }

  /** Commits everything pending and resolves when nothing is left in flight. */
  flush(): Promise<void> {
    if (this.#open) this.#markReady(this.#open);
    this.#pump();
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** From now on, events are refused with ShuttingDownError (503): nothing of them is counted. */
  refuseNewEvents(): void {
    this.#closing = true;
  }

  /** Refuses new events, then commits what is pending. Does not close the store. */
  async close(): Promise<void> {
    this.refuseNewEvents();
    await this.flush();
  }

  #admit(events: number, maxNewDomains: number): void {
    if (this.#closing) {
      this.#observer.rejected('shutting_down', events);
      throw new ShuttingDownError();
    }
    if (this.#pending + events > this.#options.maxPending && this.#pending > 0) {
      this.#observer.rejected('overloaded', events);
      throw new OverloadedError();
    }
    this.#pending += events;
    // Keep one request's events in one batch: were they split, a failed half would make the
    // client retry the committed half too.
    const open = this.#open;
    if (open && open.deltas.size > 0 && open.deltas.size + maxNewDomains > this.#options.maxBatch) {
      this.#seal(open);
    }
  }

  #openBatch(): Batch {
    if (this.#open) return this.#open;
    const batch = new Batch();
    this.#open = batch;
    if (this.#options.flushMs > 0) {
      batch.timer = setTimeout(() => this.#markReady(batch), this.#options.flushMs);
    } else {
      // Wait for the rest of this tick's events, then commit if a slot is free.
      setImmediate(() => this.#markReady(batch));
    }
    return batch;
  }

  /** A batch for one keyed request (keyedAlone), sealed by #afterAdd once its events are in. */
  #aloneBatch(): Batch {
    if (this.#open && this.#open.events > 0) this.#seal(this.#open);
    const batch = this.#openBatch();
    this.#open = undefined;
    clearTimeout(batch.timer);
    return batch;
  }

  #afterAdd(batch: Batch): void {
    if (batch.deltas.size >= this.#options.maxBatch || (batch.keys.length > 0 && this.#options.keyedAlone)) this.#seal(batch);
  }

  #markReady(batch: Batch): void {
    batch.ready = true;
    this.#pump();
  }

  #seal(batch: Batch): void {
    if (this.#open === batch) this.#open = undefined;
    clearTimeout(batch.timer);
    this.#sealed.push(batch);
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < this.#options.maxInFlight) {
      let batch = this.#sealed.shift();
      if (batch === undefined && this.#open?.ready) {
        if (this.#waitForInterval()) return;
        batch = this.#open;
        this.#open = undefined;
        clearTimeout(batch.timer);
      }
      if (batch === undefined) return;
      this.#commit(batch);
    }
  }

  /** True when the open batch must wait for the commit interval; the pump runs again then. */
  #waitForInterval(): boolean {
    const wait = this.#lastCommitStart + this.#options.commitIntervalMs - performance.now();
    if (wait <= 0) return false;
    this.#paceTimer ??= setTimeout(() => {
      this.#paceTimer = undefined;
      this.#pump();
    }, wait);
    return true;
  }

  #commit(batch: Batch): void {
    this.#inFlight++;
    const started = performance.now();
    this.#lastCommitStart = started;
    this.#store.applyBatch(batch.deltas, batch.keys.length > 0 ? { keys: batch.keys } : undefined).then(
      () => {
        const seconds = (performance.now() - started) / 1000;
        this.#observer.committed(batch.deltas.size, batch.events - batch.bounced, batch.bounced, seconds);
        this.#stats.committedBatches++;
        this.#stats.committedEvents += batch.events;
        this.#settle(batch);
        batch.resolve();
      },
      (error: unknown) => {
        this.#observer.commitFailed(batch.deltas.size, batch.events, (performance.now() - started) / 1000);
        // A store may refuse a batch before taking anything of it in (the embedded store's journal is full).
        this.#observer.rejected(error instanceof OverloadedError ? 'overloaded' : 'store_unavailable', batch.events);
        this.#stats.failedBatches++;
        this.#settle(batch);
        batch.reject(error instanceof SvcError ? error : new StoreUnavailableError('store write failed', { cause: error }));
      },
    );
  }

  #settle(batch: Batch): void {
    this.#inFlight--;
    this.#pending -= batch.events;
    // The next batch has been gathering while this one was in flight: it may go now.
    if (this.#open && this.#open.events > 0) this.#open.ready = true;
    this.#pump();
    if (this.#pending === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }
}
