import { mkdirSync } from 'node:fs';
import { createClient, groupConsumer, partitionCount, type Consumer, type EachBatchPayload, type KafkaClient } from '../kafka/client.js';
import { follow } from '../kafka/follower.js';
import type { KafkaLocation } from '../kafka/url.js';
import { log } from '../log.js';
import { sumBatch } from './batch-sum.js';
import { PartitionTask } from './partition-task.js';

export interface MaterializerOptions {
  location: KafkaLocation;
  /** Directory of the local stores, one per owned partition. */
  state: string;
  sessionTimeoutMs: number;
  transactionTimeoutMs: number;
  /** The consumer stopped for good (an error kafkajs does not retry): the process should exit, and be restarted. */
  onFatal?: (error: Error) => void;
}

export interface MaterializerStats {
  partitions: number[];
  events: number;
  records: number;
  rejected: number;
  duplicates: number;
  restores: number;
}

/**
 * `svc materialize`: a member of the consumer group PREFIX.materialize on the events topic. For
 * each batch of a partition it owns, it publishes the new totals of the changed domains to
 * PREFIX.counts and commits its input offset in one Kafka transaction (read-process-write,
 * exactly once), then counts them into the partition's local store. A partition's transaction
 * runs while the member fetches and sums its next batches (per partition one in flight and one
 * waiting; the partitions' transactions run side by side, each on its own producer). A partition it is given
 * (or whose transaction failed) is first restored from PREFIX.counts, which also says the
 * offset counting resumes at: that, not the group's committed offset, is the truth.
 */
export class Materializer {
  readonly #options: MaterializerOptions;
  readonly #client: KafkaClient;
  readonly #consumer: Consumer;
  readonly #groupId: string;
  readonly #source: string;
  readonly #tasks = new Map<number, PartitionTask>();
  #assigned = new Set<number>();
  #restoring: Promise<void> | undefined;
  readonly stats: MaterializerStats = { partitions: [], events: 0, records: 0, rejected: 0, duplicates: 0, restores: 0 };

  constructor(options: MaterializerOptions) {
    this.#options = options;
    this.#source = options.location.eventsTopic;
    this.#client = createClient(options.location.brokers, 'svc-materialize');
    this.#groupId = `${options.location.prefix}.materialize`;
    // One batch is one transaction, whose round trips (AddPartitions, AddOffsets, TxnOffsetCommit,
    // EndTxn) are paid per batch: large batches pay them less often. Its totals are sent 1,000
    // records at a time, so no request nears the broker's 1 MB limit.
    this.#consumer = groupConsumer(this.#client, this.#groupId, options.sessionTimeoutMs, 1024 * 1024);
  }

  async start(): Promise<void> {
    const admin = this.#client.admin();
    await admin.connect();
    try {
      for (const topic of [this.#source, this.#options.location.countsTopic]) {
        if ((await partitionCount(admin, topic)) === undefined) throw new Error(`topic ${topic} does not exist: run svc setup --store … --partitions N first`);
      }
    } finally {
      await admin.disconnect();
    }
    mkdirSync(this.#options.state, { recursive: true });
    const { GROUP_JOIN, CRASH } = this.#consumer.events;
    this.#consumer.on(CRASH, ({ payload }) => {
      if (!payload.restart) this.#options.onFatal?.(payload.error);
    });
    this.#consumer.on(GROUP_JOIN, ({ payload }) => {
      this.#assigned = new Set(payload.memberAssignment[this.#source] ?? []);
      this.stats.partitions = [...this.#assigned].sort((a, b) => a - b);
      log('info', 'partitions assigned', { topic: this.#source, partitions: this.stats.partitions });
      // Partitions that went elsewhere: their next owner restores them; ours are stale from now on.
      for (const [partition, task] of this.#tasks) {
        if (!this.#assigned.has(partition)) {
          this.#tasks.delete(partition);
          void task.close();
        }
      }
    });
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic: this.#source, fromBeginning: true });
    await this.#consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.#batch(payload) });
  }

  async #batch({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (!isRunning() || isStale() || batch.messages.length === 0) return;
    const partition = batch.partition;
    const first = Number(batch.messages[0]!.offset);
    let task = this.#tasks.get(partition);
    // Someone else counted past us since (they fenced us), or we never had it: restore.
    if (task === undefined || first > task.next) {
      await this.#restore(partition, heartbeat);
      task = this.#tasks.get(partition);
      if (task === undefined) return;
      // Nothing of the partition was ever counted: start where the log starts (retention may have cut it).
      if (!task.counting) task.next = first;
      if (first > task.next) {
        // The group's offset is ahead of what the counts say is counted: go back, lose nothing.
        log('warn', 'the group offset is ahead of the counts; counting again from the counts offset', { partition, groupOffset: first, next: task.next });
        this.#consumer.seek({ topic: this.#source, partition, offset: String(task.next) });
        return;
      }
    }
    const sum = await sumBatch(batch.messages, task.next, task.keys, partition);
    this.stats.records += sum.records;
    this.stats.duplicates += sum.duplicates;
    const commit = { deltas: sum.deltas, keys: sum.keys, next: Number(batch.lastOffset()) + 1, time: sum.time };
    const topics = { counts: this.#options.location.countsTopic, events: this.#source };
    const queued = await task.queue(commit, topics, this.#groupId, (error) => {
      if (error === undefined) {
        this.stats.events += sum.events;
        this.stats.rejected += sum.rejected;
      } else this.#failed(task, first, error);
    });
    if (!queued) return;
    resolveOffset(batch.lastOffset());
    await heartbeat().catch(() => {});
  }

  /** A transaction failed (fenced, or the broker unreachable): the partition is restored, then counted again from `first`. */
  #failed(task: PartitionTask, first: number, error: unknown): void {
    const { partition } = task;
    log('warn', 'a transaction failed; the partition is restored before it is counted again', { partition, error: String(error) });
    if (this.#tasks.get(partition) !== task) return;
    this.#tasks.delete(partition);
    void task.close();
    if (this.#assigned.has(partition)) this.#consumer.seek({ topic: this.#source, partition, offset: String(first) });
  }

  /** Restores `partition`, with every other assigned partition not restored yet, in one read of PREFIX.counts. */
  async #restore(partition: number, heartbeat: () => Promise<void>): Promise<void> {
    while (this.#restoring) await this.#restoring;
    if (this.#tasks.has(partition)) return;
    this.#restoring = this.#restoreMissing(partition, heartbeat).finally(() => (this.#restoring = undefined));
    await this.#restoring;
  }

  async #restoreMissing(partition: number, heartbeat: () => Promise<void>): Promise<void> {
    const wanted = [...new Set([partition, ...this.#assigned])].filter((p) => !this.#tasks.has(p));
    const started = performance.now();
    const beat = setInterval(() => void heartbeat().catch(() => {}), 500);
    const opened = new Map<number, PartitionTask>();
    try {
      const { location, state, transactionTimeoutMs } = this.#options;
      for (const p of wanted) {
        const transactionalId = `${this.#groupId}.${p}`;
        opened.set(p, await PartitionTask.open(this.#client, p, { state, transactionalId, transactionTimeoutMs }));
      }
      // Every producer is open (the earlier owners fenced, their transactions settled): the end offsets now are final.
      const follower = await follow(this.#client, {
        topic: location.countsTopic,
        partitions: new Set(wanted),
        groupPrefix: `${this.#groupId}.restore`,
        onBatch: (p, messages) => opened.get(p)!.load(messages),
      });
      try {
        await follower.caughtUp;
      } finally {
        await follower.stop();
      }
      for (const task of opened.values()) await task.loaded();
      for (const [p, task] of opened) this.#tasks.set(p, task);
      this.stats.restores += wanted.length;
      log('info', 'partitions restored', { partitions: wanted, next: wanted.map((p) => opened.get(p)!.next), ms: Math.round(performance.now() - started) });
    } catch (error) {
      for (const task of opened.values()) await task.close();
      throw error;
    } finally {
      clearInterval(beat);
    }
  }

  async stop(): Promise<void> {
    await this.#consumer.disconnect().catch(() => {});
    for (const task of this.#tasks.values()) await task.close();
    this.#tasks.clear();
  }
}
