import { InDoubtError, SvcError, StoreUnavailableError, ValidationError } from '../../core/errors.js';
import type { KeyClaim } from '../../core/idempotency.js';
import type { DomainCounts } from '../../core/status.js';
import { createClient, partitionCount, type Admin, type KafkaClient, type Producer } from '../../kafka/client.js';
import { partitionOf } from '../../kafka/partitioner.js';
import { DELTAS_FORMAT, encodeDeltas, FORMAT_HEADER } from '../../kafka/records.js';
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
  #producer: Producer | undefined;
  #ready: Promise<{ producer: Producer; partitions: number }> | undefined;

  constructor(location: KafkaLocation, options: KafkaSinkOptions) {
    this.#location = location;
    this.#options = options;
    this.#client = createClient(location.brokers, 'svc-ingest');
    this.#admin = this.#client.admin();
  }

  /**
   * Connects a producer and learns the partition count; a failure is tried again at the next
   * batch. The producer's retries are bounded so that a request fails (503) rather than hangs
   * while Kafka is away; a producer whose send failed is replaced (a new producer id), so that
   * its sequence numbers never need to agree with what the broker kept.
   */
  #connect(): Promise<{ producer: Producer; partitions: number }> {
    this.#ready ??= (async () => {
      const producer = this.#client.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        retry: { retries: 8, maxRetryTime: this.#options.timeoutMs, initialRetryTime: 100 },
      });
      this.#producer = producer;
      await producer.connect();
      await this.#admin.connect();
      const partitions = await partitionCount(this.#admin, this.#location.eventsTopic);
      if (partitions === undefined) {
        throw new StoreUnavailableError(`topic ${this.#location.eventsTopic} does not exist: run svc setup --store ${this.#options.url} --partitions N`);
      }
      return { producer, partitions };
    })().catch((error) => {
      void this.#producer?.disconnect().catch(() => {});
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  async applyBatch(deltas: Deltas, { checkpoint, keys = [] }: BatchExtras = {}): Promise<void> {
    if (checkpoint) throw new ValidationError('svc replay cannot write to a kafka:// store yet');
    const { producer, partitions } = await this.#connect().catch((error) => {
      throw error instanceof SvcError ? error : new StoreUnavailableError('Kafka unreachable', { cause: error });
    });
    const byPartition = new Map<number, Array<[string, DomainCounts]>>();
    for (const entry of deltas) {
      const partition = partitionOf(entry[0], partitions);
      let list = byPartition.get(partition);
      if (list === undefined) byPartition.set(partition, (list = []));
      list.push(entry);
    }
    // With keyedBatchesAlone a keyed batch is one request: its key travels in each of its records.
    const key = keys.length === 1 ? { key: keys[0]!.key, expiresAt: keys[0]!.expiresAt } : undefined;
    if (keys.length > 1) throw new Error('a keyed batch must hold one request');
    const messages = [...byPartition].map(([partition, counts]) => ({
      partition,
      value: encodeDeltas(counts, key),
      headers: { [FORMAT_HEADER]: DELTAS_FORMAT },
    }));
    try {
      await producer.send({ topic: this.#location.eventsTopic, acks: -1, messages });
    } catch (error) {
      if (this.#producer === producer) {
        this.#ready = undefined;
        void producer.disconnect().catch(() => {});
      }
      // Some records may be in Kafka: the batch fails (503) but may be counted all the same.
      throw new InDoubtError('Kafka did not acknowledge the batch', { cause: error });
    }
  }

  /** Keys are checked where the counts are made (the materializer): here every key is new. */
  async claimKey(): Promise<KeyClaim> {
    return { state: 'claimed' };
  }

  async releaseKey(): Promise<void> {}

  async getCheckpoint(): Promise<ReplayCheckpoint | undefined> {
    throw new ValidationError('svc replay cannot write to a kafka:// store yet: send the file with POST /events to serve-http on it');
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
      await this.#connect();
    } catch (error) {
      throw error instanceof SvcError ? error : new StoreUnavailableError('Kafka unreachable', { cause: error });
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#producer?.disconnect(), this.#admin.disconnect()]);
  }
}
