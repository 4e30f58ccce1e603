import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { StoreUnavailableError, ValidationError } from '../../core/errors.js';
import type { DomainCounts } from '../../core/status.js';
import { createClient, type KafkaMessage } from '../../kafka/client.js';
import { follow, type Follower } from '../../kafka/follower.js';
import { decodeCountsRecord } from '../../kafka/records.js';
import type { KafkaLocation } from '../../kafka/url.js';
import { log } from '../../log.js';
import type { CounterStore, ReplayCheckpoint } from '../counter-store.js';
import { LmdbStore } from '../lmdb/lmdb-store.js';
import type { KeyClaim } from '../../core/idempotency.js';

/**
 * serve-read's store on Kafka: follows PREFIX.counts (every partition) into an embedded store in
 * DIR/counts and answers reads from it. The copy is rebuilt from the topic at every start (the
 * topic is compacted, so that is one record per domain): a copy left by an earlier run could be
 * behind or ahead of what the topic now says. Ready (ping) once it has read up to the end offsets
 * the topic had at start.
 */
export class KafkaCountsReader implements CounterStore {
  readonly #location: KafkaLocation;
  readonly #local: LmdbStore;
  #following: Promise<Follower> | undefined;
  #caughtUp = false;
  /** The last batch's writes to the local store (never rejects). */
  #writing: Promise<void> = Promise.resolve();
  /** Per partition, the offset below which every record is in the local store. */
  readonly #written = new Map<number, number>();
  #failed = false;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  static async open(location: KafkaLocation, state: string): Promise<KafkaCountsReader> {
    const directory = join(state, 'counts');
    rmSync(directory, { recursive: true, force: true });
    const reader = new KafkaCountsReader(location, await LmdbStore.open(directory, { use: 'bulk' }));
    reader.#start();
    return reader;
  }

  private constructor(location: KafkaLocation, local: LmdbStore) {
    this.#location = location;
    this.#local = local;
  }

  /** In the background, and again after a failure: a daemon starts while Kafka is down. */
  #start(): void {
    const client = createClient(this.#location.brokers, 'svc-read');
    this.#writing = Promise.resolve();
    this.#failed = false;
    const following = follow(client, {
      topic: this.#location.countsTopic,
      groupPrefix: `${this.#location.prefix}.read`,
      onBatch: (partition, messages) => this.#apply(partition, messages),
      onFatal: (error) => this.#followAgain('following the counts topic stopped', error),
    });
    this.#following = following;
    following.then(
      (follower) => {
        if (this.#closed) return void follower.stop();
        follower.caughtUp.then(
          async () => {
            await this.#writing;
            this.#caughtUp = true;
            log('info', 'caught up with the counts topic', { topic: this.#location.countsTopic });
          },
          () => {},
        );
      },
      (error) => {
        this.#following = undefined;
        log('warn', 'cannot follow the counts topic yet; trying again in 1 s', { topic: this.#location.countsTopic, error: String(error) });
        if (!this.#closed) this.#retry = setTimeout(() => this.#start(), 1000);
      },
    );
  }

  /** Reads the topic again from the start, skipping what is written already. */
  #followAgain(why: string, error: unknown): void {
    const stopping = this.#following;
    // Already starting over.
    if (stopping === undefined) return;
    this.#following = undefined;
    log('error', `${why}; following it again from the start`, { error: String(error) });
    void stopping
      .then((follower) => follower.stop(), () => {})
      .finally(() => {
        if (!this.#closed) this.#retry = setTimeout(() => this.#start(), 1000);
      });
  }

  /**
   * Writes the totals read into the local copy, the last of a domain winning. A batch is decoded
   * while the previous one is written; the catching up is over once the last one is. Records
   * already written (below `#written`) are skipped when the topic is read again after a restart:
   * an older total must not take a count back.
   */
  async #apply(partition: number, messages: KafkaMessage[]): Promise<void> {
    const from = this.#written.get(partition) ?? 0;
    const totals: Array<[string, DomainCounts]> = [];
    for (const message of messages) {
      if (Number(message.offset) < from) continue;
      let record;
      try {
        record = decodeCountsRecord(message.key, message.value);
      } catch (error) {
        log('warn', 'skipped a record of the counts topic that does not parse', { offset: message.offset, error: String(error) });
        continue;
      }
      if (record.kind === 'domain') totals.push([record.domain, record.counts]);
    }
    await this.#writing;
    // A write failed: what follows waits for the topic to be read again from there.
    if (this.#failed || messages.length === 0) return;
    const next = Number(messages.at(-1)!.offset) + 1;
    this.#writing = this.#local.putTotals(totals).then(
      () => void this.#written.set(partition, Math.max(from, next)),
      (error) => {
        this.#failed = true;
        this.#followAgain('writing counts to the local store failed', error);
      },
    );
  }

  get(domain: string): Promise<DomainCounts | undefined> {
    return this.#local.get(domain);
  }

  getMany(domains: readonly string[]): Promise<Map<string, DomainCounts>> {
    return this.#local.getMany(domains);
  }

  async ping(): Promise<void> {
    if (!this.#caughtUp) throw new StoreUnavailableError(`still reading ${this.#location.countsTopic} up to its end offsets at start`);
  }

  async applyBatch(): Promise<void> {
    throw new ValidationError('serve-read counts nothing: events go to serve-http on the kafka:// store, and svc materialize counts them');
  }

  async claimKey(): Promise<KeyClaim> {
    throw new ValidationError('serve-read takes no events');
  }

  async releaseKey(): Promise<void> {}

  async getCheckpoint(): Promise<ReplayCheckpoint | undefined> {
    return undefined;
  }

  async setup(): Promise<string[]> {
    return [];
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    await this.#following?.then((follower) => follower.stop(), () => {});
    await this.#local.close();
  }
}
