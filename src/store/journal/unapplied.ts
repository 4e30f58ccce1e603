import type { KeyRecord } from '../../core/idempotency.js';
import type { DomainCounts } from '../../core/status.js';
import type { Deltas } from '../counter-store.js';
import { isApplied, type AppliedMark, type AppliedTable } from './applied.js';
import { DeltaTable } from './delta-table.js';
import { MAGIC, forEachEntryBytes, forEachKey } from './record.js';

/** The deltas of one journal segment, as far as this process has read (or, for its own segment, written) it. */
export class SegmentDeltas {
  readonly table = new DeltaTable();
  /** The idempotency keys of the segment's requests; they are stored in LMDB when the segment is applied whole. */
  readonly keys = new Map<string, KeyRecord>();
  /** File offset up to which records are taken in: the next record starts here. */
  offset = MAGIC.length;
  events = 0;

  constructor(
    readonly writer: string,
    readonly seq: number,
    readonly file: string,
  ) {}

  readonly #addBytes = (bytes: Buffer, start: number, length: number, delivered: number, bounced: number) => {
    this.table.addBytes(bytes, start, length, delivered, bounced);
    this.events += delivered + bounced;
  };

  readonly #addKey = (key: KeyRecord) => {
    this.keys.set(key.key, key);
  };

  addDeltas(deltas: Deltas, keys: readonly KeyRecord[]): void {
    for (const [domain, counts] of deltas) {
      this.table.add(domain, counts.delivered, counts.bounced);
      this.events += counts.delivered + counts.bounced;
    }
    for (const key of keys) this.#addKey(key);
  }

  /** Takes in the valid records found at `starts` in `buffer`, which holds the file from `offset`. */
  addRecords(buffer: Buffer, starts: readonly number[]): void {
    for (const start of starts) {
      forEachEntryBytes(buffer, start, this.#addBytes);
      forEachKey(buffer, start, this.#addKey);
    }
  }

  /** Moves the read position past `bytes` more of the file. */
  advance(bytes: number): void {
    this.offset += bytes;
  }
}

/**
 * Every journaled delta this process knows of that may not be in the stored counts yet, by
 * segment, and how far each writer's segments are applied. A read adds to the stored counts of a
 * domain exactly the deltas the marks say are not applied; `refresh()` must run in the same
 * synchronous turn as the stored read, so that both come from one LMDB snapshot.
 */
export class UnappliedIndex {
  readonly #applied: AppliedTable;
  readonly #segments = new Map<string, SegmentDeltas>();
  #marks = new Map<string, AppliedMark>();
  #epoch = -1;

  constructor(applied: AppliedTable) {
    this.#applied = applied;
  }

  /** Re-reads the marks if an apply committed since; forgets segments that are now applied whole. */
  refresh(): void {
    const epoch = this.#applied.epoch();
    if (epoch === this.#epoch) return;
    this.#epoch = epoch;
    this.#marks = this.#applied.marks();
    for (const [file, segment] of this.#segments) {
      if (this.appliedWhole(segment.writer, segment.seq)) this.#segments.delete(file);
    }
  }

  /** Whether every delta of a segment is in the stored counts, by the marks last refreshed. */
  appliedWhole(writer: string, seq: number): boolean {
    const mark = this.#marks.get(writer);
    return mark !== undefined && seq <= mark.through;
  }

  mark(writer: string): AppliedMark | undefined {
    return this.#marks.get(writer);
  }

  segment(file: string): SegmentDeltas | undefined {
    return this.#segments.get(file);
  }

  /** The segment's deltas, created empty the first time. */
  open(writer: string, seq: number, file: string): SegmentDeltas {
    let segment = this.#segments.get(file);
    if (segment === undefined) {
      segment = new SegmentDeltas(writer, seq, file);
      this.#segments.set(file, segment);
    }
    return segment;
  }

  forget(file: string): void {
    this.#segments.delete(file);
  }

  get segments(): IterableIterator<SegmentDeltas> {
    return this.#segments.values();
  }

  get size(): number {
    return this.#segments.size;
  }

  /** `stored` plus the deltas of `domain` not applied yet; undefined if there are none of either. */
  countsOf(domain: string, stored: DomainCounts | undefined): DomainCounts | undefined {
    let delivered = 0;
    let bounced = 0;
    let found = false;
    for (const segment of this.#segments.values()) {
      const entry = segment.table.find(domain);
      if (entry < 0 || isApplied(this.#marks.get(segment.writer), segment.seq, domain)) continue;
      delivered += segment.table.delivered(entry);
      bounced += segment.table.bounced(entry);
      found = true;
    }
    if (!found) return stored;
    return { delivered: (stored?.delivered ?? 0) + delivered, bounced: (stored?.bounced ?? 0) + bounced };
  }

  /** The latest record of a key journaled and not yet stored in LMDB (its segment is not applied whole), if any. */
  keyRecord(key: string): KeyRecord | undefined {
    let latest: KeyRecord | undefined;
    for (const segment of this.#segments.values()) {
      const record = segment.keys.get(key);
      if (record === undefined || this.appliedWhole(segment.writer, segment.seq)) continue;
      if (latest === undefined || record.expiresAt > latest.expiresAt) latest = record;
    }
    return latest;
  }

  /** Distinct (segment, domain) entries held, and the bytes they take. */
  get entries(): number {
    let entries = 0;
    for (const segment of this.#segments.values()) entries += segment.table.size;
    return entries;
  }

  get bytes(): number {
    let bytes = 0;
    for (const segment of this.#segments.values()) bytes += segment.table.bytes;
    return bytes;
  }
}
