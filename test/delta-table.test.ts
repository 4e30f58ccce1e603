import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeltaTable } from '../src/store/journal/delta-table.js';

const domain = fc.stringMatching(/^[a-z0-9.-]{1,40}$/);

describe('DeltaTable', () => {
  it('counts like a Map, whether a domain comes as a string or as bytes, across growth', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(domain, fc.nat(5), fc.nat(2), fc.boolean()), { maxLength: 3000 }), (adds) => {
        const table = new DeltaTable();
        const model = new Map<string, [number, number]>();
        for (const [name, delivered, bounced, asBytes] of adds) {
          if (asBytes) {
            const bytes = Buffer.from(`xx${name}yy`, 'latin1');
            table.addBytes(bytes, 2, name.length, delivered, bounced);
          } else {
            table.add(name, delivered, bounced);
          }
          const [d, b] = model.get(name) ?? [0, 0];
          model.set(name, [d + delivered, b + bounced]);
        }
        expect(table.size).toBe(model.size);
        for (const [name, [d, b]] of model) {
          const entry = table.find(name);
          expect(entry).toBeGreaterThanOrEqual(0);
          expect([table.domain(entry), table.delivered(entry), table.bounced(entry)]).toEqual([name, d, b]);
        }
        expect(table.find('never.example')).toBe(-1);
      }),
      { numRuns: 40 },
    );
  });

  it('holds a million domains in well under 100 bytes each', () => {
    const table = new DeltaTable();
    for (let i = 0; i < 1_000_000; i++) table.add(`domain-${i}.example.com`, 1, 0);
    expect(table.size).toBe(1_000_000);
    expect(table.delivered(table.find('domain-999999.example.com'))).toBe(1);
    expect(table.bytes / table.size).toBeLessThan(100);
  });
});
