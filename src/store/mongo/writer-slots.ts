import { randomUUID } from 'node:crypto';
import { MongoServerError, type Collection } from 'mongodb';

/**
 * A writer's identity on MongoDB, for batches applied exactly once without transactions: a small
 * slot number, leased, so that documents carry one guard field per slot (`w.<slot>`) rather than
 * one per process that ever ran. A slot's batch numbers only grow, whoever holds it: they are
 * handed out in blocks reserved in the slot's document.
 */
export interface SlotDocument {
  _id: number;
  owner: string;
  heartbeat: Date;
  /** The next batch number nobody was given yet. */
  nextSeq: number;
}

/** MongoDB's error code for an insert whose _id (or unique key) exists: how a claim is refused. */
export const DUPLICATE_KEY = 11000;
const SEQ_BLOCK = 1000;

export class WriterSlots {
  readonly #slots: Collection<SlotDocument>;
  readonly #leaseMs: number;
  readonly owner = randomUUID();
  #slot: number | undefined;
  #lastHeartbeat = 0;
  #seq = 0;
  #seqEnd = 0;
  #reserving: Promise<void> | undefined;

  constructor(slots: Collection<SlotDocument>, leaseMs: number) {
    this.#slots = slots;
    this.#leaseMs = leaseMs;
  }

  get slot(): number | undefined {
    return this.#slot;
  }

  /** Takes the first slot that is free or whose holder let its lease run out. */
  async acquire(): Promise<number> {
    for (let slot = 0; ; slot++) {
      const now = new Date();
      if ((await this.#take(slot, now)) && (await this.#stillOwned(slot))) {
        this.#slot = slot;
        this.#lastHeartbeat = now.getTime();
        return slot;
      }
    }
  }

  /**
   * Takes `slot` if it is free or lapsed; true when taken. The update matches only a lapsed
   * lease (or inserts a new slot), so of two processes one wins.
   */
  async #take(slot: number, now: Date): Promise<boolean> {
    try {
      const taken = await this.#slots.updateOne(
        { _id: slot, heartbeat: { $lt: new Date(now.getTime() - this.#leaseMs) } },
        { $set: { owner: this.owner, heartbeat: now } },
      );
      if (taken.modifiedCount === 1) return true;
      await this.#slots.insertOne({ _id: slot, owner: this.owner, heartbeat: now, nextSeq: 1 });
      return true;
    } catch (error) {
      if (error instanceof MongoServerError && error.code === DUPLICATE_KEY) return false;
      throw error;
    }
  }

  /**
   * FerretDB applies an update as read, modify, write without isolation: two processes taking one
   * lapsed slot at once may both see it modified. The last write wins; the other one finds out here.
   */
  async #stillOwned(slot: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return (await this.#slots.findOne({ _id: slot }))?.owner === this.owner;
  }

  /** Takes a lapsed slot for recovery (see lapsed()); the caller gives it back with release(). */
  async takeLapsed(slot: number): Promise<boolean> {
    const now = new Date();
    const taken = await this.#slots.updateOne(
      { _id: slot, heartbeat: { $lt: new Date(now.getTime() - this.#leaseMs) } },
      { $set: { owner: this.owner, heartbeat: now } },
    );
    return taken.modifiedCount === 1 && (await this.#stillOwned(slot));
  }

  /** Slots whose holder let its lease run out. */
  async lapsed(): Promise<number[]> {
    const cutoff = new Date(Date.now() - this.#leaseMs);
    return (await this.#slots.find({ heartbeat: { $lt: cutoff } }, { projection: { _id: 1 } }).toArray()).map((doc) => doc._id);
  }

  /** Gives a slot taken for recovery back: free for anyone at once. */
  async release(slot: number): Promise<void> {
    await this.#slots.updateOne({ _id: slot, owner: this.owner }, { $set: { heartbeat: new Date(0) } });
  }

  /** Renews this process's lease; false when another process took the slot. */
  async heartbeat(): Promise<boolean> {
    if (this.#slot === undefined) return true;
    const now = new Date();
    const renewed = await this.#slots.updateOne({ _id: this.#slot, owner: this.owner }, { $set: { heartbeat: now } });
    if (renewed.matchedCount === 1) this.#lastHeartbeat = now.getTime();
    return renewed.matchedCount === 1;
  }

  /** Whether the lease is fresh enough to write under: well before anyone may take the slot. */
  fresh(): boolean {
    return Date.now() - this.#lastHeartbeat < (this.#leaseMs * 2) / 3;
  }

  /**
   * The next batch number of this slot, synchronously, or undefined when the reserved block is
   * used up (then `reserve()` first): callers number their batches and queue their writes in one
   * synchronous step, so that the writes queue in the order of the numbers.
   */
  takeSeq(): number | undefined {
    return this.#seq < this.#seqEnd ? this.#seq++ : undefined;
  }

  /** Reserves the next block of batch numbers; one reservation at a time (FerretDB's `$inc` is not atomic). */
  reserve(): Promise<void> {
    this.#reserving ??= this.#reserve().finally(() => (this.#reserving = undefined));
    return this.#reserving;
  }

  async #reserve(): Promise<void> {
    const reserved = await this.#slots.findOneAndUpdate({ _id: this.#slot!, owner: this.owner }, { $inc: { nextSeq: SEQ_BLOCK } });
    if (reserved === null) throw new Error(`writer slot ${this.#slot} was taken over by another process`);
    this.#seq = reserved.nextSeq;
    this.#seqEnd = reserved.nextSeq + SEQ_BLOCK;
  }
}
