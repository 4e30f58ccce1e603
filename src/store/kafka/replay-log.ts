import { StoreUnavailableError } from '../../core/errors.js';
import { partitionCount, type KafkaClient, type Producer } from '../../kafka/client.js';
import { follow } from '../../kafka/follower.js';
import type { KafkaLocation } from '../../kafka/url.js';
import type { Deltas, ReplayCheckpoint } from '../counter-store.js';
import { eventsRecords } from './event-records.js';

/**
 * svc replay onto Kafka, exactly once per file: each group of chunks is produced to
 * PREFIX.events in one transaction with its checkpoint, which goes to PREFIX.replays (compacted,
 * keyed by the file's fingerprint). The transactional id is the file's, so a run of the same
 * file fences an earlier one (killed, or still running elsewhere) and settles its open
 * transaction before reading where it got to: the events and the checkpoint are both there, or
 * neither.
 */
export class ReplayLog {
  readonly #client: KafkaClient;
  readonly #location: KafkaLocation;
  readonly #producers = new Map<string, Producer>();
  /** What PREFIX.replays holds for a file, as of this process's last read or commit. */
  readonly #recorded = new Map<string, ReplayCheckpoint | undefined>();

  constructor(client: KafkaClient, location: KafkaLocation) {
    this.#client = client;
    this.#location = location;
  }

  /** Fences any other run of the file, then reads its last checkpoint. */
  async checkpoint(source: string): Promise<ReplayCheckpoint | undefined> {
    await this.#producer(source);
    const admin = this.#client.admin();
    await admin.connect();
    try {
      if ((await partitionCount(admin, this.#location.replaysTopic)) === undefined) {
        throw new StoreUnavailableError(`topic ${this.#location.replaysTopic} does not exist: run svc setup --store … again (it adds it)`);
      }
    } finally {
      await admin.disconnect();
    }
    let latest: ReplayCheckpoint | undefined;
    const follower = await follow(this.#client, {
      topic: this.#location.replaysTopic,
      groupPrefix: `${this.#location.prefix}.replay`,
      onBatch: async (_partition, messages) => {
        for (const message of messages) {
          if (message.key?.toString() === source && message.value) latest = JSON.parse(message.value.toString()) as ReplayCheckpoint;
        }
      },
    });
    try {
      await follower.caughtUp;
    } finally {
      await follower.stop();
    }
    this.#recorded.set(source, latest);
    return latest;
  }

  /** Produces a group's events with its checkpoint, once: a group already recorded is skipped. */
  async apply(deltas: Deltas, checkpoint: ReplayCheckpoint, partitions: number): Promise<void> {
    const source = checkpoint.source;
    if (!this.#recorded.has(source)) await this.checkpoint(source);
    const recorded = this.#recorded.get(source);
    if (recorded?.run === checkpoint.run && recorded.chunk >= checkpoint.chunk) return;
    const producer = await this.#producer(source);
    const txn = await producer.transaction();
    try {
      for (const messages of eventsRecords(deltas, partitions)) {
        await txn.send({ topic: this.#location.eventsTopic, acks: -1, messages });
      }
      await txn.send({ topic: this.#location.replaysTopic, acks: -1, messages: [{ key: source, value: JSON.stringify(checkpoint), partition: 0 }] });
      await txn.commit();
    } catch (error) {
      if (txn.isActive()) await txn.abort().catch(() => {});
      // Whether it landed is known only after the next producer fences this one: read it again then.
      this.#recorded.delete(source);
      this.#producers.delete(source);
      await producer.disconnect().catch(() => {});
      throw new StoreUnavailableError('Kafka did not commit the replay batch', { cause: error });
    }
    this.#recorded.set(source, checkpoint);
  }

  async #producer(source: string): Promise<Producer> {
    let producer = this.#producers.get(source);
    if (producer) return producer;
    producer = this.#client.producer({ transactionalId: `${this.#location.prefix}.replay.${source}`, maxInFlightRequests: 1, idempotent: true });
    await producer.connect();
    // InitProducerId happens at the first transaction: one begun and aborted now fences the earlier runs.
    const txn = await producer.transaction();
    await txn.abort();
    this.#producers.set(source, producer);
    return producer;
  }

  async close(): Promise<void> {
    for (const producer of this.#producers.values()) await producer.disconnect().catch(() => {});
    this.#producers.clear();
  }
}
