import type { Database } from 'lmdb';

/**
 * The journal's bookkeeping, kept in the store's LMDB `journal` table so that it changes in the
 * same transactions as the counts. For every writer:
 *
 * - how far its segments are applied to the counts: all of them up to `through`, and, while an
 *   apply job is under way, those up to `partial.through` for every domain up to `partial.cursor`
 *   (a job adds its domains in sorted order, a few thousand per transaction, and moves the cursor
 *   in each). A reader adds a journaled delta to the stored counts only where this says it is not
 *   applied, in the same LMDB snapshot, so no delta is ever missed or counted twice;
 * - who applies them (`owner`): the writer itself, or the process that took its journal over
 *   after it died;
 * - a lease: the writer's last heartbeat. A journal may be taken over only once its owner's lease
 *   has run out, and a writer stops acknowledging before its own lease can run out.
 *
 * `epoch` grows with every apply transaction, so a reader re-reads this table only when it changed.
 */
export interface WriterRecord {
  owner: string;
  /** When this writer last confirmed it is alive, in ms since the epoch. */
  heartbeat: number;
  through: number;
  partial?: { through: number; cursor: string };
  /** When the writer closed with its journal applied; its record is kept a while for readers. */
  retired?: number;
}

/** How far one writer's segments are applied. */
export type AppliedMark = Pick<WriterRecord, 'through' | 'partial'>;

/**
 * A writer whose owner has not confirmed it is alive for `leaseMs` may be taken over. The owner
 * confirms it ten times a lease (at most every second), and acknowledges nothing once its last
 * confirmation is two thirds of a lease old: well before anyone may take its journal.
 */
export function leaseTimes(leaseMs: number): { heartbeatMs: number; fenceMs: number } {
  return { heartbeatMs: Math.min(1_000, leaseMs / 10), fenceMs: (leaseMs * 2) / 3 };
}
/** Retired writers' records are removed after this long: readers have long dropped their segments. */
const RETIRED_KEPT_MS = 24 * 3_600_000;

const EPOCH = 'epoch';
const PREFIX = 'writer/';
const keyOf = (writer: string) => PREFIX + writer;

export function isApplied(mark: AppliedMark | undefined, seq: number, domain: string): boolean {
  if (mark === undefined) return false;
  if (seq <= mark.through) return true;
  return mark.partial !== undefined && seq <= mark.partial.through && domain <= mark.partial.cursor;
}

/** Reads and writes the bookkeeping. Writes must run inside an LMDB write transaction. */
export class AppliedTable {
  readonly #table: Database<unknown, string>;

  constructor(table: Database<unknown, string>) {
    this.#table = table;
  }

  epoch(): number {
    return (this.#table.get(EPOCH) as number | undefined) ?? 0;
  }

  writer(id: string): WriterRecord | undefined {
    return this.#table.get(keyOf(id)) as WriterRecord | undefined;
  }

  /** Every writer's mark. Read in the same synchronous turn as the counts it goes with. */
  marks(): Map<string, AppliedMark> {
    const marks = new Map<string, AppliedMark>();
    for (const { key, value } of this.#table.getRange({ start: PREFIX, end: PREFIX + '\uffff' })) {
      const record = value as WriterRecord;
      marks.set(key.slice(PREFIX.length), { through: record.through, partial: record.partial });
    }
    return marks;
  }

  /** Whether the owner of `writer`'s journal has let its lease run out (or there is no record of it). */
  ownerLapsed(writer: string, now: number, leaseMs: number): boolean {
    const record = this.writer(writer);
    if (record === undefined) return true;
    const owner = record.owner === writer ? record : this.writer(record.owner);
    return owner === undefined || owner.heartbeat + leaseMs < now;
  }

  // Writes, inside a transaction.

  put(id: string, record: WriterRecord): void {
    this.#table.put(keyOf(id), record);
  }

  bumpEpoch(): void {
    this.#table.put(EPOCH, this.epoch() + 1);
  }

  /** Drops the records of writers retired long ago. */
  prune(now: number): void {
    const expired: string[] = [];
    for (const { key, value } of this.#table.getRange({ start: PREFIX, end: PREFIX + '\uffff' })) {
      const retired = (value as WriterRecord).retired;
      if (retired !== undefined && retired + RETIRED_KEPT_MS < now) expired.push(key);
    }
    for (const key of expired) this.#table.remove(key);
  }
}
