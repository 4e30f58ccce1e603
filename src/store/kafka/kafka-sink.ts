import { InDoubtError, SvcError, StoreUnavailableError } from '../../core/errors.js';
import type { KeyClaim } from '../../core/idempotency.js';
import type { DomainCounts } from '../../core/status.js';
import { createClient, partitionCount, type Admin, type KafkaClient, type Producer } from '../../kafka/client.js';
import { eventsRecords } from './event-records.js';
import { ReplayLog } from './replay-log.js';
import { setupTopics } from '../../kafka/topics.js';
import type { KafkaLocation } from '../../kafka/url.js';
import type { BatchExtras, CounterStore, Deltas, ReplayCheckpoint } from '../counter-store.js';

/** A reader asked a process that only writes to Kafka. */
export class ReadsElsewhereError extends SvcError {
  constructor(url: string) {
    super('SVC_READS_ELSEWHERE', `this daemon writes events to Kafka and answers no reads: ask svc serve-read --store ${url} --state DIR`);
  }
}

export interface KafkaSinkOptions {
  /** The --store URL, for messages. */
  url: string;
  /** How long a produce may retry before the batch fails (503). */
  timeoutMs: number;
  /** svc setup: partitions of the topics it creates. */
  partitions?: number;
}

/**
 * serve-http's and serve-grpc's store on Kafka: each group commit becomes one record per
 * partition it touches (see records.ts), produced by an idempotent producer with acks=all, and
 * the batch is acknowledged once Kafka has acknowledged every record. Nothing is counted here:
 * `svc materialize` counts, and `svc serve-read` answers reads.
 */
export class KafkaSink implements CounterStore {
  /** The engine gives a keyed request a batch of its own: the materializer drops exactly its events when the key repeats. */
  readonly keyedBatchesAlone = true;
  readonly #location: KafkaLocation;
  readonly #options: KafkaSinkOptions;
  readonly #client: KafkaClient;
  readonly #admin: Admin;
  readonly #replays: ReplayLog;
  /** Idempotent producers not sending now: one per batch in flight, so batches overlap (--max-in-flight). */
  readonly #idle: Producer[] = [];
  readonly #producers = new Set<Producer>();
  #partitions: Promise<number> | undefined;

  constructor(location: KafkaLocation, options: KafkaSinkOptions) {
    this.#location = location;
    this.#options = options;
    this.#client = createClient(location.brokers, 'svc-ingest', options.timeoutMs);
    this.#admin = this.#client.admin();
    this.#replays = new ReplayLog(this.#client, location);
  }

  /** Learns the partition count of PREFIX.events, once; a failure is tried again at the next batch. */
  #connect(): Promise<number> {
    this.#partitions ??= (async () => {
      await this.#admin.connect();
      const partitions = await partitionCount(this.#admin, this.#location.eventsTopic);
      if (partitions === undefined) {
        throw new StoreUnavailableError(`topic ${this.#location.eventsTopic} does not exist: run svc setup --store ${this.#options.url} --partitions N`);
      }
      return partitions;
    })().catch((error) => {
      this.#partitions = undefined;
      throw error instanceof SvcError ? error : new StoreUnavailableError('Kafka unreachable', { cause: error });
    });
    return this.#partitions;
  }

  /**
   * A connected producer for one batch. Its retries are bounded so that a request fails (503)
   * rather than hangs while Kafka is away; a producer whose send failed is dropped (the next has
   * a new producer id), so that its sequence numbers never need to agree with what the broker kept.
   */
  async #take(): Promise<Producer> {
    const idle = this.#idle.pop();
    if (idle) return idle;
    const producer = this.#client.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { retries: 8, maxRetryTime: this.#options.timeoutMs, initialRetryTime: 100 },
    });
    this.#producers.add(producer);
    try {
      await producer.connect();
    } catch (error) {
      this.#drop(producer);
      throw new StoreUnavailableError('Kafka unreachable', { cause: error });
    }
    return producer;
  }

  #drop(producer: Producer): void {
    this.#producers.delete(producer);
    void producer.disconnect().catch(() => {});
  }

  async applyBatch(deltas: Deltas, { checkpoint, keys = [] }: BatchExtras = {}): Promise<void> {
    const partitions = await this.#deadline(this.#connect(), () => new StoreUnavailableError('Kafka unreachable'));
    if (checkpoint) return this.#replays.apply(deltas, checkpoint, partitions);
    // With keyedBatchesAlone a keyed batch is one request: its key travels in each of its records.
    if (keys.length > 1) throw new Error('a keyed batch must hold one request');
    const key = keys.length === 1 ? { key: keys[0]!.key, expiresAt: keys[0]!.expiresAt } : undefined;
    const rounds = eventsRecords(deltas, partitions, key);
    const producer = await this.#deadline(this.#take(), () => new StoreUnavailableError('Kafka unreachable'));
    try {
      const send = async () => {
        for (const messages of rounds) await producer.send({ topic: this.#location.eventsTopic, acks: -1, messages });
      };
      await this.#deadline(send(), () => new InDoubtError(`Kafka did not acknowledge the batch within ${this.#options.timeoutMs} ms`));
    } catch (error) {
      this.#drop(producer);
      // Some records may be in Kafka: the batch fails (503) but may be counted all the same.
      throw new InDoubtError('Kafka did not acknowledge the batch', { cause: error });
    }
    this.#idle.push(producer);
  }

  /**
   * `work`, or `error()` once --store-timeout has passed (work that completes later is not waited
   * for: a send that lands after it was answered 503 is the in-doubt case).
   */
  #deadline<T>(work: Promise<T>, error: () => Error): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(error()), this.#options.timeoutMs);
    });
    work.catch(() => {});
    return Promise.race([work, expired]).finally(() => clearTimeout(timer));
  }

  /** Keys are checked where the counts are made (the materializer): here every key is new. */
  async claimKey(): Promise<KeyClaim> {
    return { state: 'claimed' };
  }

  async releaseKey(): Promise<void> {}

  /** svc replay: fences any other run of the same file, then reads where it got to. */
  async getCheckpoint(source: string): Promise<ReplayCheckpoint | undefined> {
    try {
      return await this.#replays.checkpoint(source);
    } catch (error) {
      throw error instanceof SvcError ? error : new StoreUnavailableError('Kafka unreachable', { cause: error });
    }
  }

  async get(): Promise<DomainCounts | undefined> {
    throw new ReadsElsewhereError(this.#options.url);
  }

  async getMany(): Promise<Map<string, DomainCounts>> {
    throw new ReadsElsewhereError(this.#options.url);
  }

  async setup(): Promise<string[]> {
    await this.#admin.connect();
    return setupTopics(this.#admin, this.#location, this.#options.partitions);
  }

  async ping(): Promise<void> {
    try {
      const probe = async () => {
        await this.#connect();
        // A round trip: a probe must see Kafka, not what this process remembers of it.
        await this.#admin.fetchTopicMetadata({ topics: [this.#location.eventsTopic] });
      };
      await this.#deadline(probe(), () => new StoreUnavailableError('Kafka unreachable'));
    } catch (error) {
      throw error instanceof SvcError ? error : new StoreUnavailableError('Kafka unreachable', { cause: error });
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...[...this.#producers].map((p) => p.disconnect()), this.#admin.disconnect(), this.#replays.close()]);
  }
}
