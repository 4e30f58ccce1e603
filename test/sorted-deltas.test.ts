import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { byCodeUnit, SortedDeltas } from '../src/store/sorted-deltas.js';

const run = fc
  .uniqueArray(fc.tuple(fc.stringMatching(/^[a-z0-9.-]{1,12}$/), fc.nat(9), fc.nat(3)), { selector: ([domain]) => domain, maxLength: 60 })
  .map((entries) => {
    const sorted = entries.sort(([a], [b]) => byCodeUnit(a, b));
    return { domains: sorted.map(([d]) => d), delivered: sorted.map(([, d]) => d), bounced: sorted.map(([, , b]) => b) };
  });

describe('SortedDeltas', () => {
  it('merges sorted runs into one sorted run, summing each domain across runs', () => {
    fc.assert(
      fc.property(fc.array(run, { maxLength: 40 }), (runs) => {
        const model = new Map<string, { delivered: number; bounced: number }>();
        for (const r of runs) {
          r.domains.forEach((domain, i) => {
            const counts = model.get(domain) ?? { delivered: 0, bounced: 0 };
            model.set(domain, { delivered: counts.delivered + r.delivered[i]!, bounced: counts.bounced + r.bounced[i]! });
          });
        }
        const merged = SortedDeltas.merge(runs);
        expect([...merged.domains]).toEqual([...model.keys()].sort(byCodeUnit));
        expect(new Map(merged)).toEqual(model);
        for (const [domain, counts] of model) expect(merged.get(domain)).toEqual(counts);
        expect(merged.get('~absent')).toBeUndefined();
      }),
    );
  });

  it('sorts a map, and leaves sorted deltas as they are', () => {
    const map = new Map([['b.example', { delivered: 1, bounced: 0 }], ['a.example', { delivered: 2, bounced: 1 }]]);
    const sorted = SortedDeltas.of(map);
    expect([...sorted.domains]).toEqual(['a.example', 'b.example']);
    expect(SortedDeltas.of(sorted)).toBe(sorted);
    expect(new Map(sorted)).toEqual(map);
  });
});
