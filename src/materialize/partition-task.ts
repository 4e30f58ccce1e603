import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainCounts } from '../core/status.js';
import type { KafkaClient, KafkaMessage, Producer } from '../kafka/client.js';
import { decodeCountsRecord, encodeCounts, IDEMPOTENCY_KEY_PREFIX, NEXT_OFFSET_KEY } from '../kafka/records.js';
import { LmdbStore } from '../store/lmdb/lmdb-store.js';

type Transaction = Awaited<ReturnType<Producer['transaction']>>;

/** What one transaction of a partition publishes and commits. */
export interface PartitionCommit {
  deltas: Map<string, DomainCounts>;
  keys: Map<string, number>;
  /** The next events offset once this is committed. */
  next: number;
  /** The latest production time of its records (ms): the partition's clock for forgetting keys. */
  time: number;
}

/**
 * Records per produce request: keeps each record batch well under the broker's message.max.bytes
 * (1 MB), and kafkajs' grouping of a request's records by partition, which copies the group's
 * array for every record (quadratic), cheap.
 */
const RECORDS_PER_SEND = 1000;

/**
 * One events partition this member counts: its counts in an embedded store of its own
 * (DIR/partition-N), the idempotency keys seen in it, the next offset to count, and a
 * transactional producer whose id belongs to the partition. Whoever opens the partition's
 * producer fences the one before (Kafka bumps the epoch and aborts its open transaction), so
 * of two members that both think they own a partition, only the last to open it can commit.
 */
export class PartitionTask {
  readonly partition: number;
  /** The events of the partition below this offset are counted in `store`, or in the commit in flight. */
  next = 0;
  /** False until a `svc/next-offset` record is restored or a commit queued: nothing of the partition was counted yet. */
  counting = false;
  /** Idempotency keys counted in the partition (or in the commit in flight), with when each expires. */
  readonly keys = new Map<string, number>();
  /** Set once a commit failed: the task's state may be ahead of PREFIX.counts; it must be opened again. */
  failed = false;
  /** The last commit queued, and the one before it: each starts when the one before ends (its totals build on them). Never reject. */
  #last: Promise<void> = Promise.resolve();
  #beforeLast: Promise<void> = Promise.resolve();
  #closed: Promise<void> | undefined;
  /** Keys past their window, still in PREFIX.counts: the next commit deletes them (tombstones) for compaction to drop. */
  readonly #expired = new Set<string>();
  #lastSweep = 0;
  readonly #store: LmdbStore;
  readonly #producer: Producer;
  #pending: Transaction | undefined;
  #loading: Promise<void> = Promise.resolve();
  #loadFailure: unknown;

  private constructor(partition: number, store: LmdbStore, producer: Producer) {
    this.partition = partition;
    this.#store = store;
    this.#producer = producer;
  }

  /**
   * Opens the partition afresh: an empty local store, and the producer opened (which fences any
   * earlier owner and settles its open transaction). The caller then restores it with `load`.
   */
  static async open(client: KafkaClient, partition: number, options: { state: string; transactionalId: string; transactionTimeoutMs: number }) {
    const directory = join(options.state, `partition-${partition}`);
    // Whatever was here (an earlier run, another owner's partition) may be behind or ahead of the topic.
    rmSync(directory, { recursive: true, force: true });
    const store = await LmdbStore.open(directory, { use: 'bulk' });
    const producer = client.producer({
      transactionalId: options.transactionalId,
      transactionTimeout: options.transactionTimeoutMs,
      maxInFlightRequests: 1,
      idempotent: true,
    });
    try {
      await producer.connect();
      const task = new PartitionTask(partition, store, producer);
      // InitProducerId happens at the first transaction: begun now, it fences, and serves the first commit.
      task.#pending = await producer.transaction();
      return task;
    } catch (error) {
      await producer.disconnect().catch(() => {});
      await store.close();
      throw error;
    }
  }

  /**
   * Restores from records of PREFIX.counts, read in order. The domains' totals are written while
   * the caller reads the next records: `loaded()` says when all are.
   */
  async load(messages: KafkaMessage[]): Promise<void> {
    const totals: Array<[string, DomainCounts]> = [];
    for (const message of messages) {
      const record = decodeCountsRecord(message.key, message.value);
      if (record.kind === 'domain') totals.push([record.domain, record.counts]);
      else if (record.kind === 'next-offset') {
        this.next = record.next;
        this.counting = true;
      }
      // Every key not deleted yet: whether its window is over is decided by the records still to
      // count (their production time), not by this member's clock (see #sweep).
      else if (record.kind === 'key') this.keys.set(record.key, record.expiresAt);
      else if (record.kind === 'deleted' && record.key.startsWith(IDEMPOTENCY_KEY_PREFIX)) {
        this.keys.delete(record.key.slice(IDEMPOTENCY_KEY_PREFIX.length));
      }
    }
    // One batch written at a time: the puts of the next wait in memory, not in lmdb-js's queue.
    await this.#loading;
    if (this.#loadFailure !== undefined) return;
    // The store was empty at open and the records come in order: the last total of a domain is its count.
    this.#loading = this.#store.putTotals(totals).catch((error) => {
      this.#loadFailure = error;
    });
  }

  /** Resolves once every record given to `load` is in the local store; rejects if one could not be written. */
  async loaded(): Promise<void> {
    await this.#loading;
    if (this.#loadFailure !== undefined) throw this.#loadFailure;
  }

  /**
   * Queues `commit` to start when the one before it ends, and returns without waiting for it as
   * soon as at most one commit waits behind the one in flight: the member fetches and sums its
   * next batches while transactions make their round trips (each partition's on its own producer,
   * side by side). `settle` hears how it ended. Returns false, queuing nothing, once one failed.
   */
  async queue(commit: PartitionCommit, topics: { counts: string; events: string }, groupId: string, settle: (error?: unknown) => void): Promise<boolean> {
    // At most one commit waits behind the one in flight: the fetches go on while both are under way.
    await this.#beforeLast;
    if (this.failed) return false;
    // The next batch is summed against these; if a commit fails the whole task is dropped.
    this.next = commit.next;
    this.counting = true;
    for (const [key, expiresAt] of commit.keys) this.keys.set(key, expiresAt);
    this.#beforeLast = this.#last;
    this.#last = this.#last.then(async () => {
      // Its state builds on a commit that failed: it is dropped with the task, unheard.
      if (this.failed) return;
      try {
        await this.#commit(commit, topics, groupId);
      } catch (error) {
        this.failed = true;
        settle(error);
        return;
      }
      settle();
    });
    return true;
  }

  /**
   * Publishes the new totals of the changed domains, the keys and the next offset to PREFIX.counts
   * and commits the consumer group's offset, in one transaction; then counts locally. On any
   * failure the transaction is aborted.
   */
  async #commit(commit: PartitionCommit, topics: { counts: string; events: string }, groupId: string): Promise<void> {
    const stored = await this.#store.getMany([...commit.deltas.keys()]);
    const messages: Array<{ key: string; value: Buffer | null; partition: number }> = [];
    for (const [domain, delta] of commit.deltas) {
      const before = stored.get(domain) ?? { delivered: 0, bounced: 0 };
      const after = { delivered: before.delivered + delta.delivered, bounced: before.bounced + delta.bounced };
      messages.push({ key: domain, value: encodeCounts(after), partition: this.partition });
    }
    for (const [key, expiresAt] of commit.keys) {
      messages.push({ key: IDEMPOTENCY_KEY_PREFIX + key, value: Buffer.from(JSON.stringify({ expiresAt })), partition: this.partition });
    }
    const expired = this.#sweep(commit.time);
    for (const key of expired) messages.push({ key: IDEMPOTENCY_KEY_PREFIX + key, value: null, partition: this.partition });
    messages.push({ key: NEXT_OFFSET_KEY, value: Buffer.from(JSON.stringify({ next: commit.next })), partition: this.partition });
    const txn = this.#pending ?? (await this.#producer.transaction());
    this.#pending = undefined;
    try {
      for (let i = 0; i < messages.length; i += RECORDS_PER_SEND) {
        await txn.send({ topic: topics.counts, acks: -1, messages: messages.slice(i, i + RECORDS_PER_SEND) });
      }
      await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: topics.events, partitions: [{ partition: this.partition, offset: String(commit.next) }] }] });
      await txn.commit();
    } catch (error) {
      if (txn.isActive()) await txn.abort().catch(() => {});
      throw error;
    }
    await this.#store.applyBatch(commit.deltas);
    for (const key of expired) this.#expired.delete(key);
  }

  /**
   * Keys whose window has passed (looked for at most once a minute), to delete with the next
   * commit. `time` is the partition's clock: the latest production time of the records counted,
   * so a key is kept while a repeat produced within its window may still be ahead in the log.
   */
  #sweep(time: number): string[] {
    if (time - this.#lastSweep >= 60_000) {
      this.#lastSweep = time;
      for (const [key, expiresAt] of this.keys) {
        if (expiresAt > time) continue;
        this.keys.delete(key);
        this.#expired.add(key);
      }
    }
    // A bounded number per commit: a restore may find millions.
    const batch: string[] = [];
    for (const key of this.#expired) {
      if (batch.length === RECORDS_PER_SEND) break;
      batch.push(key);
    }
    return batch;
  }

  /** Lets the commit in flight end (a newer owner may fence it first), then closes. */
  close(): Promise<void> {
    this.#closed ??= this.#last.then(async () => {
      await this.#producer.disconnect().catch(() => {});
      await this.#store.close();
    });
    return this.#closed;
  }
}
