import type { DomainCounts } from '../core/status.js';
import { createClient, groupConsumer, partitionCount, type Admin, type Consumer, type EachBatchPayload, type KafkaClient, type KafkaMessage, type Producer } from '../kafka/client.js';
import type { KafkaLocation } from '../kafka/url.js';
import { log } from '../log.js';
import { eventsRecords } from '../store/kafka/event-records.js';
import { mapEvent, type EventMapping } from './event-mapping.js';

export interface ForwarderOptions {
  location: KafkaLocation;
  /** The existing topic, one JSON event per record. */
  source: string;
  mapping: EventMapping;
  /** Records that do not parse or map are also copied here (in the same transaction), when set. */
  deadLetterTopic?: string;
  sessionTimeoutMs: number;
  transactionTimeoutMs: number;
  /** The consumer stopped for good (an error kafkajs does not retry): the process should exit, and be restarted. */
  onFatal?: (error: Error) => void;
}

export interface ForwarderStats {
  records: number;
  events: number;
  rejected: number;
}

interface PartitionProducer {
  producer: Producer;
  /** The next source offset to forward. */
  next: number;
}

/**
 * `svc materialize --source TOPIC`, first stage: an existing topic is keyed by anything (a message
 * id, a tenant), so a domain's events may be in any of its partitions. Each batch of a source
 * partition is mapped to events, added up per domain and produced to PREFIX.events (partitioned
 * by domain) in one transaction with the source offset, as Kafka Streams repartitions: forwarded
 * exactly once. The counting stage is the ordinary materializer on PREFIX.events.
 */
export class SourceForwarder {
  readonly #options: ForwarderOptions;
  readonly #client: KafkaClient;
  readonly #consumer: Consumer;
  readonly #admin: Admin;
  readonly #groupId: string;
  readonly #producers = new Map<number, PartitionProducer>();
  #partitions = 0;
  readonly stats: ForwarderStats = { records: 0, events: 0, rejected: 0 };

  constructor(options: ForwarderOptions) {
    this.#options = options;
    this.#client = createClient(options.location.brokers, 'svc-source');
    this.#groupId = `${options.location.prefix}.source.${options.source}`;
    this.#admin = this.#client.admin();
    this.#consumer = groupConsumer(this.#client, this.#groupId, options.sessionTimeoutMs, 512 * 1024);
  }

  async start(): Promise<void> {
    await this.#admin.connect();
    const partitions = await partitionCount(this.#admin, this.#options.location.eventsTopic);
    if (partitions === undefined) throw new Error(`topic ${this.#options.location.eventsTopic} does not exist: run svc setup first`);
    if ((await partitionCount(this.#admin, this.#options.source)) === undefined) throw new Error(`source topic ${this.#options.source} does not exist`);
    this.#partitions = partitions;
    this.#consumer.on(this.#consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) this.#options.onFatal?.(payload.error);
    });
    this.#consumer.on(this.#consumer.events.GROUP_JOIN, ({ payload }) => {
      const assigned = new Set(payload.memberAssignment[this.#options.source] ?? []);
      for (const [partition, entry] of this.#producers) {
        if (assigned.has(partition)) continue;
        this.#producers.delete(partition);
        void entry.producer.disconnect().catch(() => {});
      }
    });
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic: this.#options.source, fromBeginning: true });
    await this.#consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.#batch(payload) });
  }

  async #batch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (!isRunning() || isStale() || batch.messages.length === 0) return;
    const partition = batch.partition;
    const first = Number(batch.messages[0]!.offset);
    let entry = this.#producers.get(partition);
    if (entry === undefined || first > entry.next) {
      entry = await this.#open(partition, first);
      if (first > entry.next) {
        this.#consumer.seek({ topic: this.#options.source, partition, offset: String(entry.next) });
        return;
      }
    }
    const deltas = new Map<string, DomainCounts>();
    const rejected: KafkaMessage[] = [];
    let records = 0;
    let events = 0;
    for (const message of batch.messages) {
      if (Number(message.offset) < entry.next) continue;
      records++;
      try {
        const event = mapEvent(JSON.parse(message.value?.toString('utf8') ?? ''), this.#options.mapping);
        const counts = deltas.get(event.domain) ?? { delivered: 0, bounced: 0 };
        counts[event.type]++;
        deltas.set(event.domain, counts);
        events++;
      } catch (error) {
        rejected.push(message);
        log('debug', 'rejected a source record', { partition, offset: message.offset, error: String((error as Error).message ?? error) });
      }
    }
    const next = Number(batch.lastOffset()) + 1;
    const txn = await entry.producer.transaction();
    try {
      for (const messages of eventsRecords(deltas, this.#partitions)) {
        await txn.send({ topic: this.#options.location.eventsTopic, acks: -1, messages });
      }
      if (rejected.length > 0 && this.#options.deadLetterTopic) {
        const messages = rejected.map(({ key, value, headers }) => ({ key, value, headers }));
        await txn.send({ topic: this.#options.deadLetterTopic, acks: -1, messages });
      }
      await txn.sendOffsets({ consumerGroupId: this.#groupId, topics: [{ topic: this.#options.source, partitions: [{ partition, offset: String(next) }] }] });
      await txn.commit();
    } catch (error) {
      if (txn.isActive()) await txn.abort().catch(() => {});
      log('warn', 'a forwarding transaction failed; the partition is opened again', { partition, error: String(error) });
      this.#producers.delete(partition);
      await entry.producer.disconnect().catch(() => {});
      this.#consumer.seek({ topic: this.#options.source, partition, offset: String(first) });
      await new Promise((resolve) => setTimeout(resolve, 200));
      return;
    }
    entry.next = next;
    this.stats.records += records;
    this.stats.events += events;
    this.stats.rejected += rejected.length;
    resolveOffset(batch.lastOffset());
    await heartbeat().catch(() => {});
  }

  /**
   * Opens the partition's transactional producer, which fences an earlier owner and settles its
   * open transaction; only then is the group's committed offset final, and read.
   */
  async #open(partition: number, first: number): Promise<PartitionProducer> {
    const old = this.#producers.get(partition);
    if (old) await old.producer.disconnect().catch(() => {});
    const producer = this.#client.producer({
      transactionalId: `${this.#groupId}.${partition}`,
      transactionTimeout: this.#options.transactionTimeoutMs,
      maxInFlightRequests: 1,
      idempotent: true,
    });
    await producer.connect();
    const fence = await producer.transaction();
    await fence.abort();
    const [offsets] = await this.#admin.fetchOffsets({ groupId: this.#groupId, topics: [this.#options.source] });
    const committed = Number(offsets?.partitions.find((p) => p.partition === partition)?.offset ?? -1);
    const entry = { producer, next: committed >= 0 ? committed : first };
    this.#producers.set(partition, entry);
    return entry;
  }

  async stop(): Promise<void> {
    await this.#consumer.disconnect().catch(() => {});
    for (const entry of this.#producers.values()) await entry.producer.disconnect().catch(() => {});
    this.#producers.clear();
    await this.#admin.disconnect().catch(() => {});
  }
}
