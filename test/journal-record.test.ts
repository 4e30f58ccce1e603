import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { KeyRecord } from '../src/core/idempotency.js';
import { HEADER_BYTES, MAGIC, encodeRecord, forEachEntry, forEachKey, recordTime, scanRecords } from '../src/store/journal/record.js';

const batch = (entries: Record<string, [number, number]>) =>
  new Map(Object.entries(entries).map(([domain, [delivered, bounced]]) => [domain, { delivered, bounced }]));

/** A segment's bytes after the magic: the given records back to back. */
const records = (...batches: ReturnType<typeof batch>[]) => Buffer.concat(batches.map((b, i) => encodeRecord(b, 1_700_000_000_000 + i)));

function entriesOf(buffer: Buffer, starts: number[]): Array<[string, number, number]> {
  const seen: Array<[string, number, number]> = [];
  for (const start of starts) forEachEntry(buffer, start, (domain, delivered, bounced) => seen.push([domain, delivered, bounced]));
  return seen;
}

const A = batch({ 'a.example': [3, 0], 'b.example': [0, 1] });
const B = batch({ 'c.example': [1, 0] });
const C = batch({ [`${'x'.repeat(63)}.${'y'.repeat(63)}.${'z'.repeat(63)}.${'w'.repeat(61)}`]: [4_000_000_000, 7] });

describe('journal records', () => {
  it('round-trip: every entry, its counts and the time appended', () => {
    const bytes = records(A, B, C);
    const scan = scanRecords(bytes, 0);
    expect(scan).toMatchObject({ end: bytes.length, rest: 'none' });
    expect(scan.records).toHaveLength(3);
    expect(entriesOf(bytes, scan.records)).toEqual([
      ['a.example', 3, 0],
      ['b.example', 0, 1],
      ['c.example', 1, 0],
      [[...C.keys()][0], 4_000_000_000, 7],
    ]);
    expect(recordTime(bytes, scan.records[1]!)).toBe(1_700_000_000_001);
  });

  it('round-trip: the idempotency keys of a record, with their answers; a record without keys is as before keys existed', () => {
    const keys: KeyRecord[] = [
      { key: 'k'.repeat(255), fingerprint: '0123456789abcdef0123456789abcdef', expiresAt: 1_800_000_000_000, status: 204, body: '' },
      { key: 'order 42 ~!', fingerprint: 'ffffffffffffffff0000000000000000', expiresAt: 1_800_000_000_001, status: 200, body: '{"accepted":2,"note":"é"}' },
    ];
    const bytes = Buffer.concat([encodeRecord(A, 1, keys), encodeRecord(B, 2)]);
    const scan = scanRecords(bytes, 0);
    expect(scan).toMatchObject({ end: bytes.length, rest: 'none' });
    expect(entriesOf(bytes, scan.records)).toEqual([
      ['a.example', 3, 0],
      ['b.example', 0, 1],
      ['c.example', 1, 0],
    ]);
    const seen: KeyRecord[] = [];
    for (const start of scan.records) forEachKey(bytes, start, (key) => seen.push(key));
    expect(seen).toEqual(keys);
    expect(encodeRecord(B, 2, [])).toEqual(encodeRecord(B, 2));
  });

  it('calls a record whose key section does not fill it exactly bad, even with a matching checksum', () => {
    const good = encodeRecord(B, 1, [{ key: 'k', fingerprint: '00'.repeat(16), expiresAt: 1, status: 204, body: 'xy' }]);
    // The body length claims one byte more than the record holds; the checksum is made to match.
    const bad = Buffer.from(good);
    const bodyLength = bad.length - 2 - 4;
    bad.writeUInt32LE(3, bodyLength);
    bad.writeUInt32LE(crc32(bad.subarray(HEADER_BYTES), crc32(bad.subarray(0, 4))), 4);
    expect(scanRecords(good, 0).rest).toBe('none');
    expect(scanRecords(bad, 0)).toMatchObject({ records: [], rest: 'torn' });
  });

  it('refuses a count that does not fit, rather than writing a wrong one', () => {
    expect(() => encodeRecord(batch({ 'a.example': [2 ** 32, 0] }), 0)).toThrow(RangeError);
  });

  it('reads a record cut anywhere as incomplete: never counted, read again once complete', () => {
    const bytes = records(A, B);
    const second = encodeRecord(A, 0).length;
    for (let cut = second; cut < bytes.length; cut++) {
      const scan = scanRecords(bytes.subarray(0, cut), 0);
      expect(scan.records, `cut at ${cut}`).toHaveLength(1);
      expect(scan.end).toBe(second);
      expect(scan.rest).toBe(cut === second ? 'none' : 'incomplete');
    }
  });

  it('calls a bad last record torn: a write cut by a crash, ignored', () => {
    const bytes = records(A, B);
    bytes[bytes.length - 2]! ^= 0xff;
    expect(scanRecords(bytes, 0)).toMatchObject({ records: [0], rest: 'torn' });
  });

  it('takes zeros after the last record for space never written (a power loss), not damage', () => {
    const bytes = Buffer.concat([records(A), Buffer.alloc(4096)]);
    expect(scanRecords(bytes, 0)).toMatchObject({ records: [0], rest: 'incomplete' });
  });

  it('calls a bad record followed by a valid one corrupt, whichever byte is damaged', () => {
    const clean = records(A, B, C);
    const firstEnd = encodeRecord(A, 0).length;
    // Every byte of the first record: its length, its checksum, its time, its entries.
    for (let at = 0; at < firstEnd; at++) {
      const bytes = Buffer.from(clean);
      bytes[at]! ^= 0x5a;
      expect(scanRecords(bytes, 0).rest, `byte ${at}`).toBe('corrupt');
    }
  });

  it('finds a valid record after a damaged length field too', () => {
    const bytes = records(A, B, C);
    bytes.writeUInt32LE(0xfffffff0, 0);
    expect(scanRecords(bytes, 0)).toMatchObject({ records: [], end: 0, rest: 'corrupt' });
  });

  it('starts after an 8-byte header of length and checksum', () => {
    expect(MAGIC.toString('latin1')).toBe('SVCJRNL1');
    const record = encodeRecord(B, 0);
    expect(record.readUInt32LE(0)).toBe(record.length - HEADER_BYTES);
  });
});
