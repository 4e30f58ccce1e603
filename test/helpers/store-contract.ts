import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/core/errors.js';
import type { DomainCounts } from '../../src/core/status.js';
import type { CounterStore } from '../../src/store/counter-store.js';

export interface StoreFixture {
  /** Opens a store on the fixture's data; may be called more than once (another "process"). */
  open(): Promise<CounterStore>;
  /** Removes the data. */
  destroy(): Promise<void>;
}

const deltas = (entries: Record<string, Partial<DomainCounts>>) =>
  new Map(Object.entries(entries).map(([d, c]) => [d, { delivered: c.delivered ?? 0, bounced: c.bounced ?? 0 }]));

/** The assertions every CounterStore must pass, whatever it is built on. */
export function counterStoreContract(
  name: string,
  createFixture: () => Promise<StoreFixture>,
  sizes: { largeBatch: number } = { largeBatch: 20_000 },
): void {
  describe(`${name}: CounterStore contract`, () => {
    let fixture: StoreFixture;
    let store: CounterStore;

    beforeEach(async () => {
      fixture = await createFixture();
      store = await fixture.open();
    });
    afterEach(async () => {
      await store.close();
      await fixture.destroy();
    });

    it('knows nothing of a domain never written', async () => {
      expect(await store.get('never.example')).toBeUndefined();
      expect((await store.getMany(['never.example'])).size).toBe(0);
    });

    it('adds batches of deltas', async () => {
      await store.applyBatch(deltas({ 'a.com': { delivered: 2 }, 'b.com': { bounced: 1 } }));
      await store.applyBatch(deltas({ 'a.com': { delivered: 3, bounced: 1 } }));
      expect(await store.get('a.com')).toEqual({ delivered: 5, bounced: 1 });
      expect(await store.get('b.com')).toEqual({ delivered: 0, bounced: 1 });
    });

    it('reads many domains at once, leaving out those never seen', async () => {
      const batch = deltas(Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`d${i}.com`, { delivered: i }])));
      await store.applyBatch(batch);
      const wanted = [...batch.keys(), 'missing.com'];
      const found = await store.getMany(wanted);
      expect(found.size).toBe(500);
      expect(found.get('d499.com')).toEqual({ delivered: 499, bounced: 0 });
      expect(found.has('missing.com')).toBe(false);
    });

    it('sums concurrent batches exactly', async () => {
      await Promise.all(Array.from({ length: 20 }, () => store.applyBatch(deltas({ 'hot.com': { delivered: 1 }, 'cold.com': { bounced: 2 } }))));
      expect(await store.get('hot.com')).toEqual({ delivered: 20, bounced: 0 });
      expect(await store.get('cold.com')).toEqual({ delivered: 0, bounced: 40 });
    });

    it(`takes a batch of ${sizes.largeBatch} domains`, async () => {
      const batch = deltas(Object.fromEntries(Array.from({ length: sizes.largeBatch }, (_, i) => [`big${i}.example.org`, { delivered: 1 }])));
      await store.applyBatch(batch);
      await store.applyBatch(batch);
      const found = await store.getMany([...batch.keys()]);
      expect(found.size).toBe(sizes.largeBatch);
      expect([...found.values()].every((c) => c.delivered === 2)).toBe(true);
    });

    it('shares its data with another open store on the same data, within its read lag', async () => {
      await store.applyBatch(deltas({ 'shared.com': { delivered: 7 } }));
      const other = await fixture.open();
      try {
        expect(await other.get('shared.com')).toEqual({ delivered: 7, bounced: 0 });
        await other.applyBatch(deltas({ 'shared.com': { bounced: 1 } }));
        // The embedded store sees another writer's journal within its read lag; MongoDB at once.
        await expect.poll(() => store.get('shared.com'), { timeout: 2000, interval: 20 }).toEqual({ delivered: 7, bounced: 1 });
      } finally {
        await other.close();
      }
    });

    it('answers ping while open and StoreUnavailableError once closed', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
      const other = await fixture.open();
      await other.close();
      await expect(other.get('a.com')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(other.applyBatch(deltas({ 'a.com': { delivered: 1 } }))).rejects.toBeInstanceOf(StoreUnavailableError);
    });
  });
}
