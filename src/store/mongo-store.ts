import {
  Long,
  MongoBulkWriteError,
  MongoClient,
  MongoServerError,
  type AnyBulkWriteOperation,
  type ClientSession,
  type Collection,
  type ReadPreferenceMode,
  type W,
} from 'mongodb';
import { ConnectionString } from 'mongodb-connection-string-url';
import { randomUUID } from 'node:crypto';
import { StoreUnavailableError } from '../core/errors.js';
import { fnv1a } from '../core/hash.js';
import type { ClaimedKey, KeyClaim } from '../core/idempotency.js';
import type { DomainCounts } from '../core/status.js';
import type { BatchExtras, CounterStore, Deltas, ReplayCheckpoint } from './counter-store.js';

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
 * A claim older than this was left by a process that died in the middle of its batch. A batch
 * whose claims are past half of it is failed before it writes (see #checkClaims), so a live
 * writer never stores a key that a repeat may have taken over.
 */
const CLAIM_LAPSE_MS = 60_000;
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
  transactions: boolean;
  operationsPerWrite: number;
  /**
   * FerretDB 1.24 applies `$inc` as read, modify, write without isolation, so two concurrent
   * updates of one document can lose one increment. There, a batch's domains are written in
   * lanes chosen by a hash of the domain: lanes run in parallel, each one write at a time, so a
   * domain is only ever written by one lane and never twice at once, and a single process stays
   * exact. MongoDB's `$inc` is atomic and needs none of this (0 lanes).
   */
  lanes: number;
  /** TTL indexes remove expired keys; without them (FerretDB 1.24) serve-http removes them itself. */
  ttl: boolean;
}
/** Domains per `$in` read. */
const IDS_PER_READ = 1_000;
const NAMESPACE_EXISTS = 48;
const DUPLICATE_KEY = 11000;
/** Rounds of retrying upserts that lost an insert race before the batch fails. */
const DUPLICATE_RETRIES = 5;

/** The production store: counters in MongoDB through the official driver. */
export class MongoStore implements CounterStore {
  readonly #client: MongoClient;
  readonly #domains: Collection<DomainDocument>;
  readonly #replays: Collection<CheckpointDocument>;
  readonly #keys: Collection<KeyDocument>;
  /** Who holds this process's claims of idempotency keys. */
  readonly #claimant = randomUUID();
  /** Longest a write command may take before its batch fails (see #answered). */
  readonly #deadlineMs: number;
  readonly #operationsPerWrite: number | undefined;
  readonly #idsPerRead: number;
  #profile: Promise<ServerProfile> | undefined;
  /** Per lane, its last write (see ServerProfile.lanes); the first one also orders replay chunks. */
  #lanes: Array<Promise<unknown>> = [];
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
  }

  /**
   * With transactions, the counts and the batch's keys are written in one. Without them
   * (FerretDB, standalone servers), the keys are written after the counts: a failure between the
   * two fails the batch (503) with its counts in, and a retry counts them again.
   */
  async applyBatch(deltas: Deltas, { checkpoint, keys = [] }: BatchExtras = {}): Promise<void> {
    this.#checkOpen();
    await this.#guard(async () => {
      const profile = await this.#serverProfile();
      if (checkpoint) {
        await this.#serialized(profile, () => this.#applyChunk(deltas, checkpoint, profile));
      } else if (profile.transactions) {
        // All or nothing: a failed batch is answered 503 and retried by its clients, so half of it
        // must not stay behind.
        const session = this.#client.startSession({ defaultTransactionOptions: { readPreference: 'primary' } });
        try {
          await session.withTransaction(async () => {
            checkClaims(keys);
            await this.#write(counterUpdates(deltas), profile, session);
            await this.#storeKeys(keys, session);
          });
        } finally {
          await session.endSession();
        }
      } else {
        checkClaims(keys);
        await this.#writeInLanes(deltas, profile);
        await this.#storeKeys(keys);
      }
    });
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
        if (found.claimedAt !== undefined && found.claimedAt.getTime() + CLAIM_LAPSE_MS > now) {
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

  /** Turns the batch's claims into done keys; a claim another process took over fails the batch. */
  async #storeKeys(keys: readonly ClaimedKey[], session?: ClientSession): Promise<void> {
    if (keys.length === 0) return;
    const result = await this.#answered(
      this.#keys.bulkWrite(
        keys.map(({ key, fingerprint, expiresAt, status, body }) => ({
          replaceOne: {
            filter: { _id: key, claimedBy: this.#claimant },
            replacement: { fingerprint, expiresAt: new Date(expiresAt), status, body },
          },
        })),
        { ordered: false, session },
      ),
    );
    if (result.matchedCount !== keys.length) throw new Error('an idempotency key of the batch was taken over by another process');
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
    await this.#write(operations, profile, undefined, async (failed) => {
      // A duplicate key means "already applied" unless an insert race with another writer caused it.
      const ids = failed.map((op) => (op as { updateOne: { filter: { _id: string } } }).updateOne.filter._id);
      const applied = new Set<string>();
      for await (const document of this.#domains.find({ _id: { $in: ids } }, { projection: { [marker]: 1 } })) {
        const chunk = (document as unknown as Record<string, unknown>)[marker];
        if (typeof chunk === 'number' && chunk >= checkpoint.chunk) applied.add(document._id);
      }
      return failed.filter((_, i) => !applied.has(ids[i]!));
    });
    const { source, ...progress } = checkpoint;
    await this.#replays.replaceOne({ _id: source }, progress, { upsert: true });
    if (checkpoint.done) {
      await this.#domains.updateMany({ [marker]: { $exists: true } }, { $unset: { [marker]: '' } });
    }
  }

  /** Writes the counts of a batch, in lanes where the server needs them (see ServerProfile.lanes). */
  async #writeInLanes(deltas: Deltas, profile: ServerProfile): Promise<void> {
    if (profile.lanes === 0) return this.#write(counterUpdates(deltas), profile);
    const parts = Array.from({ length: profile.lanes }, () => new Map<string, DomainCounts>());
    for (const [domain, delta] of deltas) parts[(fnv1a(domain) >>> 0) % profile.lanes]!.set(domain, delta);
    await Promise.all(parts.map((part, lane) => (part.size === 0 ? undefined : this.#inLane(lane, () => this.#write(counterUpdates(part), profile)))));
  }

  /** Runs `write` after the lane's previous write. */
  #inLane(lane: number, write: () => Promise<void>): Promise<void> {
    const next = (this.#lanes[lane] ?? Promise.resolve()).then(write);
    this.#lanes[lane] = next.catch(() => {});
    return next;
  }

  /** Replay chunks, one at a time where the server needs it: replay is the only writer of its process. */
  #serialized(profile: ServerProfile, write: () => Promise<void>): Promise<void> {
    return profile.lanes === 0 ? write() : this.#inLane(0, write);
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
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
   * Sends the operations in commands of the server's size. An upsert that loses an insert race
   * with another writer fails with a duplicate key without changing anything; `retryable` picks
   * which of those to send again (all of them, by default).
   */
  async #write(
    operations: Operation[],
    profile: ServerProfile,
    session?: ClientSession,
    retryable: (failed: Operation[]) => Promise<Operation[]> = async (failed) => failed,
  ): Promise<void> {
    for (let i = 0; i < operations.length; i += profile.operationsPerWrite) {
      let pending = operations.slice(i, i + profile.operationsPerWrite);
      for (let attempt = 0; pending.length > 0; attempt++) {
        const failed = await this.#bulkWrite(pending, session);
        if (failed.length === 0) break;
        if (attempt === DUPLICATE_RETRIES) throw new StoreUnavailableError('MongoDB: upserts kept colliding on duplicate keys');
        pending = await retryable(failed);
      }
    }
  }

  /** One unordered bulkWrite; returns the operations that failed on a duplicate key, throws on anything else. */
  async #bulkWrite(operations: Operation[], session?: ClientSession): Promise<Operation[]> {
    try {
      await this.#answered(this.#domains.bulkWrite(operations, { ordered: false, session }));
      return [];
    } catch (error) {
      if (!(error instanceof MongoBulkWriteError)) throw error;
      const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
      if (writeErrors.length === 0 || writeErrors.some((e) => e.code !== DUPLICATE_KEY)) throw error;
      return writeErrors.map((e) => operations[e.index]!);
    }
  }

  /**
   * Replica sets and sharded clusters have multi-document transactions; standalone servers and
   * FerretDB do not. Asked once, and again after a failure (the server may have been down).
   */
  #serverProfile(): Promise<ServerProfile> {
    this.#profile ??= (async () => {
      const admin = this.#domains.db.admin();
      const [hello, buildInfo] = await this.#answered(Promise.all([admin.command({ hello: 1 }), admin.command({ buildInfo: 1 })]));
      const ferretdb = buildInfo.ferretdbVersion !== undefined;
      return {
        transactions: !ferretdb && (Boolean(hello.setName) || hello.msg === 'isdbgrid'),
        operationsPerWrite: this.#operationsPerWrite ?? (ferretdb ? OPERATIONS_PER_WRITE_FERRETDB : OPERATIONS_PER_WRITE),
        lanes: ferretdb ? FERRETDB_LANES : 0,
        ttl: !ferretdb,
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

/** One `$inc` upsert per domain, with both fields every time so that every document has the same shape. */
function counterUpdates(deltas: Deltas): Operation[] {
  const operations: Operation[] = [];
  for (const [domain, delta] of deltas) {
    operations.push({
      updateOne: {
        filter: { _id: domain },
        update: { $inc: { delivered: Long.fromNumber(delta.delivered), bounced: Long.fromNumber(delta.bounced) } },
        upsert: true,
      },
    });
  }
  return operations;
}

function countsOf(document: DomainDocument): DomainCounts {
  return { delivered: Number(document.delivered), bounced: Number(document.bounced) };
}

/** The database named by the connection string's path, `svc` when it names none. */
export function databaseOf(uri: string): string {
  const name = decodeURIComponent(new ConnectionString(uri).pathname.replace(/^\//, ''));
  return name === '' ? 'svc' : name;
}
