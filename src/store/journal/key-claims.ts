import { randomUUID } from 'node:crypto';
import { mkdirSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { KeyClaim } from '../../core/idempotency.js';
import type { LmdbTables } from '../lmdb/lmdb-tables.js';
import type { JournalTail } from './tail.js';
import type { UnappliedIndex } from './unapplied.js';

/** A request in flight holding a key. */
interface Claim {
  fingerprint: string;
  claimedBy: string;
  claimedAt: number;
  /** The claiming process, its machine and pid namespace: a claim of a dead process is taken over early. */
  pid: number;
  host: string;
}

/** A claim held by a process that is dead: taken over once the journals are read again. */
type Orphaned = { state: 'orphaned'; claimedBy: string; fingerprint: string };

/** Claims swept per claim made, at most: sweeping keeps pace with claiming, a little at a time. */
const SWEPT_PER_CLAIM = 4;

/**
 * Idempotency keys on the embedded store, claimed by requests. A key is, in this order:
 * - journaled by any process and not applied yet: in the index of unapplied journal;
 * - applied: in LMDB's `keys` table, written with the counts (see LmdbTables.storeKeys);
 * - claimed by a request in flight: in the `claims` environment, a small LMDB of its own.
 *
 * A claim is a synchronous write transaction of that environment, so of two processes one wins,
 * and nothing else ever holds its lock for more than a few microseconds: the apply thread's long
 * transactions on the counts cannot delay a request. It is not flushed to disk: after a power loss
 * every claimant is dead, and the journal and LMDB answer for the keys that were used.
 *
 * A claim ends when its key is journaled (found in the index, it is no longer in flight), when its
 * request fails (released), after a journal lease (a live process journals its batch well before
 * that, see JournalIngest.append), or at once when its process is dead (same machine, pid gone):
 * then the journals are read again first, since the dead process cannot append any more. Claims
 * are swept two leases after they were made.
 */
export class KeyClaims {
  readonly #env: RootDatabase;
  readonly #claims: Database<Claim, string>;
  /** The claims by time, for the sweep: [claimedAt, key]. */
  readonly #byTime: Database<null, [number, string]>;
  readonly #tables: LmdbTables;
  readonly #index: UnappliedIndex;
  readonly #tail: JournalTail;
  readonly #lapseMs: number;
  readonly #claimant = { claimedBy: randomUUID(), pid: process.pid, host: HOST };
  #queued: Array<{ key: string; fingerprint: string; now: number; resolve(claim: KeyClaim): void; reject(error: Error): void }> = [];

  constructor(storeDirectory: string, tables: LmdbTables, index: UnappliedIndex, tail: JournalTail, lapseMs: number) {
    const path = join(storeDirectory, 'claims');
    mkdirSync(path, { recursive: true });
    this.#env = open({ path, maxDbs: 2, noSync: true, overlappingSync: false, noSubdir: false });
    this.#claims = this.#env.openDB<Claim, string>({ name: 'claims' });
    this.#byTime = this.#env.openDB<null, [number, string]>({ name: 'byTime' });
    this.#tables = tables;
    this.#index = index;
    this.#tail = tail;
    this.#lapseMs = lapseMs;
  }

  /**
   * Claims made in one turn of the event loop are decided together, in one transaction: a
   * commit costs tens of microseconds, more than everything else a claim does.
   */
  claim(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    return new Promise((resolve, reject) => {
      if (this.#queued.length === 0) setImmediate(this.#decideQueued);
      this.#queued.push({ key, fingerprint, now, resolve, reject });
    });
  }

  readonly #decideQueued = (): void => {
    const queued = this.#queued;
    this.#queued = [];
    let decided: Array<KeyClaim | Orphaned>;
    try {
      decided = this.#env.transactionSync(() => {
        this.#sweep(Date.now(), queued.length * SWEPT_PER_CLAIM);
        this.#index.refresh();
        return queued.map(({ key, fingerprint, now }) => this.#decide(key, fingerprint, now, undefined));
      });
      // Read what dead processes may have appended just before they died, then decide those again.
      if (decided.some((claim) => claim.state === 'orphaned')) {
        this.#tail.poll();
        this.#index.refresh();
        decided = this.#env.transactionSync(() =>
          decided.map((first, i) => {
            if (first.state !== 'orphaned') return first;
            const { key, fingerprint, now } = queued[i]!;
            const second = this.#decide(key, fingerprint, now, first.claimedBy);
            return second.state === 'orphaned' ? { state: 'in-flight' as const, fingerprint: second.fingerprint } : second;
          }),
        );
      }
    } catch (error) {
      for (const { reject } of queued) reject(error as Error);
      return;
    }
    queued.forEach(({ resolve }, i) => resolve(decided[i] as KeyClaim));
  };

  /** Lets go of a key whose batch failed; only this process's own claim. */
  release(key: string): void {
    this.#env.transactionSync(() => {
      const claim = this.#claims.get(key);
      if (claim?.claimedBy !== this.#claimant.claimedBy) return;
      this.#claims.remove(key);
      this.#byTime.remove([claim.claimedAt, key]);
    });
  }

  close(): Promise<void> {
    return this.#env.close();
  }

  /**
   * Inside the claims' write transaction, so that no other process claims meanwhile, with the
   * index refreshed: the key's state, claiming it when free. A claim of a dead process is taken over only when `takeOver`
   * names it (the journals were read again since); otherwise it is reported as orphaned.
   */
  #decide(key: string, fingerprint: string, now: number, takeOver: string | undefined): KeyClaim | Orphaned {
    const journaled = this.#index.keyRecord(key);
    if (journaled && journaled.expiresAt > now) return { state: 'done', record: journaled };
    const stored = this.#tables.keys.get(key);
    if (stored !== undefined && stored.expiresAt > now) return { state: 'done', record: { key, ...stored } };
    const claim = this.#claims.get(key);
    // A claim is over once its request's record is journaled: that record expires after the claim was made.
    const over = claim === undefined || claim.claimedAt + this.#lapseMs <= now || (journaled !== undefined && journaled.expiresAt >= claim.claimedAt);
    if (!over) {
      if (!claimantDead(claim)) return { state: 'in-flight', fingerprint: claim.fingerprint };
      if (claim.claimedBy !== takeOver) return { state: 'orphaned', claimedBy: claim.claimedBy, fingerprint: claim.fingerprint };
    }
    if (claim) this.#byTime.remove([claim.claimedAt, key]);
    this.#claims.put(key, { fingerprint, claimedAt: now, ...this.#claimant });
    this.#byTime.put([now, key], null);
    return { state: 'claimed' };
  }

  /** Removes up to `most` claims made more than two leases ago: their keys are journaled, applied or free. */
  #sweep(now: number, most: number): void {
    let swept = 0;
    for (const { key: entry } of this.#byTime.getRange({ end: [now - 2 * this.#lapseMs, ''], limit: most })) {
      if (swept++ === most) break;
      const [claimedAt, key] = entry;
      if (this.#claims.get(key)?.claimedAt === claimedAt) this.#claims.remove(key);
      this.#byTime.remove(entry);
    }
  }
}

/**
 * The machine, and the pid namespace on it: a pid means the same process only within both (two
 * containers sharing a store directory have a pid namespace each).
 */
const HOST = `${hostname()}/${pidNamespace()}`;

function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return 'unknown';
  }
}

/** True only when the claiming process certainly no longer exists. */
function claimantDead(claim: Claim): boolean {
  if (claim.host !== HOST || HOST.endsWith('/unknown')) return false;
  try {
    process.kill(claim.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
