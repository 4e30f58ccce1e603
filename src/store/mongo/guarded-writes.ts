import { Long, MongoBulkWriteError, type Collection } from 'mongodb';
import { StoreUnavailableError } from '../../core/errors.js';
import type { Answered } from './deadline.js';
import type { DomainDocument, Entry, Operation } from './documents.js';
import type { Lanes } from './lanes.js';
import type { ServerProfile } from './server-profile.js';
import { DUPLICATE_KEY } from './writer-slots.js';

/** Rounds of retrying upserts that lost an insert race before the batch fails. */
const DUPLICATE_RETRIES = 5;

/**
 * The guards: upserts of counter documents that carry a number in a field of the document (a
 * writer slot's batch, a replay run's chunk) and change nothing where the document already holds
 * it, so that a batch or a chunk applied again counts nothing twice.
 */
export class GuardedWrites {
  readonly #domains: Collection<DomainDocument>;
  readonly #lanes: Lanes;
  readonly #answered: Answered;

  constructor(domains: Collection<DomainDocument>, lanes: Lanes, answered: Answered) {
    this.#domains = domains;
    this.#lanes = lanes;
    this.#answered = answered;
  }

  /**
   * Upserts guarded by the batch's number in `mark`: a document that already has it is left
   * alone. On MongoDB the guard is in each upsert's filter, checked atomically with the write. On
   * FerretDB a filter on more than `_id` is not pushed down to its SQL backend (each upsert would
   * scan the collection, 4.5 times slower on SQLite), so the filter is `_id` alone and, where the
   * mark may be there already (`check`), the documents are read first: a lane is the only writer
   * of its documents in this process, so nothing of this slot changes them in between.
   */
  async writeGuarded(part: Entry[], mark: string, seq: number, profile: ServerProfile, lane: number, check: boolean): Promise<void> {
    const inFilter = !profile.ferretdb;
    let entries = part;
    if (!inFilter && check) {
      const pending = await this.notYetApplied(
        part.map(([domain]) => ({ updateOne: { filter: { _id: domain }, update: {} } })),
        mark,
        seq,
      );
      const ids = new Set(pending.map((op) => (op as { updateOne: { filter: { _id: string } } }).updateOne.filter._id));
      entries = part.filter(([domain]) => ids.has(domain));
    }
    const operations: Operation[] = entries.map(([domain, delivered, bounced]) => ({
      updateOne: {
        filter: inFilter ? { _id: domain, [mark]: { $not: { $gte: seq } } } : { _id: domain },
        update: { $inc: { delivered: Long.fromNumber(delivered), bounced: Long.fromNumber(bounced) }, $set: { [mark]: seq } },
        upsert: true,
      },
    }));
    await this.write(operations, profile, (failed) => this.notYetApplied(failed, mark, seq), lane);
  }

  /** Of upserts that failed on a duplicate key, those whose document does not hold `mark` >= `value` yet (an insert race). */
  async notYetApplied(failed: Operation[], mark: string, value: number): Promise<Operation[]> {
    const ids = failed.map((op) => (op as { updateOne: { filter: { _id: string } } }).updateOne.filter._id);
    const applied = new Set<string>();
    const [field, sub] = mark.split('.');
    for await (const document of this.#domains.find({ _id: { $in: ids } }, { projection: { [mark]: 1 } })) {
      let seen: unknown = (document as unknown as Record<string, unknown>)[field!];
      if (sub !== undefined) seen = (seen as Record<string, unknown> | undefined)?.[sub];
      if (typeof seen === 'number' && seen >= value) applied.add(document._id);
    }
    return failed.filter((_, i) => !applied.has(ids[i]!));
  }

  /**
   * Sends the operations in commands of the server's size. A guarded upsert whose document
   * already holds its mark fails with a duplicate key without changing anything, as does one that
   * loses an insert race with another writer; `retryable` picks, from a command that had such
   * failures, the operations to send again: those whose document does not hold the mark yet.
   */
  async write(operations: Operation[], profile: ServerProfile, retryable: (failed: Operation[]) => Promise<Operation[]>, lane: number): Promise<void> {
    for (let i = 0; i < operations.length; i += profile.operationsPerWrite) {
      let pending = operations.slice(i, i + profile.operationsPerWrite);
      for (let attempt = 0; pending.length > 0; attempt++) {
        const failed = await this.#bulkWrite(pending, lane);
        if (failed.length === 0) break;
        if (attempt === DUPLICATE_RETRIES) throw new StoreUnavailableError('MongoDB: upserts kept colliding on duplicate keys');
        pending = await retryable(failed);
      }
    }
  }

  /**
   * One unordered bulkWrite, sent once the lane is quiet (see Lanes.quiet); after duplicate-key
   * failures returns its operations to check again, throws on anything else.
   */
  async #bulkWrite(operations: Operation[], lane: number): Promise<Operation[]> {
    await this.#lanes.quiet(lane);
    const command = this.#domains.bulkWrite(operations, { ordered: false });
    this.#lanes.sent(lane, command);
    try {
      await this.#answered(command);
      return [];
    } catch (error) {
      if (!(error instanceof MongoBulkWriteError)) throw error;
      const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
      if (writeErrors.length === 0 || writeErrors.some((e) => e.code !== DUPLICATE_KEY)) throw error;
      // FerretDB 1.24 stops an unordered command at its first error without saying so: every
      // operation is checked again, not only those that failed (the guards make that safe).
      return operations;
    }
  }
}
