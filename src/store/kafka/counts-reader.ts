import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { StoreUnavailableError, ValidationError } from '../../core/errors.js';
import type { DomainCounts } from '../../core/status.js';
import { createClient, type KafkaMessage } from '../../kafka/client.js';
import { follow, type Follower } from '../../kafka/follower.js';
import { decodeCountsRecord } from '../../kafka/records.js';
import type { KafkaLocation } from '../../kafka/url.js';
import { log } from '../../log.js';
import type { CounterStore, Deltas, ReplayCheckpoint } from '../counter-store.js';
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
  #follower: Follower | undefined;
  #caughtUp = false;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  static async open(location: KafkaLocation, state: string): Promise<KafkaCountsReader> {
    const directory = join(state, 'counts');
    rmSync(directory, { recursive: true, force: true });
    // Large transactions: a restore writes every domain once, and LMDB's cost is per transaction.
    const reader = new KafkaCountsReader(location, await LmdbStore.open(directory, { use: 'bulk', domainsPerTransaction: 200_000 }));
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
    follow(client, {
      topic: this.#location.countsTopic,
      groupPrefix: `${this.#location.prefix}.read`,
      onBatch: (_partition, messages) => this.#apply(messages),
      // Read again from the start: the records are totals, so reading them twice changes nothing.
      onFatal: (error) => {
        log('error', 'following the counts topic stopped; following it again from the start', { error: String(error) });
        const stopped = this.#follower;
        this.#follower = undefined;
        void stopped?.stop().finally(() => {
          if (!this.#closed) this.#retry = setTimeout(() => this.#start(), 1000);
        });
      },
    }).then(
      (follower) => {
        if (this.#closed) return void follower.stop();
        this.#follower = follower;
        follower.caughtUp.then(
          () => {
            this.#caughtUp = true;
            log('info', 'caught up with the counts topic', { topic: this.#location.countsTopic });
          },
          () => {},
        );
      },
      (error) => {
        log('warn', 'cannot follow the counts topic yet; trying again in 1 s', { topic: this.#location.countsTopic, error: String(error) });
        if (!this.#closed) this.#retry = setTimeout(() => this.#start(), 1000);
      },
    );
  }

  /** Totals replace totals: the embedded store adds, so it is given the difference (never negative). */
  async #apply(messages: KafkaMessage[]): Promise<void> {
    const latest = new Map<string, DomainCounts>();
    for (const message of messages) {
      let record;
      try {
        record = decodeCountsRecord(message.key, message.value);
      } catch (error) {
        log('warn', 'skipped a record of the counts topic that does not parse', { offset: message.offset, error: String(error) });
        continue;
      }
      if (record.kind === 'domain') latest.set(record.domain, record.counts);
    }
    if (latest.size === 0) return;
    const stored = await this.#local.getMany([...latest.keys()]);
    const deltas = new Map<string, DomainCounts>();
    for (const [domain, counts] of latest) {
      const before = stored.get(domain) ?? { delivered: 0, bounced: 0 };
      // Counts only grow: a total below the one held is an older record read again (a restarted follower).
      const delta = { delivered: Math.max(0, counts.delivered - before.delivered), bounced: Math.max(0, counts.bounced - before.bounced) };
      if (delta.delivered > 0 || delta.bounced > 0) deltas.set(domain, delta);
    }
    if (deltas.size > 0) await this.#local.applyBatch(deltas as Deltas);
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
    await this.#follower?.stop();
    await this.#local.close();
  }
}
