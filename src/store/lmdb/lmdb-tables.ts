import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { KeyRecord } from '../../core/idempotency.js';
import type { DomainCounts } from '../../core/status.js';
import type { ReplayCheckpoint } from '../counter-store.js';
import { crashPoint } from '../journal/crash-point.js';
import type { SortedDeltas } from '../sorted-deltas.js';

/** How a caller of addSortedInParts records its progress, inside each part's transaction. */
export interface PartProgress {
  /** In the first transaction: the index in the keys to start at, or undefined if all is applied already. */
  start(): number | undefined;
  /** After each part: the keys before `end` are applied; `finished` on the last part. */
  record(end: number, finished: boolean): void;
}

// Counts are two little-endian float64s (exact up to 2^53) in 16 bytes: no serialiser on the hot path.
const VALUE_SIZE = 16;
const NO_OVERWRITE = { noOverwrite: true };
/** Expired keys removed per apply job, at most: a job's last transaction stays short. */
const KEYS_SWEPT_PER_JOB = 10_000;

/** An idempotency key in the `keys` table: the answer its request got, stored with its counts. */
export interface StoredKey {
  fingerprint: string;
  expiresAt: number;
  status: number;
  body: string;
}

export function decodeCounts(value: Buffer | undefined): DomainCounts | undefined {
  if (value === undefined) return undefined;
  return { delivered: value.readDoubleLE(0), bounced: value.readDoubleLE(8) };
}

/**
 * The LMDB environment of an embedded store and its tables: `domains` (the counts), `replays`
 * (replay checkpoints), `journal` (how far each writer's journal is applied; see
 * journal/applied.ts), `keys` (idempotency keys) and `keyExpiry` (the keys by expiry time). LMDB takes a cross-process write lock, so every process and thread that
 * opens the directory shares them.
 */
export class LmdbTables {
  readonly root: RootDatabase;
  readonly domains: Database<Buffer, string>;
  readonly replays: Database<ReplayCheckpoint, string>;
  readonly journal: Database<unknown, string>;
  readonly keys: Database<StoredKey, string>;
  readonly keyExpiry: Database<null, [number, string]>;
  /** The share of new domains in the last part added: it decides how the next one is written. */
  #newShare = 0.5;

  /** Whether LMDB's data file is in the directory. */
  static exist(directory: string): boolean {
    return existsSync(join(directory, 'data.mdb'));
  }

  constructor(directory: string) {
    try {
      mkdirSync(directory, { recursive: true });
      // overlappingSync (lmdb-js's default off Windows) keeps the database consistent after a
      // power loss while the disk flush runs outside the write lock. noSubdir: false, because
      // lmdb-js takes a path with an extension (`/tmp/tmp.x1`, `counts.db`) for a file otherwise.
      this.root = open({ path: directory, maxDbs: 8, overlappingSync: true, noSubdir: false });
    } catch (error) {
      throw new Error(
        `cannot open the embedded store in ${directory}: ${(error as Error).message}; ` +
          '--store must name a directory (created when missing) that this user can read and write',
        { cause: error },
      );
    }
    this.domains = this.root.openDB<Buffer, string>({ name: 'domains', encoding: 'binary' });
    this.replays = this.root.openDB<ReplayCheckpoint, string>({ name: 'replays' });
    this.journal = this.root.openDB<unknown, string>({ name: 'journal' });
    this.keys = this.root.openDB<StoredKey, string>({ name: 'keys' });
    this.keyExpiry = this.root.openDB<null, [number, string]>({ name: 'keyExpiry' });
  }

  /**
   * Stores the keys of applied requests with their answers, and removes keys that expired. Call
   * inside the write transaction that marks their journal applied.
   */
  storeKeys(records: Iterable<KeyRecord>, now: number): void {
    for (const { key, fingerprint, expiresAt, status, body } of records) {
      // Already forgotten, or a later use of the key was applied first (from another journal).
      if (expiresAt <= now || (this.keys.get(key)?.expiresAt ?? 0) >= expiresAt) continue;
      this.keys.put(key, { fingerprint, expiresAt, status, body });
      this.keyExpiry.put([expiresAt, key], null);
    }
    let swept = 0;
    for (const { key: entry } of this.keyExpiry.getRange({ end: [now, ''] })) {
      if (swept++ === KEYS_SWEPT_PER_JOB) break;
      const [expiresAt, key] = entry;
      if (this.keys.get(key)?.expiresAt === expiresAt) this.keys.remove(key);
      this.keyExpiry.remove(entry);
    }
  }

  counts(domain: string): DomainCounts | undefined {
    return decodeCounts(this.domains.get(domain));
  }

  /**
   * Adds the deltas of `keys[from..to)` to the stored counts. Call inside a write transaction.
   * Where most domains are new (a store being filled), each is first put if absent: one B-tree
   * search instead of a read and a write (measured: 10M new domains replayed 22 % faster); where
   * most exist, each is read, then written.
   */
  addCounts({ domains: keys, delivered, bounced }: SortedDeltas, from: number, to: number): void {
    const domains = this.domains;
    const insertFirst = this.#newShare >= 0.5;
    let inserted = 0;
    // A put in a synchronous transaction copies its value at once: one buffer serves every domain.
    const value = Buffer.allocUnsafe(VALUE_SIZE);
    for (let i = from; i < to; i++) {
      const domain = keys[i]!;
      value.writeDoubleLE(delivered[i]!, 0);
      value.writeDoubleLE(bounced[i]!, 8);
      // lmdb-js types putSync's result as void; in a transaction it is whether the put happened.
      if (insertFirst && (domains.putSync(domain, value, NO_OVERWRITE) as unknown as boolean) === true) {
        inserted++;
        continue;
      }
      const current = domains.getBinaryFast(domain);
      if (current === undefined) inserted++;
      else {
        value.writeDoubleLE(current.readDoubleLE(0) + delivered[i]!, 0);
        value.writeDoubleLE(current.readDoubleLE(8) + bounced[i]!, 8);
      }
      domains.put(domain, value);
    }
    if (to > from) this.#newShare = inserted / (to - from);
  }

  /**
   * Sets domains' counts to `totals`, read in order from a log of totals (PREFIX.counts): the
   * last total of a domain wins. Nothing is read: lmdb-js's asynchronous puts are only encoded
   * here, and its write thread commits them in large transactions while this thread goes on
   * (decoding the next records). The promise resolves once they are committed.
   */
  putTotals(totals: Iterable<readonly [string, DomainCounts]>): Promise<unknown> {
    const domains = this.domains;
    let written: Promise<unknown> = Promise.resolve();
    for (const [domain, { delivered, bounced }] of totals) {
      // An asynchronous put may keep its value until its transaction: one buffer each.
      const value = Buffer.allocUnsafe(VALUE_SIZE);
      value.writeDoubleLE(delivered, 0);
      value.writeDoubleLE(bounced, 8);
      written = domains.put(domain, value);
    }
    // lmdb-js commits its queued puts in order: the last one committed, all are.
    return written;
  }

  /**
   * Adds `deltas` (sorted, so that neighbouring domains share LMDB pages) in parts of
   * `perTransaction` domains, one write transaction each: LMDB's cost of a transaction grows
   * faster than its size (its dirty-page lists are sorted arrays). `progress` records in each
   * transaction how far the keys are applied, so that a run cut short resumes after the last part
   * committed and never applies one twice. `between` runs between parts, outside any transaction.
   */
  async addSortedInParts(deltas: SortedDeltas, perTransaction: number, progress: PartProgress, between?: () => Promise<void>): Promise<void> {
    const keys = deltas.domains;
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
