import {
  Long,
  MongoBulkWriteError,
  MongoClient,
  MongoServerError,
  type AnyBulkWriteOperation,
  type Collection,
  type ReadPreferenceMode,
  type W,
} from 'mongodb';
import { ConnectionString } from 'mongodb-connection-string-url';
import { randomUUID } from 'node:crypto';
import { InDoubtError, StoreUnavailableError } from '../core/errors.js';
import { fnv1a } from '../core/hash.js';
import { log } from '../log.js';
import type { ClaimedKey, KeyClaim } from '../core/idempotency.js';
import type { DomainCounts } from '../core/status.js';
import type { BatchExtras, CounterStore, Deltas, ReplayCheckpoint } from './counter-store.js';
import { DUPLICATE_KEY, WriterSlots, type SlotDocument } from './mongo-writer-slots.js';

export interface MongoStoreOptions {
  collection: string;
  /** `majority`, or a number of members. */
  writeConcern: W;
  readPreference: ReadPreferenceMode;
  /** How long an operation may wait for a reachable server before it fails. */
  timeoutMs: number;
  /** Upserts per write command and ids per `$in` read, when not the defaults (tests use small ones). */
  operationsPerWrite?: number;
  idsPerRead?: number;
}

/** One counter document per domain; the domain is the `_id`, so a hashed shard key on `_id` spreads them. */
interface DomainDocument {
  _id: string;
  delivered: Long | number;
  bounced: Long | number;
  /** Per writer slot, the last of its batches applied to this document (see #applyLogged). */
  w?: Record<string, number>;
}

/**
 * A live batch, logged before any of it is written and deleted once all of it is: if its writer
 * dies half-way, whoever takes the writer's slot applies it again, and the documents' guards
 * skip what was already applied.
 */
interface BatchDocument {
  _id: string;
  slot: number;
  seq: number;
  /** The deltas as three arrays of one length (FerretDB stores no arrays of arrays). */
  domains: string[];
  delivered: number[];
  bounced: number[];
  keys: Array<Omit<ClaimedKey, 'claimedAt'> & { claimedBy: string }>;
}

type Entry = [domain: string, delivered: number, bounced: number];

function entriesOf(batch: BatchDocument): Entry[] {
  return batch.domains.map((domain, i) => [domain, batch.delivered[i]!, batch.bounced[i]!]);
}

/** While a replay run is in progress, the documents it touched carry `replay_<run>: <last chunk applied>`. */
function replayMarker(run: string): string {
  return `replay_${run}`;
}

interface CheckpointDocument extends Omit<ReplayCheckpoint, 'source'> {
  _id: string;
}

type Operation = AnyBulkWriteOperation<DomainDocument>;

/**
 * An idempotency key: claimed by a request in flight (`claimedBy`, `claimedAt`), or done with the
 * answer its request got (`expiresAt`, which a TTL index removes it after).
 */
interface KeyDocument {
  _id: string;
  fingerprint: string;
  claimedBy?: string;
  claimedAt?: Date;
  expiresAt?: Date;
  status?: number;
  body?: string;
}

/**
 * A claim older than this was left by a process that died before it logged its batch; a logged
 * batch, keys included, is finished by whoever takes its writer slot, within about 20 s while any
 * serve-http runs on the store. A batch whose claims are past half of it is failed before it is
 * logged (see checkClaims), so a live writer never stores a key that a repeat may have taken over.
 */
const CLAIM_LAPSE_MS = 60_000;
/** How long a lane waits for a command given up on to settle before it sends the next one. */
const LANE_QUIET_MS = 60_000;
/** Lanes on MongoDB: commands of different domains in flight at once. */
const MONGODB_LANES = 4;
/** A writer slot whose holder is silent this long is taken over, and its logged batches applied. */
const SLOT_LEASE_MS = 15_000;

/** Where the server has no TTL index, how often expired keys are removed. */
const KEY_SWEEP_MS = 10 * 60_000;

/**
 * Operations per bulkWrite: well under the driver's own split at 100,000 operations and 16 MiB
 * (an upsert of a 253-character domain is under 400 bytes, so a chunk stays under 4 MiB).
 */
const OPERATIONS_PER_WRITE = 10_000;
/**
 * FerretDB 1.24 keeps a backend connection checked out for every update statement that matched a
 * document until the whole command ends (handler/msg_update.go defers each iterator's Close inside
 * its loop); with its pool of 100 connections, one `update` command of 100 such statements never
 * finishes, nor do several smaller ones at once that add up to it. Lanes × operations per command
 * stays at 32 per process, far from that limit even with several writers.
 */
const OPERATIONS_PER_WRITE_FERRETDB = 4;
/**
 * Lanes on FerretDB (see ServerProfile.lanes). On its PostgreSQL backend (wrk, 32 connections, PUTs
 * over 1,000 domains) 8 lanes of 4 operations took 958 requests/s, 4 of 8 862, 16 of 2 952, and one
 * batch at a time 645: 8 × 4 reaches a client that sends each request as its own `$inc` (950).
 */
const FERRETDB_LANES = 8;

/** What the connected server can do, learned once per store. */
interface ServerProfile {
  operationsPerWrite: number;
  /**
   * FerretDB 1.24 applies `$inc` as read, modify, write without isolation, so two concurrent
   * updates of one document can lose one increment. There, a batch's domains are written in
   * lanes chosen by a hash of the domain: lanes run in parallel, each one write at a time, so a
   * domain is only ever written by one lane and never twice at once, and a single process stays
   * exact. MongoDB's `$inc` is atomic, but lanes keep each document's batches in order there too,
   * which the batches' guards need (see #applyLogged).
   */
  lanes: number;
  /** TTL indexes remove expired keys; without them (FerretDB 1.24) serve-http removes them itself. */
  ttl: boolean;
  /** FerretDB: see #writeGuarded. */
  ferretdb: boolean;
}
/** Domains per `$in` read. */
const IDS_PER_READ = 1_000;
const NAMESPACE_EXISTS = 48;
/** Rounds of retrying upserts that lost an insert race before the batch fails. */
const DUPLICATE_RETRIES = 5;

/** The production store: counters in MongoDB through the official driver. */
export class MongoStore implements CounterStore {
  readonly #client: MongoClient;
  readonly #domains: Collection<DomainDocument>;
  readonly #replays: Collection<CheckpointDocument>;
  readonly #keys: Collection<KeyDocument>;
  readonly #batches: Collection<BatchDocument>;
  readonly #slots: WriterSlots;
  /** This process's writer slot, once it has one (the first live batch takes it). */
  #slot: Promise<number> | undefined;
  /** Keys of batches being logged or finished by this process: their claims are not stale. */
  readonly #held = new Set<string>();
  /** Batches being applied, which close() lets finish. */
  readonly #completing = new Set<Promise<void>>();
  #timers: NodeJS.Timeout[] = [];
  /** Who holds this process's claims of idempotency keys. */
  readonly #claimant = randomUUID();
  /** Longest a write command may take before its batch fails (see #answered). */
  readonly #deadlineMs: number;
  readonly #operationsPerWrite: number | undefined;
  readonly #idsPerRead: number;
  #profile: Promise<ServerProfile> | undefined;
  /** Per lane, its last write (see ServerProfile.lanes); the first one also orders replay chunks. */
  #lanes: Array<Promise<unknown>> = [];
  /** Per lane, when its last command settled (see #bulkWrite). */
  #laneSettled: Array<Promise<unknown>> = [];
  #connected = false;
  #closed = false;
  #lastKeySweep = 0;

  constructor(uri: string, options: MongoStoreOptions) {
    this.#client = new MongoClient(uri, {
      retryWrites: true,
      writeConcern: { w: options.writeConcern },
      readPreference: options.readPreference,
      serverSelectionTimeoutMS: options.timeoutMs,
      connectTimeoutMS: options.timeoutMs,
      // A server that accepted a connection but stopped answering is given twice the budget.
      socketTimeoutMS: options.timeoutMs * 2,
      // Waiting for a pooled connection is otherwise unbounded: after the server died mid-write, a
      // batch could wait for ever.
      waitQueueTimeoutMS: options.timeoutMs * 2,
      appName: 'svc',
    });
    // Beyond every driver timeout above, together with a server selection.
    this.#deadlineMs = options.timeoutMs * 3;
    this.#operationsPerWrite = options.operationsPerWrite;
    this.#idsPerRead = options.idsPerRead ?? IDS_PER_READ;
    const db = this.#client.db(databaseOf(uri));
    this.#domains = db.collection<DomainDocument>(options.collection);
    this.#replays = db.collection<CheckpointDocument>(`${options.collection}_replays`);
    this.#keys = db.collection<KeyDocument>(`${options.collection}_keys`);
    this.#batches = db.collection<BatchDocument>(`${options.collection}_batches`);
    this.#slots = new WriterSlots(db.collection<SlotDocument>(`${options.collection}_writers`), SLOT_LEASE_MS);
  }

  async applyBatch(deltas: Deltas, { checkpoint, keys = [] }: BatchExtras = {}): Promise<void> {
    this.#checkOpen();
    await this.#guard(async () => {
      const profile = await this.#serverProfile();
      if (checkpoint) await this.#inLane(0, () => this.#applyChunk(deltas, checkpoint, profile));
      else await this.#applyLogged(deltas, keys, profile);
    });
  }

  /**
   * A live batch, applied exactly once without multi-document transactions, on MongoDB and
   * FerretDB alike. The batch gets a number of this process's writer slot and is logged whole in
   * `<collection>_batches`; then each upsert carries the number in the document's `w.<slot>` and
   * only matches a document whose number for the slot is lower, so applying the batch again
   * changes nothing already applied (lanes apply a document's batches in order). Once logged, the
   * batch is finished whatever happens: every step is retried until it succeeds, the request is
   * answered 503 (in doubt) if that takes longer than the store's deadline, and a batch whose
   * process died is finished by the next holder of its slot. A log that fails is deleted again,
   * and the batch answered 503: nothing of it counted.
   */
  async #applyLogged(deltas: Deltas, keys: readonly ClaimedKey[], profile: ServerProfile): Promise<void> {
    checkClaims(keys);
    const slot = await this.#writerSlot();
    if (!this.#slots.fresh()) throw new StoreUnavailableError('MongoDB: the writer lease could not be renewed in time; retry');
    let seq: number | undefined;
    while ((seq = this.#slots.takeSeq()) === undefined) await this.#answered(this.#slots.reserve());
    const batch: BatchDocument = {
      _id: `${slot}:${seq}`,
      slot,
      seq,
      domains: [...deltas.keys()],
      delivered: [...deltas.values()].map((counts) => counts.delivered),
      bounced: [...deltas.values()].map((counts) => counts.bounced),
      keys: keys.map(({ key, fingerprint, expiresAt, status, body }) => ({ key, fingerprint, expiresAt, status, body, claimedBy: this.#claimant })),
    };
    // Queued in the lanes now, in the order of the numbers, to run once the batch is logged.
    const logged = this.#log(batch);
    const held = batch.keys.map(({ key }) => key);
    for (const key of held) this.#held.add(key);
    const letGo = () => held.forEach((key) => this.#held.delete(key));
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
      timer = setTimeout(() => reject(new InDoubtError('MongoDB: the batch is logged but not yet applied; it will be counted once, in the background')), this.#deadlineMs);
    });
    await Promise.race([done, deadline]).finally(() => clearTimeout(timer));
  }

  /** Logs a batch; if that fails, makes sure it is not logged, or says it may be (InDoubtError). */
  async #log(batch: BatchDocument): Promise<void> {
    try {
      await this.#answered(this.#batches.insertOne(batch));
    } catch (error) {
      // Not logged, or maybe logged: then it must not be applied later behind the client's back.
      const removed = await this.#answered(this.#batches.deleteOne({ _id: batch._id })).then(() => true, () => false);
      if (removed) throw error;
      throw new InDoubtError(`MongoDB: the batch may have been logged and may yet be counted: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * A batch whose log may have landed and was not applied: once the server answers, its log is
   * deleted, so that nobody applies it, and its keys are let go, so that their retries are counted.
   */
  async #abandon(batch: BatchDocument): Promise<void> {
    await this.#untilDone(() => this.#answered(this.#batches.deleteOne({ _id: batch._id })).then(() => {}));
    const keys = batch.keys.map(({ key }) => key);
    if (keys.length > 0) await this.#untilDone(() => this.#answered(this.#keys.deleteMany({ _id: { $in: keys }, claimedBy: this.#claimant })).then(() => {}));
  }

  /**
   * Applies a logged batch in lanes, stores its keys and deletes its log, each step retried until
   * done. Its writes are queued at once; they wait for `logged`, and are skipped if it was not.
   */
  async #finish(batch: BatchDocument, profile: ServerProfile, logged: Promise<boolean> = Promise.resolve(true), fresh = false): Promise<void> {
    const mark = `w.${batch.slot}`;
    const lanes = Math.max(1, profile.lanes);
    const parts = Array.from({ length: lanes }, () => [] as Entry[]);
    for (const entry of entriesOf(batch)) parts[(fnv1a(entry[0]) >>> 0) % lanes]!.push(entry);
    const written = parts.map((part, lane) =>
      part.length === 0
        ? undefined
        : this.#inLane(lane, async () => {
            if (!(await logged)) return;
            // A first attempt of a fresh batch cannot find its own mark yet; a retry, or a batch
            // finished for another process, may.
            let attempts = 0;
            await this.#untilDone(() => this.#writeGuarded(part, mark, batch.seq, profile, lane, attempts++ > 0 || !fresh));
          }),
    );
    if (!(await logged)) return;
    await Promise.all(written);
    await this.#untilDone(() => this.#storeKeys(batch.keys));
    await this.#untilDone(() => this.#answered(this.#batches.deleteOne({ _id: batch._id })).then(() => {}));
  }

  /**
   * Upserts guarded by the batch's number in `mark`: a document that already has it is left
   * alone. On MongoDB the guard is in each upsert's filter, checked atomically with the write. On
   * FerretDB a filter on more than `_id` is not pushed down to its SQL backend (each upsert would
   * scan the collection, 4.5 times slower on SQLite), so the filter is `_id` alone and, where the
   * mark may be there already (`check`), the documents are read first: a lane is the only writer
   * of its documents in this process, so nothing of this slot changes them in between.
   */
  async #writeGuarded(part: Entry[], mark: string, seq: number, profile: ServerProfile, lane: number, check: boolean): Promise<void> {
    const inFilter = !profile.ferretdb;
    let entries = part;
    if (!inFilter && check) {
      const pending = await this.#notYetApplied(
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
    await this.#write(operations, profile, (failed) => this.#notYetApplied(failed, mark, seq), lane);
  }

  /** Of upserts that failed on a duplicate key, those whose document does not hold `mark` >= `value` yet (an insert race). */
  async #notYetApplied(failed: Operation[], mark: string, value: number): Promise<Operation[]> {
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

  /** Retries `step` until it succeeds, unless the store is closed or this process lost its slot. */
  async #untilDone(step: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await step();
      } catch (error) {
        if (this.#closed || !this.#slots.fresh()) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  /**
   * Takes a writer slot at the first live batch, finishes what its last holder left logged, and
   * from then on renews its lease and finishes the batches of slots whose holder died.
   */
  #writerSlot(): Promise<number> {
    this.#slot ??= (async () => {
      const slot = await this.#answered(this.#slots.acquire());
      await this.#recover(slot, await this.#serverProfile());
      this.#timers = [
        setInterval(() => void this.#slots.heartbeat().catch(() => {}), SLOT_LEASE_MS / 5),
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
    const logged = await this.#batches.find({ slot }).sort({ seq: 1 }).toArray();
    for (const batch of logged) await this.#finish(batch, profile);
  }

  /** Takes over, one at a time, the slots whose holder died with batches logged, and finishes them. */
  async #recoverLapsed(): Promise<void> {
    const profile = await this.#serverProfile();
    for (const slot of await this.#slots.lapsed()) {
      if ((await this.#batches.countDocuments({ slot }, { limit: 1 })) === 0) continue;
      if (!(await this.#slots.takeLapsed(slot))) continue;
      try {
        const logged = await this.#batches.find({ slot }).sort({ seq: 1 }).toArray();
        // Through this process's lanes: its own batches may write the same documents.
        for (const batch of logged) await this.#finish(batch, profile);
      } finally {
        await this.#slots.release(slot);
      }
    }
  }

  /**
   * Inserting the key's document is the claim: its `_id` is unique, so of two processes one
   * fails. A done key is answered from its document; a claim that lapsed is taken over with an
   * update that matches only the lapsed document, so that again one process wins.
   */
  async claimKey(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    this.#checkOpen();
    const claim = { fingerprint, claimedBy: this.#claimant, claimedAt: new Date(now) };
    return this.#guard(async () => {
      this.#sweepKeys(now, await this.#serverProfile());
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
        const stale = found.claimedBy === this.#claimant && !this.#held.has(key);
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
    });
  }

  /** Without a TTL index, removes expired keys every KEY_SWEEP_MS, in the background. */
  #sweepKeys(now: number, profile: ServerProfile): void {
    if (profile.ttl || now - this.#lastKeySweep < KEY_SWEEP_MS) return;
    this.#lastKeySweep = now;
    this.#keys.deleteMany({ expiresAt: { $lte: new Date(now) } }).catch(() => {});
  }

  async releaseKey(key: string): Promise<void> {
    this.#checkOpen();
    await this.#guard(() => this.#answered(this.#keys.deleteOne({ _id: key, claimedBy: this.#claimant })));
  }

  /**
   * Turns a batch's claims into done keys. Idempotent: a key already done with this answer
   * matches too, so a batch finished again (after a failure, by another process) stores nothing
   * twice. A claim that lapsed and was taken by a repeat (its batch was finished too late) is
   * left to that repeat.
   */
  async #storeKeys(keys: BatchDocument['keys']): Promise<void> {
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

  async getCheckpoint(source: string): Promise<ReplayCheckpoint | undefined> {
    this.#checkOpen();
    const document = await this.#guard(() => this.#replays.findOne({ _id: source }));
    if (!document) return undefined;
    const { _id, ...rest } = document;
    return { source: _id, ...rest };
  }

  /**
   * A replay chunk, applied at most once without multi-document transactions (FerretDB and
   * standalone servers have none). Each upsert carries the chunk's number in the document's
   * `replay_<run>` field and only matches a document whose number for this run is lower, so the
   * same chunk sent again after a crash changes nothing twice: where the document already has it,
   * the filter misses and the upsert's insert fails on the duplicate `_id`, which is ignored.
   * The checkpoint is written after the counts; once the run is done its markers are removed.
   */
  async #applyChunk(deltas: Deltas, checkpoint: ReplayCheckpoint, profile: ServerProfile): Promise<void> {
    const marker = replayMarker(checkpoint.run);
    const operations: Operation[] = [];
    for (const [domain, delta] of deltas) {
      operations.push({
        updateOne: {
          filter: { _id: domain, [marker]: { $not: { $gte: checkpoint.chunk } } },
          update: {
            $inc: { delivered: Long.fromNumber(delta.delivered), bounced: Long.fromNumber(delta.bounced) },
            $set: { [marker]: checkpoint.chunk },
          },
          upsert: true,
        },
      });
    }
    // A duplicate key means "already applied" unless an insert race with another writer caused it.
    await this.#write(operations, profile, (failed) => this.#notYetApplied(failed, marker, checkpoint.chunk), 0);
    const { source, ...progress } = checkpoint;
    await this.#replays.replaceOne({ _id: source }, progress, { upsert: true });
    if (checkpoint.done) {
      await this.#domains.updateMany({ [marker]: { $exists: true } }, { $unset: { [marker]: '' } });
    }
  }

  /** Runs `write` after the lane's previous write. */
  #inLane(lane: number, write: () => Promise<void>): Promise<void> {
    const next = (this.#lanes[lane] ?? Promise.resolve()).then(write);
    this.#lanes[lane] = next.catch(() => {});
    return next;
  }



  async get(domain: string): Promise<DomainCounts | undefined> {
    this.#checkOpen();
    const document = await this.#guard(() => this.#domains.findOne({ _id: domain }));
    return document ? countsOf(document) : undefined;
  }

  async getMany(domains: readonly string[]): Promise<Map<string, DomainCounts>> {
    this.#checkOpen();
    const result = new Map<string, DomainCounts>();
    await this.#guard(async () => {
      for (let i = 0; i < domains.length; i += this.#idsPerRead) {
        const ids = domains.slice(i, i + this.#idsPerRead);
        for await (const document of this.#domains.find({ _id: { $in: ids } })) {
          result.set(document._id, countsOf(document));
        }
      }
    });
    return result;
  }

  async ping(): Promise<void> {
    this.#checkOpen();
    await this.#guard(() => this.#domains.db.command({ ping: 1 }));
  }

  /**
   * Lets batches being finished finish (for a while), then gives the writer slot back: whoever
   * takes it next finishes what is still logged.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.race([Promise.allSettled(this.#completing), new Promise((resolve) => setTimeout(resolve, this.#deadlineMs).unref())]);
    this.#closed = true;
    const slot = this.#slots.slot;
    if (slot !== undefined) await this.#answered(this.#slots.release(slot)).catch(() => {});
    await this.#client.close();
  }

  /**
   * Creates the collection and, behind mongos, shards it on `{ _id: "hashed" }`. Idempotent.
   * Returns what it did, for the operator.
   */
  async setup(): Promise<string[]> {
    this.#checkOpen();
    return this.#guard(async () => {
      const notes: string[] = [];
      const db = this.#domains.db;
      const namespace = `${db.databaseName}.${this.#domains.collectionName}`;
      try {
        await db.createCollection(this.#domains.collectionName);
        notes.push(`created collection ${namespace}`);
      } catch (error) {
        if (!(error instanceof MongoServerError && error.code === NAMESPACE_EXISTS)) throw error;
        notes.push(`collection ${namespace} already exists`);
      }
      const hello = await db.admin().command({ hello: 1 });
      if (hello.msg === 'isdbgrid') {
        await db.admin().command({ shardCollection: namespace, key: { _id: 'hashed' } });
        notes.push(`sharded ${namespace} on { _id: "hashed" }`);
      } else {
        const kind = hello.setName ? `replica set ${hello.setName}` : 'a standalone server';
        notes.push(`not sharding: connected to ${kind}, not to mongos; the collection is ready as it is`);
      }
      // Done keys are removed once they expire; lookups ignore expired ones until then.
      const keys = `${db.databaseName}.${this.#keys.collectionName}`;
      try {
        await this.#keys.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'expiresAt_ttl' });
        notes.push(`idempotency keys in ${keys}, removed by a TTL index when they expire`);
      } catch (error) {
        if (!(error instanceof MongoServerError && /expireAfterSeconds/.test(error.message))) throw error;
        await this.#keys.createIndex({ expiresAt: 1 }, { name: 'expiresAt' });
        notes.push(`idempotency keys in ${keys}; this server has no TTL indexes, so serve-http removes expired keys itself every 10 minutes`);
      }
      return notes;
    });
  }

  /**
   * Sends the operations in commands of the server's size. A guarded upsert whose document
   * already holds its mark fails with a duplicate key without changing anything, as does one that
   * loses an insert race with another writer; `retryable` picks, from a command that had such
   * failures, the operations to send again: those whose document does not hold the mark yet.
   */
  async #write(operations: Operation[], profile: ServerProfile, retryable: (failed: Operation[]) => Promise<Operation[]>, lane: number): Promise<void> {
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
   * One unordered bulkWrite; after duplicate-key failures returns its operations to check again,
   * throws on anything else. A lane sends its next command only once its last one has settled, even one
   * given up on at the deadline (for at most LANE_QUIET_MS): on FerretDB a command still running
   * could otherwise read a document before the retry's write and overwrite the next batch's.
   */
  async #bulkWrite(operations: Operation[], lane: number): Promise<Operation[]> {
    await this.#laneSettled[lane];
    const command = this.#domains.bulkWrite(operations, { ordered: false });
    const quiet = new Promise((resolve) => setTimeout(resolve, LANE_QUIET_MS).unref());
    this.#laneSettled[lane] = Promise.race([command.then(() => {}, () => {}), quiet]);
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

  /** What the server is: FerretDB needs lanes and small commands. Asked once, and again after a failure (the server may have been down). */
  #serverProfile(): Promise<ServerProfile> {
    this.#profile ??= (async () => {
      const buildInfo = await this.#answered(this.#domains.db.admin().command({ buildInfo: 1 }));
      const ferretdb = buildInfo.ferretdbVersion !== undefined;
      return {
        operationsPerWrite: this.#operationsPerWrite ?? (ferretdb ? OPERATIONS_PER_WRITE_FERRETDB : OPERATIONS_PER_WRITE),
        lanes: ferretdb ? FERRETDB_LANES : MONGODB_LANES,
        ttl: !ferretdb,
        ferretdb,
      };
    })().catch((error: unknown) => {
      this.#profile = undefined;
      throw error;
    });
    return this.#profile;
  }

  async #guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      // Once connected, the driver reconnects by itself after an outage; but a client whose first
      // connection failed stays closed unless connect() is called again.
      if (!this.#connected) {
        await this.#client.connect();
        this.#connected = true;
      }
      return await operation();
    } catch (error) {
      if (this.#closed) throw new StoreUnavailableError('MongoDB store is closed', { cause: error });
      throw new StoreUnavailableError(`MongoDB: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * The driver's command, failed if it has not settled by the deadline. When the server was
   * killed in the middle of a test's writes, a bulkWrite was seen to never settle despite every
   * timeout the driver offers, holding its batch, and every batch after it, for ever. A write
   * failed this way may still have been applied: like a socket timeout, it is in doubt, and its
   * requests get 503.
   */
  #answered<T>(command: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#deadlineMs} ms`)), this.#deadlineMs);
    });
    return Promise.race([command, deadline]).finally(() => clearTimeout(timer));
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('MongoDB store is closed');
  }
}

/** Fails a batch whose claims are old enough to lapse before it is written (see CLAIM_LAPSE_MS). */
function checkClaims(keys: readonly ClaimedKey[]): void {
  const now = Date.now();
  if (keys.some((key) => key.claimedAt + CLAIM_LAPSE_MS / 2 < now)) {
    throw new Error('the batch waited too long: its idempotency keys may have lapsed');
  }
}

function countsOf(document: DomainDocument): DomainCounts {
  return { delivered: Number(document.delivered), bounced: Number(document.bounced) };
}

/** The database named by the connection string's path, `svc` when it names none. */
export function databaseOf(uri: string): string {
  const name = decodeURIComponent(new ConnectionString(uri).pathname.replace(/^\//, ''));
  return name === '' ? 'svc' : name;
}
