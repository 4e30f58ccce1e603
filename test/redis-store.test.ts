import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../src/store/open-store.js';
import { hasRedis, startRedis, type RedisServer } from './helpers/redis.js';
import { counterStoreContract } from './helpers/store-contract.js';

describe.skipIf(!hasRedis() && !process.env.CI)('RedisStore', () => {
  let server: RedisServer;
  let db = 0;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  counterStoreContract('RedisStore', async () => {
    // A database of its own per test (Redis has 16).
    const url = `${server.url}/${db++ % 16}`;
    server.cli('-n', String((db - 1) % 16), 'FLUSHDB');
    return { open: () => openStore({ store: url, storeTimeoutMs: 5000 }), destroy: async () => {} };
  });

  it('refuses a malformed URL before opening anything', async () => {
    await expect(openStore({ store: 'redis://127.0.0.1:6379/x' })).rejects.toThrow(/expected redis:\/\/HOST:PORT\[\/DB\]/);
    await expect(openStore({ store: 'redis://:6379' })).rejects.toThrow(/redis:\/\//);
  });
});
