import { statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { InDoubtError, OverloadedError, StoreUnavailableError } from '../../core/errors.js';
import type { ClaimedKey } from '../../core/idempotency.js';
import type { Deltas } from '../counter-store.js';
import type { LmdbTables } from '../lmdb/lmdb-tables.js';
import { FencedError } from './apply-job.js';
import { ApplyThread } from './apply-thread.js';
import { AppliedTable, leaseTimes } from './applied.js';
import { crashPoint } from './crash-point.js';
import { encodeRecord } from './record.js';
import { listSegments, newWriterId, segmentFile, type SegmentName } from './segments.js';
import type { UnappliedIndex } from './unapplied.js';
import { JournalWriter } from './writer.js';

export interface JournalOptions {
  /** Flush every append to disk before acknowledging it. */
  fsync: boolean;
  /** A segment is sealed, and applied, once it holds this many bytes... */
  segmentBytes: number;
  /** ...or once it is this old. */
  applyAfterMs: number;
  /** Unapplied journal this process may hold; appends beyond it are refused (503, not counted). */
  maxBytes: number;
  /** A writer silent for this long is taken for dead, and its journal applied by another. */
  leaseMs: number;
  /** Domains per LMDB transaction of an apply job (see apply-job.ts). */
  domainsPerTransaction: number;
}

/** What the writing side reports, for metrics and logs. */
export interface IngestObserver {
  applied(domains: number, events: number, seconds: number): void;
  warning(message: string, fields: Record<string, unknown>): void;
}

/** How often this process looks for journals left by writers that died, at most. */
const CLAIM_MS = 2_000;
/** Wait before applying again after a failure (a full disk, a damaged segment). */
const RETRY_MS = 5_000;

/**
 * The writing side of an embedded store: appends each batch to this process's own journal and
 * acknowledges it once written, then applies sealed segments to LMDB on a thread of its own,
 * behind. It renews a lease in LMDB, takes over the journals of writers whose lease ran out (they
 * died), and applies those too. See applied.ts for the bookkeeping and its guarantees.
 */
export class JournalIngest {
  readonly #tables: LmdbTables;
  readonly #applied: AppliedTable;
  readonly #index: UnappliedIndex;
  readonly #directory: string;
  readonly #options: JournalOptions;
  readonly #observer: IngestObserver;
  readonly #writer: JournalWriter;
  readonly #thread: ApplyThread;
  /** Sealed segments this process still has to apply, with their size: its own and those it took over. */
  readonly #unapplied = new Map<string, number>();
  /** Per writer, the last segment that may be applied now. */
  readonly #due = new Map<string, number>();
  readonly #claimed = new Set<string>();
  readonly #timers: NodeJS.Timeout[];
  readonly #fenceMs: number;
  #applying: Promise<void> | undefined;
  #lastHeartbeat: number;
  #fenced: Error | undefined;
  #closing = false;

  /**
   * Registers a new writer and starts its journal. The registration is committed before the first
   * segment exists: a segment whose writer has no record may be taken over by anyone.
   */
  static async start(
    tables: LmdbTables,
    index: UnappliedIndex,
    storeDirectory: string,
    journalDirectory: string,
    options: JournalOptions,
    observer: IngestObserver,
  ): Promise<JournalIngest> {
    const id = newWriterId();
    const applied = new AppliedTable(tables.journal);
    const now = Date.now();
    await tables.root.transaction(() => {
      applied.prune(now);
      applied.put(id, { owner: id, heartbeat: now, through: 0 });
    });
    return new JournalIngest(id, now, tables, index, storeDirectory, journalDirectory, options, observer);
  }

  private constructor(
    id: string,
    registered: number,
    tables: LmdbTables,
    index: UnappliedIndex,
    storeDirectory: string,
    journalDirectory: string,
    options: JournalOptions,
    observer: IngestObserver,
  ) {
    this.#tables = tables;
    this.#applied = new AppliedTable(tables.journal);
    this.#index = index;
    this.#directory = journalDirectory;
    this.#options = options;
    this.#observer = observer;
    this.#lastHeartbeat = registered;
    this.#writer = new JournalWriter(journalDirectory, id, {
      fsync: options.fsync,
      segmentBytes: options.segmentBytes,
      sealed: (seq, bytes) => {
        this.#unapplied.set(segmentFile(id, seq), bytes);
        this.#schedule(id, seq);
      },
    });
    this.#thread = new ApplyThread(storeDirectory, journalDirectory);
    const { heartbeatMs, fenceMs } = leaseTimes(options.leaseMs);
    this.#fenceMs = fenceMs;
    this.#timers = [
      setInterval(() => this.#heartbeat(), heartbeatMs),
      setInterval(() => void this.#claimLapsed(), Math.min(CLAIM_MS, options.leaseMs / 2)),
      setInterval(() => this.#writer.seal(), options.applyAfterMs),
    ];
    for (const timer of this.#timers) timer.unref();
    void this.#claimLapsed();
  }

  get id(): string {
    return this.#writer.id;
  }

  /** Bytes of journal written and not applied yet, which `maxBytes` bounds. */
  get unappliedBytes(): number {
    let bytes = this.#writer.bytes;
    for (const size of this.#unapplied.values()) bytes += size;
    return bytes;
  }

  /** Writers whose journal this process took over after they died. */
  get claimed(): number {
    return this.#claimed.size;
  }

  /** Throws when this process may no longer write: it lost its journal to another one. */
  check(): void {
    if (this.#fenced) throw this.#fenced;
  }

  /**
   * Resolves once the batch, and the keys of its requests, are in the journal (on disk, with
   * fsync) and visible to this process's reads.
   */
  async append(deltas: Deltas, keys: readonly ClaimedKey[] = [], claimLapseMs = Infinity): Promise<void> {
    this.check();
    const now = Date.now();
    if (now - this.#lastHeartbeat > this.#fenceMs) {
      throw new StoreUnavailableError('the journal lease could not be renewed in time (the store is stalled); retry');
    }
    // A claim past half its life could lapse, and its key be taken by a repeat, before this record is read.
    if (keys.some((key) => key.claimedAt + claimLapseMs / 2 < now)) {
      throw new StoreUnavailableError('the batch waited too long for the journal: its idempotency keys may have lapsed; retry');
    }
    if (this.unappliedBytes >= this.#options.maxBytes) throw new OverloadedError();
    let seq: number;
    try {
      seq = await this.#writer.append(encodeRecord(deltas, now, keys));
    } catch (error) {
      throw new StoreUnavailableError(`journal write failed: ${(error as Error).message}`, { cause: error });
    }
    // Written, but past its lease another process may have taken this journal over already.
    if (Date.now() - this.#lastHeartbeat > this.#options.leaseMs * 0.9) {
      throw new InDoubtError('the journal lease ran out during the write; it may or may not be counted');
    }
    this.#index.open(this.id, seq, segmentFile(this.id, seq)).addDeltas(deltas, keys);
  }

  /** Seals the last segment and applies everything this process holds, then retires its writer. */
  async close(): Promise<void> {
    this.#closing = true;
    // The lease is still renewed while the journal is applied, so that nobody takes it over meanwhile.
    const [heartbeat, ...others] = this.#timers;
    for (const timer of others) clearInterval(timer);
    await this.#writer.close();
    for (;;) {
      this.#pump();
      if (this.#applying === undefined) break;
      await this.#applying;
    }
    if (this.#unapplied.size === 0 && !this.#fenced) await this.#retire(this.id);
    clearInterval(heartbeat);
    await this.#thread.close();
  }

  #schedule(writer: string, upTo: number): void {
    this.#due.set(writer, Math.max(this.#due.get(writer) ?? 0, upTo));
    // After this turn: the batch just written is in the index before its segment can be applied.
    setImmediate(() => this.#pump());
  }

  #pump(): void {
    // A takeover that was under way when close() began schedules its job after the thread closed.
    if (this.#applying || this.#fenced || this.#thread.closed) return;
    const next = this.#due.entries().next();
    if (next.done) return;
    const [writer, upTo] = next.value;
    this.#due.delete(writer);
    this.#applying = this.#apply(writer, upTo).finally(() => {
      this.#applying = undefined;
      if (!this.#closing) this.#pump();
    });
  }

  async #apply(writer: string, upTo: number): Promise<void> {
    const started = performance.now();
    try {
      const outcome = await this.#thread.run({ writer, owner: this.id, upTo, domainsPerTransaction: this.#options.domainsPerTransaction });
      if (outcome) {
        this.#observer.applied(outcome.domains, outcome.events, (performance.now() - started) / 1000);
        for (const { file, bytes } of outcome.cut) {
          this.#observer.warning('journal segment ends with a record cut short by a crash: it was never acknowledged, and is ignored', { file, bytes });
        }
        crashPoint('apply-done');
      }
      await this.#removeApplied(writer, outcome?.through ?? upTo);
      // The job finished an interrupted run first; the rest is another job.
      if (outcome && outcome.through < upTo) this.#schedule(writer, upTo);
    } catch (error) {
      if (error instanceof FencedError) return this.#lost(writer, error);
      this.#observer.warning('applying the journal failed; it stays on disk and is tried again', { writer, error: (error as Error).message });
      if (!this.#closing) setTimeout(() => this.#schedule(writer, upTo), RETRY_MS).unref();
    }
  }

  /** Deletes the applied segments; the index forgets them once its marks say so (same snapshot as the counts). */
  async #removeApplied(writer: string, through: number): Promise<void> {
    let left = 0;
    for (const name of listSegments(this.#directory)) {
      if (name.writer !== writer) continue;
      if (name.seq > through) {
        left++;
        continue;
      }
      try {
        unlinkSync(join(this.#directory, name.file));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      this.#unapplied.delete(name.file);
    }
    if (left === 0 && this.#claimed.delete(writer)) await this.#retire(writer);
  }

  async #retire(writer: string): Promise<void> {
    await this.#tables.root.transaction(() => {
      const record = this.#applied.writer(writer);
      if (record?.owner !== this.id) return;
      record.retired = Date.now();
      this.#applied.put(writer, record);
    });
  }

  #heartbeat(): void {
    const now = Date.now();
    let lost = false;
    this.#tables.journal
      .transaction(() => {
        const record = this.#applied.writer(this.id);
        if (record?.owner !== this.id) {
          lost = true;
          return;
        }
        record.heartbeat = now;
        this.#applied.put(this.id, record);
      })
      .then(
        () => (lost ? this.#fence(new FencedError(`another process took over the journal of ${this.id}`)) : (this.#lastHeartbeat = now)),
        (error: unknown) => this.#observer.warning('the journal lease could not be renewed', { error: (error as Error).message }),
      );
  }

  /** Takes over the journals of writers whose owner's lease ran out, and schedules their apply. */
  async #claimLapsed(): Promise<void> {
    if (this.#closing || this.#fenced) return;
    const byWriter = new Map<string, SegmentName[]>();
    for (const name of listSegments(this.#directory)) {
      if (name.writer === this.id || this.#claimed.has(name.writer)) continue;
      byWriter.set(name.writer, [...(byWriter.get(name.writer) ?? []), name]);
    }
    for (const [writer, names] of byWriter) {
      if (!this.#applied.ownerLapsed(writer, Date.now(), this.#options.leaseMs)) continue;
      let claimed = false;
      // Committed before the apply thread reads the record.
      await this.#tables.root.transaction(() => {
        if (this.#closing || !this.#applied.ownerLapsed(writer, Date.now(), this.#options.leaseMs)) return;
        const record = this.#applied.writer(writer) ?? { owner: writer, heartbeat: 0, through: 0 };
        record.owner = this.id;
        delete record.retired;
        this.#applied.put(writer, record);
        claimed = true;
      });
      if (!claimed) continue;
      this.#claimed.add(writer);
      for (const name of names) this.#unapplied.set(name.file, sizeOf(join(this.#directory, name.file)));
      this.#observer.warning('took over the journal of a writer that stopped without applying it', { writer, segments: names.length });
      this.#schedule(writer, names.at(-1)!.seq);
    }
  }

  /** An apply job found another owner recorded: for this process's own journal, it must stop writing. */
  #lost(writer: string, error: Error): void {
    if (writer === this.id) return this.#fence(error);
    this.#claimed.delete(writer);
    for (const file of [...this.#unapplied.keys()]) if (file.startsWith(writer + '.')) this.#unapplied.delete(file);
    this.#observer.warning('another process took over a journal this one had taken over', { writer });
  }

  #fence(error: Error): void {
    if (this.#fenced) return;
    this.#fenced = new StoreUnavailableError(`${error.message}: this process stopped writing to the journal`, { cause: error });
    this.#observer.warning('this process lost its journal to another process and accepts no more events', { writer: this.id });
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
