import { MongoServerError, type Collection } from 'mongodb';
import type { ClaimedKey, KeyClaim } from '../../core/idempotency.js';
import { log } from '../../log.js';
import type { Answered } from './deadline.js';
import type { BatchDocument, KeyDocument } from './documents.js';
import type { ServerProfile } from './server-profile.js';
import { DUPLICATE_KEY } from './writer-slots.js';

/**
 * A claim older than this was left by a process that died before it logged its batch; a logged
 * batch, keys included, is finished by whoever takes its writer slot, within about 20 s while any
 * serve-http runs on the store. A batch whose claims are past half of it is failed before it is
 * logged (see checkClaims), so a live writer never stores a key that a repeat may have taken over.
 */
const CLAIM_LAPSE_MS = 60_000;
/** Where the server has no TTL index, how often expired keys are removed. */
const KEY_SWEEP_MS = 10 * 60_000;

/** Idempotency keys in `<collection>_keys`: claimed by requests, then done with their answers. */
export class MongoKeys {
  readonly #keys: Collection<KeyDocument>;
  readonly #answered: Answered;
  /** Who holds this process's claims. */
  readonly claimant: string;
  /** Keys of batches being logged or finished by this process: their claims are not stale. */
  readonly held = new Set<string>();
  #lastSweep = 0;

  constructor(keys: Collection<KeyDocument>, claimant: string, answered: Answered) {
    this.#keys = keys;
    this.claimant = claimant;
    this.#answered = answered;
  }

  get collection(): Collection<KeyDocument> {
    return this.#keys;
  }

  /**
   * Inserting the key's document is the claim: its `_id` is unique, so of two processes one
   * fails. A done key is answered from its document; a claim that lapsed is taken over with an
   * update that matches only the lapsed document, so that again one process wins.
   */
  async claim(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    const claim = { fingerprint, claimedBy: this.claimant, claimedAt: new Date(now) };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.#answered(this.#keys.insertOne({ _id: key, ...claim }));
        return { state: 'claimed' };
      } catch (error) {
        if (!(error instanceof MongoServerError && error.code === DUPLICATE_KEY)) throw error;
      }
      const found = await this.#answered(this.#keys.findOne({ _id: key }));
      if (found === null) continue; // Expired and removed since: insert again.
      if (found.expiresAt !== undefined && found.expiresAt.getTime() > now) {
        return { state: 'done', record: { key, fingerprint: found.fingerprint, expiresAt: found.expiresAt.getTime(), status: found.status ?? 0, body: found.body ?? '' } };
      }
      // This process's own claim with no batch holding it: its request failed before it committed
      // (the claim's answer was lost with the connection). The HTTP layer asks only for keys
      // none of its requests holds, so it is free.
      const stale = found.claimedBy === this.claimant && !this.held.has(key);
      if (!stale && found.claimedAt !== undefined && found.claimedAt.getTime() + CLAIM_LAPSE_MS > now) {
        return { state: 'in-flight', fingerprint: found.fingerprint };
      }
      const { _id, ...lapsed } = found;
      const taken = await this.#answered(
        this.#keys.replaceOne({ _id: key, claimedAt: lapsed.claimedAt ?? { $exists: false }, expiresAt: lapsed.expiresAt ?? { $exists: false } }, claim),
      );
      if (taken.modifiedCount === 1) return { state: 'claimed' };
    }
    throw new Error(`the idempotency key ${JSON.stringify(key)} kept changing while it was claimed`);
  }

  async release(key: string): Promise<void> {
    await this.#answered(this.#keys.deleteOne({ _id: key, claimedBy: this.claimant }));
  }

  /** Lets go of this process's claims of `keys` (a batch abandoned: their retries are counted). */
  async releaseAll(keys: string[]): Promise<void> {
    await this.#answered(this.#keys.deleteMany({ _id: { $in: keys }, claimedBy: this.claimant }));
  }

  /** Without a TTL index, removes expired keys every KEY_SWEEP_MS, in the background. */
  sweep(now: number, profile: ServerProfile): void {
    if (profile.ttl || now - this.#lastSweep < KEY_SWEEP_MS) return;
    this.#lastSweep = now;
    this.#keys.deleteMany({ expiresAt: { $lte: new Date(now) } }).catch(() => {});
  }

  /**
   * Turns a batch's claims into done keys. Idempotent: a key already done with this answer
   * matches too, so a batch finished again (after a failure, by another process) stores nothing
   * twice. A claim that lapsed and was taken by a repeat (its batch was finished too late) is
   * left to that repeat.
   */
  async store(keys: BatchDocument['keys']): Promise<void> {
    if (keys.length === 0) return;
    const result = await this.#answered(
      this.#keys.bulkWrite(
        keys.map(({ key, fingerprint, expiresAt, status, body, claimedBy }) => ({
          replaceOne: {
            filter: { _id: key, $or: [{ claimedBy }, { fingerprint, expiresAt: new Date(expiresAt) }] },
            replacement: { fingerprint, expiresAt: new Date(expiresAt), status, body },
          },
        })),
        { ordered: false },
      ),
    );
    if (result.matchedCount !== keys.length) log('warn', 'idempotency keys of a batch finished late were taken by their repeats', { keys: keys.length - result.matchedCount });
  }
}

/** Fails a batch whose claims are old enough to lapse before it is written (see CLAIM_LAPSE_MS). */
export function checkClaims(keys: readonly ClaimedKey[]): void {
  const now = Date.now();
  if (keys.some((key) => key.claimedAt + CLAIM_LAPSE_MS / 2 < now)) {
    throw new Error('the batch waited too long: its idempotency keys may have lapsed');
  }
}
