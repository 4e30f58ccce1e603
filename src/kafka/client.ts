import { createRequire } from 'node:module';
import type { Admin, Consumer, ConsumerConfig, Kafka, Producer, ProducerConfig } from 'kafkajs';
import { log } from '../log.js';

/**
 * The one module that knows the Kafka client library (kafkajs 2.2.4: pure JavaScript, so `npm ci`
 * never builds anything; transactions with offsets work on the test broker with one and three
 * brokers; the fastest consumer measured. Its limits: eager rebalancing only, and it has been
 * looking for maintainers since 2023). Everything else imports these wrappers, so that another
 * client can replace it here.
 */
export type { Admin, Consumer, EachBatchPayload, Producer, KafkaMessage } from 'kafkajs';

type KafkaJs = typeof import('kafkajs');
let kafkajs: KafkaJs | undefined;
// Loaded on first use: only Kafka commands pay for it.
const load = (): KafkaJs => (kafkajs ??= createRequire(import.meta.url)('kafkajs') as KafkaJs);

export interface KafkaClient {
  kafka: Kafka;
  producer(config?: ProducerConfig): Producer;
  consumer(config: ConsumerConfig): Consumer;
  admin(): Admin;
}

/**
 * A client of the brokers. `timeoutMs` bounds how long connecting retries (serve-http's
 * --store-timeout: a request must fail in time rather than wait for kafkajs' default ~10 s).
 */
export function createClient(brokers: string[], clientId: string, timeoutMs?: number): KafkaClient {
  const { Kafka, Partitioners, logLevel } = load();
  const levels: Record<number, 'error' | 'warn' | 'debug'> = { [logLevel.ERROR]: 'error', [logLevel.WARN]: 'warn' };
  const kafka = new Kafka({
    clientId,
    brokers,
    connectionTimeout: Math.min(3_000, timeoutMs ?? 3_000),
    ...(timeoutMs === undefined ? {} : { retry: { retries: 3, initialRetryTime: 100, maxRetryTime: timeoutMs } }),
    logLevel: logLevel.WARN,
    // kafkajs' own lines go through our log, one JSON object each, like every other line.
    logCreator: () => ({ level, log: entry }) => {
      const { message, ...fields } = entry;
      // Expected: the ingest producer bounds its retries and is replaced after a failure (see KafkaSink).
      const expected = message.startsWith('Limiting retries for the idempotent producer');
      log(expected ? 'debug' : (levels[level] ?? 'debug'), `kafka: ${message}`, fields);
    },
  });
  return {
    kafka,
    // Every record svc writes names its partition; the partitioner is set only to silence
    // kafkajs' warning about its v2 default.
    producer: (config = {}) => kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...config }),
    consumer: (config) => kafka.consumer(config),
    admin: () => kafka.admin(),
  };
}

/**
 * A consumer-group member that reads committed records only (read_committed: what an aborted
 * transaction wrote is never counted), heartbeats six times per session timeout, and fetches up
 * to `maxBytesPerPartition` a partition at a time.
 */
export function groupConsumer(client: KafkaClient, groupId: string, sessionTimeoutMs: number, maxBytesPerPartition: number): Consumer {
  return client.consumer({
    groupId,
    sessionTimeout: sessionTimeoutMs,
    heartbeatInterval: Math.max(100, Math.floor(sessionTimeoutMs / 6)),
    rebalanceTimeout: Math.max(sessionTimeoutMs, 10_000),
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition,
  });
}

/** The end offset (high watermark) of every partition of a topic. */
export async function endOffsets(admin: Admin, topic: string): Promise<Map<number, number>> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
}

/** Partitions of a topic, or undefined when it does not exist. */
export async function partitionCount(admin: Admin, topic: string): Promise<number | undefined> {
  const topics = await admin.listTopics();
  if (!topics.includes(topic)) return undefined;
  const { topics: [metadata] } = await admin.fetchTopicMetadata({ topics: [topic] });
  return metadata!.partitions.length;
}
