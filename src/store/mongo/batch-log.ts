import type { Collection } from 'mongodb';
import { InDoubtError, StoreUnavailableError } from '../../core/errors.js';
import { fnv1a } from '../../core/hash.js';
import type { ClaimedKey } from '../../core/idempotency.js';
import type { Deltas } from '../counter-store.js';
import type { Answered } from './deadline.js';
import { entriesOf, type BatchDocument, type Entry } from './documents.js';
import type { GuardedWrites } from './guarded-writes.js';
import { checkClaims, type MongoKeys } from './idempotency-keys.js';
import type { Lanes } from './lanes.js';
import type { ServerProfile } from './server-profile.js';
import type { WriterSlots } from './writer-slots.js';

/** A writer slot whose holder is silent this long is taken over, and its logged batches applied. */
export const SLOT_LEASE_MS = 15_000;

export interface BatchLogParts {
  batches: Collection<BatchDocument>;
  slots: WriterSlots;
  keys: MongoKeys;
  lanes: Lanes;
  writes: GuardedWrites;
  answered: Answered;
  /** Longest a batch may take before its request is answered 503 (in doubt). */
  deadlineMs: number;
  profile: () => Promise<ServerProfile>;
  closed: () => boolean;
}

/**
 * Live batches, applied exactly once without multi-document transactions, on MongoDB and
 * FerretDB alike. A batch gets a number of this process's writer slot and is logged whole in
 * `<collection>_batches`; then each upsert carries the number in the document's `w.<slot>` and
 * only matches a document whose number for the slot is lower, so applying the batch again
 * changes nothing already applied (lanes apply a document's batches in order). Once logged, the
 * batch is finished whatever happens: every step is retried until it succeeds, the request is
 * answered 503 (in doubt) if that takes longer than the store's deadline, and a batch whose
 * process died is finished by the next holder of its slot. A log that fails is deleted again,
 * and the batch answered 503: nothing of it counted.
 */
export class BatchLog {
  readonly #p: BatchLogParts;
  /** This process's writer slot, once it has one (the first live batch takes it). */
  #slot: Promise<number> | undefined;
  /** Batches being applied, which drain() lets finish. */
  readonly #completing = new Set<Promise<void>>();
  #timers: NodeJS.Timeout[] = [];

  constructor(parts: BatchLogParts) {
    this.#p = parts;
  }

  async apply(deltas: Deltas, keys: readonly ClaimedKey[], profile: ServerProfile): Promise<void> {
    checkClaims(keys);
    const { slots, answered } = this.#p;
    const slot = await this.#writerSlot();
    if (!slots.fresh()) throw new StoreUnavailableError('MongoDB: the writer lease could not be renewed in time; retry');
    let seq: number | undefined;
    while ((seq = slots.takeSeq()) === undefined) await answered(slots.reserve());
    const batch: BatchDocument = {
      _id: `${slot}:${seq}`,
      slot,
      seq,
      domains: [...deltas.keys()],
      delivered: [...deltas.values()].map((counts) => counts.delivered),
      bounced: [...deltas.values()].map((counts) => counts.bounced),
      keys: keys.map(({ key, fingerprint, expiresAt, status, body }) => ({ key, fingerprint, expiresAt, status, body, claimedBy: this.#p.keys.claimant })),
    };
    // Queued in the lanes now, in the order of the numbers, to run once the batch is logged.
    const logged = this.#log(batch);
    const held = batch.keys.map(({ key }) => key);
    for (const key of held) this.#p.keys.held.add(key);
    const letGo = () => held.forEach((key) => this.#p.keys.held.delete(key));
    logged.catch((error: unknown) => {
      if (error instanceof InDoubtError) void this.#abandon(batch).finally(letGo);
      else letGo();
    });
    const done = this.#finish(batch, profile, logged.then(() => true, () => false), true);
    await logged;
    this.#completing.add(done);
    void done.finally(() => (this.#completing.delete(done), letGo())).catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new InDoubtError('MongoDB: the batch is logged but not yet applied; it will be counted once, in the background')), this.#p.deadlineMs);
    });
    await Promise.race([done, deadline]).finally(() => clearTimeout(timer));
  }

  /** Logs a batch; if that fails, makes sure it is not logged, or says it may be (InDoubtError). */
  async #log(batch: BatchDocument): Promise<void> {
    const { batches, answered } = this.#p;
    try {
      await answered(batches.insertOne(batch));
    } catch (error) {
      // Not logged, or maybe logged: then it must not be applied later behind the client's back.
      const removed = await answered(batches.deleteOne({ _id: batch._id })).then(() => true, () => false);
      if (removed) throw error;
      throw new InDoubtError(`MongoDB: the batch may have been logged and may yet be counted: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * A batch whose log may have landed and was not applied: once the server answers, its log is
   * deleted, so that nobody applies it, and its keys are let go, so that their retries are counted.
   */
  async #abandon(batch: BatchDocument): Promise<void> {
    const { batches, answered } = this.#p;
    await this.#untilDone(() => answered(batches.deleteOne({ _id: batch._id })).then(() => {}));
    const keys = batch.keys.map(({ key }) => key);
    if (keys.length > 0) await this.#untilDone(() => this.#p.keys.releaseAll(keys));
  }

  /**
   * Applies a logged batch in lanes, stores its keys and deletes its log, each step retried until
   * done. Its writes are queued at once; they wait for `logged`, and are skipped if it was not.
   */
  async #finish(batch: BatchDocument, profile: ServerProfile, logged: Promise<boolean> = Promise.resolve(true), fresh = false): Promise<void> {
    const { batches, answered, lanes: laneQueue, writes } = this.#p;
    const mark = `w.${batch.slot}`;
    const lanes = Math.max(1, profile.lanes);
    const parts = Array.from({ length: lanes }, () => [] as Entry[]);
    for (const entry of entriesOf(batch)) parts[(fnv1a(entry[0]) >>> 0) % lanes]!.push(entry);
    const written = parts.map((part, lane) =>
      part.length === 0
        ? undefined
        : laneQueue.run(lane, async () => {
            if (!(await logged)) return;
            // A first attempt of a fresh batch cannot find its own mark yet; a retry, or a batch
            // finished for another process, may.
            let attempts = 0;
            await this.#untilDone(() => writes.writeGuarded(part, mark, batch.seq, profile, lane, attempts++ > 0 || !fresh));
          }),
    );
    if (!(await logged)) return;
    await Promise.all(written);
    await this.#untilDone(() => this.#p.keys.store(batch.keys));
    await this.#untilDone(() => answered(batches.deleteOne({ _id: batch._id })).then(() => {}));
  }

  /** Retries `step` until it succeeds, unless the store is closed or this process lost its slot. */
  async #untilDone(step: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await step();
      } catch (error) {
        if (this.#p.closed() || !this.#p.slots.fresh()) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  /**
   * Takes a writer slot at the first live batch, finishes what its last holder left logged, and
   * from then on renews its lease and finishes the batches of slots whose holder died.
   */
  #writerSlot(): Promise<number> {
    const { slots, answered } = this.#p;
    this.#slot ??= (async () => {
      const slot = await answered(slots.acquire());
      await this.#recover(slot, await this.#p.profile());
      this.#timers = [
        setInterval(() => void slots.heartbeat().catch(() => {}), SLOT_LEASE_MS / 5),
        setInterval(() => void this.#recoverLapsed().catch(() => {}), SLOT_LEASE_MS / 3),
      ];
      for (const timer of this.#timers) timer.unref();
      return slot;
    })().catch((error: unknown) => {
      this.#slot = undefined;
      throw error;
    });
    return this.#slot;
  }

  /** Finishes every batch logged under `slot`, in order. */
  async #recover(slot: number, profile: ServerProfile): Promise<void> {
    const logged = await this.#p.batches.find({ slot }).sort({ seq: 1 }).toArray();
    for (const batch of logged) await this.#finish(batch, profile);
  }

  /** Takes over, one at a time, the slots whose holder died with batches logged, and finishes them. */
  async #recoverLapsed(): Promise<void> {
    const { batches, slots } = this.#p;
    const profile = await this.#p.profile();
    for (const slot of await slots.lapsed()) {
      if ((await batches.countDocuments({ slot }, { limit: 1 })) === 0) continue;
      if (!(await slots.takeLapsed(slot))) continue;
      try {
        const logged = await batches.find({ slot }).sort({ seq: 1 }).toArray();
        // Through this process's lanes: its own batches may write the same documents.
        for (const batch of logged) await this.#finish(batch, profile);
      } finally {
        await slots.release(slot);
      }
    }
  }

  /** Stops the background work and lets batches being finished finish, for at most `ms`. */
  async drain(ms: number): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.race([Promise.allSettled(this.#completing), new Promise((resolve) => setTimeout(resolve, ms).unref())]);
  }

  /** Gives the writer slot back: whoever takes it next finishes what is still logged. */
  async releaseSlot(): Promise<void> {
    const slot = this.#p.slots.slot;
    if (slot !== undefined) await this.#p.answered(this.#p.slots.release(slot)).catch(() => {});
  }
}
