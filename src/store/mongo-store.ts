import {
  Long,
  MongoClient,
  MongoServerError,
  type AnyBulkWriteOperation,
  type ClientSession,
  type Collection,
  type ReadPreferenceMode,
  type W,
} from 'mongodb';
import { ConnectionString } from 'mongodb-connection-string-url';
import { StoreUnavailableError } from '../core/errors.js';
import type { DomainCounts } from '../core/status.js';
import type { CounterStore, Deltas } from './counter-store.js';

export interface MongoStoreOptions {
  collection: string;
  /** `majority`, or a number of members. */
  writeConcern: W;
  readPreference: ReadPreferenceMode;
  /** How long an operation may wait for a reachable server before it fails. */
  timeoutMs: number;
}

/** One counter document per domain; the domain is the `_id`, so a hashed shard key on `_id` spreads them. */
interface DomainDocument {
  _id: string;
  delivered: Long | number;
  bounced: Long | number;
}

/**
 * Operations per bulkWrite: well under the driver's own split at 100,000 operations and 16 MiB
 * (an upsert of a 253-character domain is under 400 bytes, so a chunk stays under 4 MiB).
 */
const OPERATIONS_PER_WRITE = 10_000;
/**
 * FerretDB 1.24 keeps a backend connection checked out for every update statement that matched a
 * document until the whole command ends (handler/msg_update.go defers each iterator's Close inside
 * its loop); with its pool of 100 connections, one `update` command of 100 such statements never
 * finishes. Small commands stay far from that limit even with several writers.
 */
const OPERATIONS_PER_WRITE_FERRETDB = 16;

/** What the connected server can do, learned once per store. */
interface ServerProfile {
  transactions: boolean;
  operationsPerWrite: number;
  /**
   * FerretDB 1.24 applies `$inc` as read, modify, write without isolation, so two concurrent
   * updates of one document can lose one increment. Writing one batch at a time keeps a single
   * process exact there; MongoDB's `$inc` is atomic and needs none of this.
   */
  serializeWrites: boolean;
}
/** Domains per `$in` read. */
const IDS_PER_READ = 1_000;
const NAMESPACE_EXISTS = 48;

/** The production store: counters in MongoDB through the official driver. */
export class MongoStore implements CounterStore {
  readonly #client: MongoClient;
  readonly #domains: Collection<DomainDocument>;
  #profile: Promise<ServerProfile> | undefined;
  /** The write in progress, when writes must not overlap. */
  #lastWrite: Promise<unknown> = Promise.resolve();
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
      appName: 'svc',
    });
    this.#domains = this.#client.db(databaseOf(uri)).collection<DomainDocument>(options.collection);
  }

  async applyBatch(deltas: Deltas): Promise<void> {
    this.#checkOpen();
    const operations: AnyBulkWriteOperation<DomainDocument>[] = [];
    for (const [domain, delta] of deltas) {
      operations.push({
        updateOne: {
          filter: { _id: domain },
          // Both fields on every upsert, so that every document has the same shape.
          update: { $inc: { delivered: Long.fromNumber(delta.delivered), bounced: Long.fromNumber(delta.bounced) } },
          upsert: true,
        },
      });
    }
    await this.#guard(async () => {
      const profile = await this.#serverProfile();
      if (profile.serializeWrites) {
        const write = this.#lastWrite.then(() => this.#write(operations, profile.operationsPerWrite));
        this.#lastWrite = write.catch(() => {});
        await write;
      } else if (profile.transactions) {
        // All or nothing: a failed batch is answered 503 and retried by its clients, so half of it
        // must not stay behind.
        const session = this.#client.startSession({ defaultTransactionOptions: { readPreference: 'primary' } });
        try {
          await session.withTransaction(() => this.#write(operations, profile.operationsPerWrite, session));
        } finally {
          await session.endSession();
        }
      } else {
        await this.#write(operations, profile.operationsPerWrite);
      }
    });
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
      for (let i = 0; i < domains.length; i += IDS_PER_READ) {
        const ids = domains.slice(i, i + IDS_PER_READ);
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
      return notes;
    });
  }

  async #write(operations: AnyBulkWriteOperation<DomainDocument>[], perWrite: number, session?: ClientSession): Promise<void> {
    for (let i = 0; i < operations.length; i += perWrite) {
      await this.#domains.bulkWrite(operations.slice(i, i + perWrite), { ordered: false, session });
    }
  }

  /**
   * Replica sets and sharded clusters have multi-document transactions; standalone servers and
   * FerretDB do not. Asked once, and again after a failure (the server may have been down).
   */
  #serverProfile(): Promise<ServerProfile> {
    this.#profile ??= (async () => {
      const admin = this.#domains.db.admin();
      const [hello, buildInfo] = await Promise.all([admin.command({ hello: 1 }), admin.command({ buildInfo: 1 })]);
      const ferretdb = buildInfo.ferretdbVersion !== undefined;
      return {
        transactions: !ferretdb && (Boolean(hello.setName) || hello.msg === 'isdbgrid'),
        operationsPerWrite: ferretdb ? OPERATIONS_PER_WRITE_FERRETDB : OPERATIONS_PER_WRITE,
        serializeWrites: ferretdb,
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

  #checkOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('MongoDB store is closed');
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
