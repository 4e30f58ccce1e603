import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { DomainCounts } from '../core/status.js';
import type { Deltas, ReplayCheckpoint } from './counter-store.js';
import { crashPoint } from './journal/crash-point.js';

/** Deltas sorted by domain: `delivered[i]` and `bounced[i]` belong to `keys[i]`. */
export interface SortedDeltas {
  keys: readonly string[];
  delivered: ArrayLike<number>;
  bounced: ArrayLike<number>;
}

/** A map of deltas, sorted. */
export function sortDeltas(deltas: Deltas): SortedDeltas {
  const keys = [...deltas.keys()].sort(byCodeUnit);
  const delivered = new Float64Array(keys.length);
  const bounced = new Float64Array(keys.length);
  keys.forEach((key, i) => {
    const counts = deltas.get(key)!;
    delivered[i] = counts.delivered;
    bounced[i] = counts.bounced;
  });
  return { keys, delivered, bounced };
}

/** How a caller of addSortedInParts records its progress, inside each part's transaction. */
export interface PartProgress {
  /** In the first transaction: the index in the keys to start at, or undefined if all is applied already. */
  start(): number | undefined;
  /** After each part: the keys before `end` are applied; `finished` on the last part. */
  record(end: number, finished: boolean): void;
}

// Counts are two little-endian float64s (exact up to 2^53) in 16 bytes: no serialiser on the hot path.
const VALUE_SIZE = 16;

export function decodeCounts(value: Buffer | undefined): DomainCounts | undefined {
  if (value === undefined) return undefined;
  return { delivered: value.readDoubleLE(0), bounced: value.readDoubleLE(8) };
}

function encodeCounts(delivered: number, bounced: number): Buffer {
  const value = Buffer.allocUnsafe(VALUE_SIZE);
  value.writeDoubleLE(delivered, 0);
  value.writeDoubleLE(bounced, 8);
  return value;
}

/**
 * The LMDB environment of an embedded store and its tables: `domains` (the counts), `replays`
 * (replay checkpoints) and `journal` (how far each writer's journal is applied; see
 * journal/applied.ts). LMDB takes a cross-process write lock, so every process and thread that
 * opens the directory shares them.
 */
export class LmdbTables {
  readonly root: RootDatabase;
  readonly domains: Database<Buffer, string>;
  readonly replays: Database<ReplayCheckpoint, string>;
  readonly journal: Database<unknown, string>;

  constructor(directory: string) {
    mkdirSync(directory, { recursive: true });
    // overlappingSync (lmdb-js's default off Windows) keeps the database consistent after a
    // power loss while the disk flush runs outside the write lock.
    this.root = open({ path: directory, maxDbs: 4, overlappingSync: true });
    this.domains = this.root.openDB<Buffer, string>({ name: 'domains', encoding: 'binary' });
    this.replays = this.root.openDB<ReplayCheckpoint, string>({ name: 'replays' });
    this.journal = this.root.openDB<unknown, string>({ name: 'journal' });
  }

  counts(domain: string): DomainCounts | undefined {
    return decodeCounts(this.domains.get(domain));
  }

  /** Adds the deltas of `keys[from..to)` to the stored counts. Call inside a write transaction. */
  addCounts({ keys, delivered, bounced }: SortedDeltas, from: number, to: number): void {
    const domains = this.domains;
    for (let i = from; i < to; i++) {
      const domain = keys[i]!;
      const current = domains.getBinaryFast(domain);
      if (current === undefined) {
        domains.put(domain, encodeCounts(delivered[i]!, bounced[i]!));
      } else {
        domains.put(domain, encodeCounts(current.readDoubleLE(0) + delivered[i]!, current.readDoubleLE(8) + bounced[i]!));
      }
    }
  }

  /**
   * Adds `deltas` (sorted, so that neighbouring domains share LMDB pages) in parts of
   * `perTransaction` domains, one write transaction each: LMDB's cost of a transaction grows
   * faster than its size (its dirty-page lists are sorted arrays). `progress` records in each
   * transaction how far the keys are applied, so that a run cut short resumes after the last part
   * committed and never applies one twice. `between` runs between parts, outside any transaction.
   */
  async addSortedInParts(deltas: SortedDeltas, perTransaction: number, progress: PartProgress, between?: () => Promise<void>): Promise<void> {
    const keys = deltas.keys;
    let next: number | undefined;
    for (let done = false; !done; ) {
      this.root.transactionSync(() => {
        next ??= progress.start();
        if (next === undefined) {
          done = true;
          return;
        }
        const end = Math.min(keys.length, next + perTransaction);
        this.addCounts(deltas, next, end);
        crashPoint('apply-transaction');
        done = end === keys.length;
        progress.record(end, done);
        next = end;
      });
      if (!done) await between?.();
    }
  }

  close(): Promise<void> {
    return this.root.close();
  }
}

/** The order of JavaScript's `<` on strings, in which parts are applied and cursors compared. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The index of the first key after `cursor` in sorted `keys`. */
export function indexAfter(keys: readonly string[], cursor: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]! <= cursor) low = middle + 1;
    else high = middle;
  }
  return low;
}
