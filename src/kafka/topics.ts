import type { Admin } from './client.js';
import { partitionCount } from './client.js';
import type { KafkaLocation } from './url.js';
import { ValidationError } from '../core/errors.js';

/**
 * svc setup on Kafka: creates PREFIX.events and PREFIX.counts (compacted) with the same number
 * of partitions, or says what exists. Idempotent. The two must keep the same count: the counts
 * of events partition p are in counts partition p, and a domain's partition depends on the count.
 */
export async function setupTopics(admin: Admin, location: KafkaLocation, partitions: number | undefined): Promise<string[]> {
  const notes: string[] = [];
  const existing = {
    events: await partitionCount(admin, location.eventsTopic),
    counts: await partitionCount(admin, location.countsTopic),
  };
  const wanted = partitions ?? existing.events ?? existing.counts;
  if (wanted === undefined) throw new ValidationError('the topics do not exist yet: say how many partitions with --partitions N');
  for (const [kind, topic, configEntries] of [
    ['events', location.eventsTopic, []],
    ['counts', location.countsTopic, [{ name: 'cleanup.policy', value: 'compact' }]],
  ] as const) {
    const has = existing[kind];
    if (has !== undefined) {
      if (has !== wanted) {
        throw new ValidationError(`topic ${topic} exists with ${has} partitions, not ${wanted}: the two topics must have the same count`);
      }
      notes.push(`topic ${topic} exists with ${has} partitions`);
      continue;
    }
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: wanted, configEntries: [...configEntries] }] });
    notes.push(`created topic ${topic} with ${wanted} partitions${configEntries.length ? ' (cleanup.policy=compact)' : ''}`);
  }
  // svc replay's checkpoints: one record per file and group of chunks, read whole at each replay.
  if ((await partitionCount(admin, location.replaysTopic)) === undefined) {
    const configEntries = [{ name: 'cleanup.policy', value: 'compact' }];
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: location.replaysTopic, numPartitions: 1, configEntries }] });
    notes.push(`created topic ${location.replaysTopic} with 1 partition (cleanup.policy=compact)`);
  } else {
    notes.push(`topic ${location.replaysTopic} exists`);
  }
  return notes;
}
