import { describe, expect, it } from 'vitest';
import { LmdbStore } from '../src/store/lmdb/lmdb-store.js';
import { counterStoreContract } from './helpers/store-contract.js';
import { tempDir } from './helpers/svc.js';

counterStoreContract('LmdbStore', async () => {
  const dir = tempDir();
  return {
    open: () => LmdbStore.open(dir.path, { use: 'ingest' }),
    destroy: async () => dir.remove(),
  };
});

describe('LmdbStore.putTotals (a copy of a log of totals)', () => {
  it('sets each count to the last total given, and has written everything once it resolves', async () => {
    const dir = tempDir();
    const store = await LmdbStore.open(dir.path, { use: 'bulk' });
    try {
      const many = Array.from({ length: 20_000 }, (_, i) => [`d${i}.example`, { delivered: i, bounced: i % 2 }] as const);
      await store.putTotals([...many, ['a.example', { delivered: 5, bounced: 0 }], ['a.example', { delivered: 7, bounced: 1 }]]);
      expect(await store.get('a.example')).toEqual({ delivered: 7, bounced: 1 });
      const stored = await store.getMany(many.map(([domain]) => domain));
      expect(many.filter(([domain, counts]) => stored.get(domain)?.delivered !== counts.delivered || stored.get(domain)?.bounced !== counts.bounced)).toEqual([]);
      await store.putTotals([['a.example', { delivered: 9, bounced: 1 }]]);
      expect(await store.get('a.example')).toEqual({ delivered: 9, bounced: 1 });
    } finally {
      await store.close();
      dir.remove();
    }
  });

  it('is refused by a store that ingests: its counts are sums, not a copy', async () => {
    const dir = tempDir();
    const store = await LmdbStore.open(dir.path, { use: 'ingest' });
    try {
      await expect(store.putTotals([['a.example', { delivered: 1, bounced: 0 }]])).rejects.toThrow(/bulk use/);
    } finally {
      await store.close();
      dir.remove();
    }
  });
});
