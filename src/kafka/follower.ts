import { randomUUID } from 'node:crypto';
import { endOffsets, type Consumer, type KafkaClient, type KafkaMessage } from './client.js';

export interface FollowOptions {
  topic: string;
  /** Only these partitions (all when undefined); the others are paused at their first batch. */
  partitions?: ReadonlySet<number>;
  /** Group id prefix: each follower reads in a group of its own, so it is given every partition. */
  groupPrefix: string;
  /** Handles one batch of a partition's records, in order; the next batch waits for it. */
  onBatch(partition: number, messages: KafkaMessage[]): Promise<void>;
  /** The consumer stopped for good (an error kafkajs does not retry). */
  onFatal?(error: Error): void;
}

export interface Follower {
  /** Resolves once every followed partition has been read up to the end offset it had when following began. */
  caughtUp: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Reads a topic from its beginning (read_committed) and keeps following it. kafkajs has no
 * manual assignment, so a follower is a consumer group of one member with a fresh id; it commits
 * nothing, and its group is deleted when it stops.
 */
export async function follow(client: KafkaClient, options: FollowOptions): Promise<Follower> {
  const groupId = `${options.groupPrefix}.${randomUUID()}`;
  const admin = client.admin();
  await admin.connect();
  const ends = await endOffsets(admin, options.topic);
  const behind = new Set([...ends].filter(([p, end]) => end > 0 && (options.partitions?.has(p) ?? true)).map(([p]) => p));
  // Large fetches: a restore reads whole partitions, and each batch is one write to the local store.
  const consumer: Consumer = client.consumer({
    groupId,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 8 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
    sessionTimeout: 30_000,
    retry: { retries: 10 },
  });
  let markCaughtUp!: () => void;
  let failCaughtUp!: (error: Error) => void;
  const caughtUp = new Promise<void>((resolve, reject) => {
    markCaughtUp = resolve;
    failCaughtUp = reject;
  });
  caughtUp.catch(() => {});
  const progressed = (partition: number, lastOffset: number) => {
    if (behind.has(partition) && lastOffset >= ends.get(partition)! - 1) behind.delete(partition);
    if (behind.size === 0) markCaughtUp();
  };
  if (behind.size === 0) markCaughtUp();
  // Fired for every batch, also those that hold only transaction markers (which never reach eachBatch).
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => progressed(payload.partition, Number(payload.lastOffset)));
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart) return;
    failCaughtUp(payload.error);
    options.onFatal?.(payload.error);
  });
  await consumer.connect();
  await consumer.subscribe({ topic: options.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, pause }) => {
      if (options.partitions && !options.partitions.has(batch.partition)) {
        pause();
        return;
      }
      await options.onBatch(batch.partition, batch.messages);
    },
  });
  return {
    caughtUp,
    stop: async () => {
      await consumer.disconnect().catch(() => {});
      await admin.deleteGroups([groupId]).catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
}
