import type { DomainCounts } from '../core/status.js';
import type { KafkaMessage } from '../kafka/client.js';
import { decodeEventsRecord, FORMAT_HEADER, type EventsRecord } from '../kafka/records.js';
import { log } from '../log.js';

/** What a batch of PREFIX.events records adds to a partition: one transaction's worth. */
export interface BatchSum {
  deltas: Map<string, DomainCounts>;
  /** Idempotency keys first seen in the batch, with when each expires. */
  keys: Map<string, number>;
  /** The latest production time of its records (ms): the partition's clock for forgetting keys. */
  time: number;
  events: number;
  records: number;
  rejected: number;
  duplicates: number;
}

const decodeSvcRecord = (message: KafkaMessage) => decodeEventsRecord(message.value, message.headers?.[FORMAT_HEADER]?.toString());

/**
 * Adds up the records of a batch from offset `from` on (those before are counted already).
 * A record that does not decode is rejected, never fatal; one whose idempotency key was counted
 * (in `counted`, or earlier in the batch) at a later production time is a duplicate and adds nothing.
 * This loop is most of a materializer's CPU: it reads each record's counts as parsed, without a copy.
 */
export async function sumBatch(messages: readonly KafkaMessage[], from: number, counted: ReadonlyMap<string, number>, partition: number): Promise<BatchSum> {
  const sum: BatchSum = { deltas: new Map(), keys: new Map(), time: 0, events: 0, records: 0, rejected: 0, duplicates: 0 };
  const { deltas } = sum;
  let slice = performance.now();
  for (const message of messages) {
    // A batch of 1 MB takes some 20 ms to sum: the transactions in flight go on every 2 ms (each
    // of their round trips would otherwise wait for the whole batch).
    if (performance.now() - slice > 2) {
      await new Promise((resolve) => setImmediate(resolve));
      slice = performance.now();
    }
    if (Number(message.offset) < from) continue;
    sum.records++;
    let record: EventsRecord;
    try {
      record = decodeSvcRecord(message);
    } catch (error) {
      sum.rejected++;
      log('debug', 'rejected a record', { partition, offset: message.offset, error: String((error as Error).message ?? error) });
      continue;
    }
    // When the record was produced (its request answered), not when it is counted: a member
    // that lags, or restores, must not take a repeat sent within the window for a new request.
    const producedAt = Number(message.timestamp);
    if (producedAt > sum.time) sum.time = producedAt;
    if (record.key) {
      const seen = sum.keys.get(record.key.key) ?? counted.get(record.key.key);
      if (seen !== undefined && seen > producedAt) {
        sum.duplicates++;
        continue;
      }
      sum.keys.set(record.key.key, record.key.expiresAt);
    }
    const { counts } = record;
    for (const domain in counts) {
      const [delivered, bounced] = counts[domain]!;
      const total = deltas.get(domain);
      if (total === undefined) deltas.set(domain, { delivered, bounced });
      else {
        total.delivered += delivered;
        total.bounced += bounced;
      }
      sum.events += delivered + bounced;
    }
  }
  return sum;
}
