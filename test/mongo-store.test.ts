import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DEFAULTS } from '../src/defaults.js';
import { databaseOf, MongoStore } from '../src/store/mongo/mongo-store.js';
import { dropDatabase, isFerretDb, uniqueDatabaseUri } from './helpers/mongodb.js';
import { counterStoreContract } from './helpers/store-contract.js';

const serverUri = inject('mongodbUri');

const openMongoStore = (uri: string) =>
  new MongoStore(uri, { collection: 'domains', writeConcern: 'majority', readPreference: 'primary', timeoutMs: 5000 });

describe.skipIf(!serverUri)('MongoStore', () => {
  counterStoreContract(
    'MongoStore',
    async () => {
      const uri = uniqueDatabaseUri(serverUri);
      return { open: async () => openMongoStore(uri), destroy: () => dropDatabase(uri) };
    },
    // FerretDB on SQLite upserts a few hundred documents a second: enough to span many commands.
    { largeBatch: 300 },
  );

  describe('documents and limits', () => {
    const uri = uniqueDatabaseUri(serverUri);
    let store: MongoStore;
    beforeAll(() => {
      store = openMongoStore(uri);
    });
    afterAll(async () => {
      await store.close();
      await dropDatabase(uri);
    });

    it('keeps one document per domain: { _id: domain, delivered: int64, bounced: int64, w: { <writer slot>: <batch> } }', async () => {
      await store.applyBatch(new Map([['shape.example', { delivered: 3, bounced: 0 }]]));
      const client = new MongoClient(uri);
      try {
        const document = await client.db().collection('domains').findOne({ _id: 'shape.example' as never }, { promoteLongs: false });
        expect(Object.keys(document!).sort()).toEqual(['_id', 'bounced', 'delivered', 'w']);
        // The guard of the batch that wrote it last: this store's writer slot and batch number.
        expect(Object.values(document!.w)).toEqual([expect.any(Number)]);
        expect(document!.delivered._bsontype).toBe('Long');
        expect(document!.bounced._bsontype).toBe('Long');
        expect(Number(document!.delivered)).toBe(3);
        expect(await client.db().collection('domains').listIndexes().toArray()).toHaveLength(1);
      } finally {
        await client.close();
      }
    });

    it('splits writes and reads at their limits: every part of a batch lands and is read back', async () => {
      // Limits that do not divide the batch, so that a last, shorter part is left: 300 = 42 × 7 + 6
      // upserts per write and 4 × 70 + 20 ids per read.
      const small = new MongoStore(uri, {
        collection: 'domains',
        writeConcern: 'majority',
        readPreference: 'primary',
        timeoutMs: 5000,
        operationsPerWrite: 7,
        idsPerRead: 70,
      });
      try {
        const batch = new Map(Array.from({ length: 300 }, (_, i) => [`split${i}.example`, { delivered: i + 1, bounced: i % 2 }]));
        await small.applyBatch(batch);
        await small.applyBatch(batch);
        const read = await small.getMany([...batch.keys(), 'missing.example']);
        expect(read.size).toBe(300);
        for (const [domain, { delivered, bounced }] of batch) expect(read.get(domain), domain).toEqual({ delivered: 2 * delivered, bounced: 2 * bounced });
      } finally {
        await small.close();
      }
    });

    it('splits a batch over the driver limits (100,000 operations) into several writes', async (context) => {
      if (await isFerretDb(serverUri)) context.skip('FerretDB upserts too slowly for 120,000 documents in a unit test; see docs/performance.md');
      const batch = new Map(Array.from({ length: 120_000 }, (_, i) => [`limit${i}.example`, { delivered: 1, bounced: 0 }]));
      await store.applyBatch(batch);
      expect((await store.getMany([...batch.keys()])).size).toBe(120_000);
    }, 300_000);
  });

  it('takes its database from the connection string, svc by default', () => {
    expect(databaseOf('mongodb://h1:27017,h2:27017/counters?replicaSet=rs0')).toBe('counters');
    expect(databaseOf('mongodb://localhost:27017')).toBe('svc');
    expect(databaseOf('mongodb://localhost:27017/?w=1')).toBe('svc');
    expect(databaseOf('mongodb+srv://cluster.example.net/prod')).toBe('prod');
    expect(DEFAULTS.collection).toBe('domains');
  });
});
