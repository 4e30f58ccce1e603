import { MongoClient, MongoServerError, type Collection, type ReadPreferenceMode, type W } from 'mongodb';
import { ConnectionString } from 'mongodb-connection-string-url';
import { randomUUID } from 'node:crypto';
import { StoreUnavailableError } from '../../core/errors.js';
import type { KeyClaim } from '../../core/idempotency.js';
import type { DomainCounts } from '../../core/status.js';
import type { BatchExtras, CounterStore, Deltas, ReplayCheckpoint } from '../counter-store.js';
import { BatchLog, SLOT_LEASE_MS } from './batch-log.js';
import { answeredWithin } from './deadline.js';
import { countsOf, type BatchDocument, type CheckpointDocument, type DomainDocument, type KeyDocument } from './documents.js';
import { GuardedWrites } from './guarded-writes.js';
import { MongoKeys } from './idempotency-keys.js';
import { Lanes } from './lanes.js';
import { applyChunk } from './replay-chunks.js';
import { detectProfile, type ServerProfile } from './server-profile.js';
import { WriterSlots, type SlotDocument } from './writer-slots.js';

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

/** Domains per `$in` read. */
const IDS_PER_READ = 1_000;
const NAMESPACE_EXISTS = 48;

/**
 * The production store: counters in MongoDB through the official driver. Live batches go through
 * the batch log (batch-log.ts), replay chunks through their own guards (replay-chunks.ts), keys
 * through idempotency-keys.ts; this class connects them and maps failures to StoreUnavailableError.
 */
export class MongoStore implements CounterStore {
  readonly #client: MongoClient;
  readonly #domains: Collection<DomainDocument>;
  readonly #replays: Collection<CheckpointDocument>;
  readonly #keys: MongoKeys;
  readonly #lanes = new Lanes();
  readonly #writes: GuardedWrites;
  readonly #batchLog: BatchLog;
  /** Longest a write command may take before its batch fails (see deadline.ts). */
  readonly #deadlineMs: number;
  readonly #operationsPerWrite: number | undefined;
  readonly #idsPerRead: number;
  #profile: Promise<ServerProfile> | undefined;
  #connected = false;
  #closed = false;

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
    const answered = <T>(command: Promise<T>) => answeredWithin(command, this.#deadlineMs);
    const db = this.#client.db(databaseOf(uri));
    this.#domains = db.collection<DomainDocument>(options.collection);
    this.#replays = db.collection<CheckpointDocument>(`${options.collection}_replays`);
    this.#keys = new MongoKeys(db.collection<KeyDocument>(`${options.collection}_keys`), randomUUID(), answered);
    this.#writes = new GuardedWrites(this.#domains, this.#lanes, answered);
    this.#batchLog = new BatchLog({
      batches: db.collection<BatchDocument>(`${options.collection}_batches`),
      slots: new WriterSlots(db.collection<SlotDocument>(`${options.collection}_writers`), SLOT_LEASE_MS),
      keys: this.#keys,
      lanes: this.#lanes,
      writes: this.#writes,
      answered,
      deadlineMs: this.#deadlineMs,
      profile: () => this.#serverProfile(),
      closed: () => this.#closed,
    });
  }

  async applyBatch(deltas: Deltas, { checkpoint, keys = [] }: BatchExtras = {}): Promise<void> {
    this.#checkOpen();
    await this.#guard(async () => {
      const profile = await this.#serverProfile();
      if (checkpoint) {
        const parts = { domains: this.#domains, replays: this.#replays, writes: this.#writes };
        await this.#lanes.run(0, () => applyChunk(deltas, checkpoint, profile, parts));
      } else await this.#batchLog.apply(deltas, keys, profile);
    });
  }

  async claimKey(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    this.#checkOpen();
    return this.#guard(async () => {
      this.#keys.sweep(now, await this.#serverProfile());
      return this.#keys.claim(key, fingerprint, now);
    });
  }

  async releaseKey(key: string): Promise<void> {
    this.#checkOpen();
    await this.#guard(() => this.#keys.release(key));
  }

  async getCheckpoint(source: string): Promise<ReplayCheckpoint | undefined> {
    this.#checkOpen();
    const document = await this.#guard(() => this.#replays.findOne({ _id: source }));
    if (!document) return undefined;
    const { _id, ...rest } = document;
    return { source: _id, ...rest };
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
    await this.#batchLog.drain(this.#deadlineMs);
    this.#closed = true;
    await this.#batchLog.releaseSlot();
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
      const keysCollection = this.#keys.collection;
      const keys = `${db.databaseName}.${keysCollection.collectionName}`;
      try {
        await keysCollection.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'expiresAt_ttl' });
        notes.push(`idempotency keys in ${keys}, removed by a TTL index when they expire`);
      } catch (error) {
        if (!(error instanceof MongoServerError && /expireAfterSeconds/.test(error.message))) throw error;
        await keysCollection.createIndex({ expiresAt: 1 }, { name: 'expiresAt' });
        notes.push(`idempotency keys in ${keys}; this server has no TTL indexes, so serve-http removes expired keys itself every 10 minutes`);
      }
      return notes;
    });
  }

  /** What the server is. Asked once, and again after a failure (the server may have been down). */
  #serverProfile(): Promise<ServerProfile> {
    this.#profile ??= detectProfile(this.#domains.db, (command) => answeredWithin(command, this.#deadlineMs), this.#operationsPerWrite).catch((error: unknown) => {
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

  #checkOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('MongoDB store is closed');
  }
}

/** The database named by the connection string's path, `svc` when it names none. */
export function databaseOf(uri: string): string {
  const name = decodeURIComponent(new ConnectionString(uri).pathname.replace(/^\//, ''));
  return name === '' ? 'svc' : name;
}
