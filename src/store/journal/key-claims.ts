import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { ClaimedKey, KeyClaim } from '../../core/idempotency.js';
import type { LmdbTables, StoredKey } from '../lmdb-tables.js';
import type { JournalTail } from './tail.js';
import type { UnappliedIndex } from './unapplied.js';

/**
 * Idempotency keys on the embedded store. A key journaled by any process and not yet applied is
 * found in the index of unapplied journal; one applied, or claimed by a request in flight, in
 * LMDB's `keys` table. A claim is an LMDB write transaction, so of two processes one wins.
 *
 * A claim lapses after a journal lease: a live process journals its batch well before that (see
 * JournalIngest.append) or fails it and releases the key. A claim whose process is known dead
 * (same machine, its pid gone) is taken over at once, once the journals are read again: the dead
 * process cannot append any more, so if its record is not in them now, it never will be.
 */
export class KeyClaims {
  readonly #tables: LmdbTables;
  readonly #index: UnappliedIndex;
  readonly #tail: JournalTail;
  readonly #lapseMs: number;
  readonly #claimant = { claimedBy: randomUUID(), pid: process.pid, host: HOST };

  constructor(tables: LmdbTables, index: UnappliedIndex, tail: JournalTail, lapseMs: number) {
    this.#tables = tables;
    this.#index = index;
    this.#tail = tail;
    this.#lapseMs = lapseMs;
  }

  async claim(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    const journaled = this.#journaled(key, now);
    if (journaled) return journaled;
    const first = await this.#tables.root.transaction(() => this.#decide(key, fingerprint, now, undefined));
    if (first.state !== 'orphaned') return first;
    // Read what the dead process may have appended just before it died, then decide again.
    this.#tail.poll();
    return (
      this.#journaled(key, now) ??
      (await this.#tables.root.transaction(() => {
        const decided = this.#decide(key, fingerprint, now, first.claimedBy);
        return decided.state === 'orphaned' ? { state: 'in-flight' as const, fingerprint: decided.fingerprint } : decided;
      }))
    );
  }

  /**
   * Replaces this process's claims of journaled keys by their answers, so that a claim does not
   * outlive its request (a repeat after the window expired would be refused as in flight). Not
   * waited for: until it commits, the journal answers for the keys, and if it is lost in a crash,
   * the claims lapse.
   */
  resolve(keys: readonly ClaimedKey[]): Promise<void> {
    const keysTable = this.#tables.keys;
    return this.#tables.root.transaction(() => {
      for (const { key, fingerprint, expiresAt, status, body } of keys) {
        if (keysTable.get(key)?.claimedBy === this.#claimant.claimedBy) keysTable.put(key, { fingerprint, expiresAt, status, body });
      }
    });
  }

  /** Lets go of a key whose batch failed; only this process's own claim. */
  release(key: string): Promise<void> {
    const keysTable = this.#tables.keys;
    return this.#tables.root.transaction(() => {
      if (keysTable.get(key)?.claimedBy === this.#claimant.claimedBy) keysTable.remove(key);
    });
  }

  #journaled(key: string, now: number): KeyClaim | undefined {
    this.#index.refresh();
    const record = this.#index.keyRecord(key, now);
    return record && { state: 'done', record };
  }

  /**
   * Inside a write transaction: the key's state, claiming it when free. A claim of a dead process
   * is taken over only when `takeOver` names it (the journals were read again since); otherwise
   * it is reported as orphaned.
   */
  #decide(key: string, fingerprint: string, now: number, takeOver: string | undefined): KeyClaim | { state: 'orphaned'; claimedBy: string; fingerprint: string } {
    const stored = this.#tables.keys.get(key);
    if (stored?.expiresAt !== undefined && stored.expiresAt > now) {
      const { fingerprint: print, expiresAt, status = 0, body = '' } = stored;
      return { state: 'done', record: { key, fingerprint: print, expiresAt, status, body } };
    }
    if (stored?.claimedAt !== undefined && stored.claimedAt + this.#lapseMs > now) {
      if (!claimantDead(stored)) return { state: 'in-flight', fingerprint: stored.fingerprint };
      if (stored.claimedBy !== takeOver) return { state: 'orphaned', claimedBy: stored.claimedBy!, fingerprint: stored.fingerprint };
    }
    this.#tables.keys.put(key, { fingerprint, claimedAt: now, ...this.#claimant });
    return { state: 'claimed' };
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
function claimantDead(claim: StoredKey): boolean {
  if (claim.host !== HOST || claim.pid === undefined || claim.host.endsWith('/unknown')) return false;
  try {
    process.kill(claim.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
