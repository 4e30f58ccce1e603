import type { DomainCounts } from '../../core/status.js';
import { partitionOf } from '../../kafka/partitioner.js';
import { DELTAS_FORMAT, encodeDeltas, FORMAT_HEADER, type RecordKey } from '../../kafka/records.js';
import type { Deltas } from '../counter-store.js';

/** At ~40 bytes a domain, a record of this many stays well under the broker's 1 MB message.max.bytes. */
const MAX_DOMAINS_PER_RECORD = 10_000;

export interface EventsMessage {
  partition: number;
  value: Buffer;
  headers: Record<string, string>;
}

/**
 * A batch's deltas as PREFIX.events records: one per partition touched (more for a partition
 * with over 10,000 domains), grouped in rounds that hold at most one record per partition, so
 * that each produce request's batch for a partition is one record.
 */
export function eventsRecords(deltas: Deltas, partitions: number, key?: RecordKey): EventsMessage[][] {
  const byPartition = new Map<number, Array<[string, DomainCounts]>>();
  for (const entry of deltas) {
    const partition = partitionOf(entry[0], partitions);
    let list = byPartition.get(partition);
    if (list === undefined) byPartition.set(partition, (list = []));
    list.push(entry);
  }
  const rounds: EventsMessage[][] = [];
  for (const [partition, counts] of byPartition) {
    for (let i = 0, round = 0; i < counts.length; i += MAX_DOMAINS_PER_RECORD, round++) {
      (rounds[round] ??= []).push({
        partition,
        value: encodeDeltas(counts.slice(i, i + MAX_DOMAINS_PER_RECORD), key),
        headers: { [FORMAT_HEADER]: DELTAS_FORMAT },
      });
    }
  }
  return rounds;
}
