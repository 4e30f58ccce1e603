import { mkdirSync } from 'node:fs';
import type { Database } from 'lmdb';
import { StoreUnavailableError } from '../../core/errors.js';
import type { KeyClaim } from '../../core/idempotency.js';
import type { DomainCounts } from '../../core/status.js';
import type { BatchExtras, CounterStore, Deltas, ReplayCheckpoint } from '../counter-store.js';
import { AppliedTable } from '../journal/applied.js';
import { DEFAULT_JOURNAL } from '../journal/defaults.js';
import { JournalIngest, type IngestObserver, type JournalOptions } from '../journal/ingest.js';
import { KeyClaims } from '../journal/key-claims.js';
import { journalDirectory } from '../journal/segments.js';
import { JournalTail, type TailObserver } from '../journal/tail.js';
import { UnappliedIndex } from '../journal/unapplied.js';
import { indexAfter, LmdbTables, type PartProgress } from './lmdb-tables.js';
import { SortedDeltas } from '../sorted-deltas.js';

/**
 * How a process uses the store. `ingest` (serve-http) acknowledges batches once they are in its
 * journal and applies them to LMDB behind; `read` (serve-read, status) reads the counts plus
 * what every journal holds that is not applied yet; `bulk` (replay) writes straight to LMDB and
 * reads nothing but its checkpoints.
 */
export type StoreUse = 'ingest' | 'read' | 'bulk';

/** What the journal reports, for metrics and logs. */
export interface JournalObserver extends TailObserver, IngestObserver {
  /** The journal as this process sees it, after each read of other processes' journals. */
  state(state: JournalState): void;
}

export interface JournalState {
  /** Journal this process wrote (or took over) and has not applied yet. */
  unappliedBytes: number;
  /** Segments, and (segment, domain) entries, held in memory for reads. */
  segments: number;
  entries: number;
}

export const NO_JOURNAL_OBSERVER: JournalObserver = { visible() {}, applied() {}, warning() {}, state() {} };

export interface LmdbStoreOptions extends Partial<Omit<JournalOptions, 'fsync'>> {
  use?: StoreUse;
  /** Acknowledge only once on disk (survives power loss), not merely written. */
  fsync?: boolean;
  /** How often other processes' journals are read: the lag of what this process sees of their events. */
  pollMs?: number;
  observer?: JournalObserver;
}


/**
 * The embedded store: counts in LMDB, and in front of it, for ingestion, one journal per writing
 * process (see journal/). LMDB takes a cross-process write lock and every reader reads every
 * journal, so serve-http workers, serve-read, `svc status` and `svc replay` share one directory.
 */
export class LmdbStore implements CounterStore {
  readonly #tables: LmdbTables;
  readonly #directory: string;
  readonly #fsync: boolean;
  readonly #index: UnappliedIndex | undefined;
  readonly #tail: JournalTail | undefined;
  readonly #ingest: JournalIngest | undefined;
  readonly #poll: NodeJS.Timeout | undefined;
  readonly #observer: JournalObserver;
  readonly #perTransaction: number;
  /** A claim older than this was left by a process that died before it journaled its batch. */
  readonly #claimLapseMs: number;
  readonly #claims: KeyClaims | undefined;
  #closed = false;

  /** Whether a store was made in this directory (open() makes one where there is none). */
  static exists(directory: string): boolean {
    return LmdbTables.exist(directory);
  }

  /** Opens the store; with a journal, reads every segment first and refuses to open on damage. */
  static async open(directory: string, options: LmdbStoreOptions = {}): Promise<LmdbStore> {
    const use = options.use ?? 'read';
    const journal = { ...DEFAULT_JOURNAL };
    for (const key of Object.keys(DEFAULT_JOURNAL) as (keyof typeof DEFAULT_JOURNAL)[]) journal[key] = options[key] ?? journal[key];
    const observer = options.observer ?? NO_JOURNAL_OBSERVER;
    const tables = new LmdbTables(directory);
    try {
      if (use === 'bulk') return new LmdbStore(directory, tables, options, observer);
      const index = new UnappliedIndex(new AppliedTable(tables.journal));
      const journalDir = journalDirectory(directory);
      mkdirSync(journalDir, { recursive: true });
      const tail = new JournalTail(journalDir, index, observer);
      tail.load();
      const ingest = use === 'ingest'
        ? await JournalIngest.start(tables, index, directory, journalDir, { ...journal, fsync: options.fsync ?? false }, observer)
        : undefined;
      if (ingest) tail.ownWriter = ingest.id;
      tail.watch();
      return new LmdbStore(directory, tables, options, observer, { index, tail, ingest, pollMs: journal.pollMs, leaseMs: journal.leaseMs });
    } catch (error) {
      await tables.close();
      throw error;
    }
  }

  private constructor(
    directory: string,
    tables: LmdbTables,
    options: LmdbStoreOptions,
    observer: JournalObserver,
    journal?: { index: UnappliedIndex; tail: JournalTail; ingest: JournalIngest | undefined; pollMs: number; leaseMs: number },
  ) {
    this.#tables = tables;
    this.#directory = directory;
    this.#fsync = options.fsync ?? false;
    this.#observer = observer;
    this.#perTransaction = options.domainsPerTransaction ?? DEFAULT_JOURNAL.domainsPerTransaction;
    this.#claimLapseMs = journal?.leaseMs ?? DEFAULT_JOURNAL.leaseMs;
    if (journal === undefined) return;
    this.#index = journal.index;
    this.#tail = journal.tail;
    this.#ingest = journal.ingest;
    if (journal.ingest) this.#claims = new KeyClaims(directory, tables, journal.index, journal.tail, this.#claimLapseMs);
    this.#poll = setInterval(() => this.#readJournals(), journal.pollMs);
    this.#poll.unref();
  }

  /** Journaled with its keys in one record: the keys and the counts are there together or not at all. */
  async applyBatch(deltas: Deltas, { checkpoint, keys = [] }: BatchExtras = {}): Promise<void> {
    this.#checkOpen();
    if (this.#ingest && !checkpoint) return this.#ingest.append(deltas, keys, this.#claimLapseMs);
    if (keys.length > 0) throw new Error('idempotency keys are taken by a store that ingests (serve-http) only');
    // Replay's batches (and writes of a process that does not ingest) go straight to LMDB.
    try {
      const sorted = SortedDeltas.of(deltas);
      const progress = checkpoint ? replayProgress(this.#tables.replays, checkpoint, sorted.domains) : { start: () => 0, record() {} };
      await this.#tables.addSortedInParts(sorted, this.#perTransaction, progress, () => new Promise((resolve) => setImmediate(resolve)));
      await (this.#fsync ? this.#tables.root.flushed : this.#tables.root.committed);
    } catch (error) {
      throw new StoreUnavailableError('embedded store write failed', { cause: error });
    }
  }

  /**
   * For a copy of a log of totals (a materializer's partition, serve-read on Kafka): sets each
   * domain's counts to the total given, the last one winning. Resolves once written.
   */
  async putTotals(totals: Iterable<readonly [string, DomainCounts]>): Promise<void> {
    this.#checkOpen();
    if (this.#index) throw new Error('totals are put only in a store opened for bulk use (a copy of a log of totals)');
    try {
      await this.#tables.putTotals(totals);
    } catch (error) {
      throw new StoreUnavailableError('embedded store write failed', { cause: error });
    }
  }

  /** See KeyClaims. */
  async claimKey(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    this.#checkOpen();
    try {
      return await this.#keyClaims().claim(key, fingerprint, now);
    } catch (error) {
      throw new StoreUnavailableError('embedded store: claiming an idempotency key failed', { cause: error });
    }
  }

  async releaseKey(key: string): Promise<void> {
    this.#checkOpen();
    this.#keyClaims().release(key);
  }

  #keyClaims(): KeyClaims {
    if (this.#claims === undefined) throw new Error('idempotency keys are taken by a store that ingests (serve-http) only');
    return this.#claims;
  }

  async getCheckpoint(source: string): Promise<ReplayCheckpoint | undefined> {
    this.#checkOpen();
    return this.#tables.replays.get(source);
  }

  async get(domain: string): Promise<DomainCounts | undefined> {
    this.#checkOpen();
    const index = this.#index;
    if (index === undefined) return this.#tables.counts(domain);
    // The marks and the counts in one synchronous turn: one LMDB snapshot.
    index.refresh();
    return index.countsOf(domain, this.#tables.counts(domain));
  }

  async getMany(domains: readonly string[]): Promise<Map<string, DomainCounts>> {
    this.#checkOpen();
    this.#index?.refresh();
    const result = new Map<string, DomainCounts>();
    for (const domain of domains) {
      const stored = this.#tables.counts(domain);
      const counts = this.#index ? this.#index.countsOf(domain, stored) : stored;
      if (counts) result.set(domain, counts);
    }
    return result;
  }

  async setup(): Promise<string[]> {
    this.#checkOpen();
    return [`embedded store ready in ${this.#directory}; there is nothing to shard`];
  }

  async ping(): Promise<void> {
    this.#checkOpen();
    this.#ingest?.check();
  }

  /** Applies what this process journaled, then closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#poll);
    await this.#ingest?.close();
    await this.#claims?.close();
    this.#tail?.close();
    await this.#tables.close();
  }

  #readJournals(): void {
    this.#tail!.poll();
    const index = this.#index!;
    this.#observer.state({ unappliedBytes: this.#ingest?.unappliedBytes ?? 0, segments: index.size, entries: index.entries });
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('embedded store is closed');
  }
}

/**
 * A replay batch (a group of chunks) and its checkpoint, applied at most once per run and chunk:
 * the checkpoint is recorded with the last part, and each part before it records a cursor.
 */
function replayProgress(replays: Database<ReplayCheckpoint, string>, checkpoint: ReplayCheckpoint, keys: readonly string[]): PartProgress {
  let base: ReplayCheckpoint | undefined;
  return {
    start() {
      const recorded = replays.get(checkpoint.source);
      const sameRun = recorded?.run === checkpoint.run;
      if (sameRun && recorded!.chunk >= checkpoint.chunk) return undefined;
      // Where a resumed run starts reading again, until this batch is complete.
      base = sameRun ? recorded : { ...checkpoint, chunk: 0, offset: 0, lines: 0, events: 0, invalid: 0, done: false };
      const partial = sameRun ? recorded!.partial : undefined;
      if (partial === undefined) return 0;
      if (partial.chunk !== checkpoint.chunk) {
        throw new Error(`replay batch ends at chunk ${checkpoint.chunk}, the interrupted one at chunk ${partial.chunk}`);
      }
      return indexAfter(keys, partial.cursor);
    },
    record(end, finished) {
      const { partial: _, ...complete } = checkpoint;
      if (finished) replays.put(checkpoint.source, complete);
      else replays.put(checkpoint.source, { ...base!, partial: { chunk: checkpoint.chunk, cursor: keys[end - 1]! } });
    },
  };
}
