import { crc32 } from 'node:zlib';
import type { KeyRecord } from '../../core/idempotency.js';
import type { Deltas } from '../counter-store.js';

/**
 * The journal's on-disk format. A segment file starts with MAGIC, then holds records back to back:
 *
 *   u32 payload length | u32 CRC-32 of the length and the payload | payload
 *   payload: f64 time appended (ms since the epoch) | u32 entries | entries ×
 *            (u8 domain length | domain, ASCII | u32 delivered | u32 bounced)
 *            [ | u32 keys | keys × (u8 key length | key, ASCII | 16 bytes fingerprint |
 *              f64 expires at | u16 status | u32 body length | body, UTF-8) ]
 *
 * Little-endian throughout. Domains are normalised before they get here, so they are ASCII and
 * at most 253 characters. The idempotency keys of the record's requests, with their answers,
 * follow the entries only when there are any, so a record without keys is the same as before
 * keys existed. A record is one group commit: all of it counts or none of it does.
 */
export const MAGIC = Buffer.from('SVCJRNL1', 'latin1');
export const HEADER_BYTES = 8;
const PAYLOAD_PREFIX = 12;
const ENTRY_FIXED = 9;
const KEY_FIXED = 1 + 16 + 8 + 2 + 4;
/** Far above any record svc writes (10,000 domains is about 3 MB): a larger length is garbage. */
export const MAX_PAYLOAD = 64 * 1024 * 1024;
const MAX_COUNT = 0xffff_ffff;

/** Encodes one batch of deltas, and the keys of its requests, as a complete record, header included. */
export function encodeRecord(deltas: Deltas, time: number, keys: readonly KeyRecord[] = []): Buffer {
  let size = PAYLOAD_PREFIX;
  for (const domain of deltas.keys()) size += ENTRY_FIXED + domain.length;
  const bodies = keys.map((key) => Buffer.from(key.body, 'utf8'));
  if (keys.length > 0) size += 4;
  for (let i = 0; i < keys.length; i++) size += KEY_FIXED + keys[i]!.key.length + bodies[i]!.length;
  const record = Buffer.allocUnsafe(HEADER_BYTES + size);
  record.writeUInt32LE(size, 0);
  let at = HEADER_BYTES;
  record.writeDoubleLE(time, at);
  record.writeUInt32LE(deltas.size, at + 8);
  at += PAYLOAD_PREFIX;
  for (const [domain, counts] of deltas) {
    if (counts.delivered > MAX_COUNT || counts.bounced > MAX_COUNT) throw new RangeError(`a count of ${domain} does not fit a journal record`);
    record[at] = domain.length;
    record.write(domain, at + 1, 'latin1');
    at += 1 + domain.length;
    record.writeUInt32LE(counts.delivered, at);
    record.writeUInt32LE(counts.bounced, at + 4);
    at += 8;
  }
  if (keys.length > 0) {
    record.writeUInt32LE(keys.length, at);
    at += 4;
    for (let i = 0; i < keys.length; i++) at = writeKey(record, at, keys[i]!, bodies[i]!);
  }
  record.writeUInt32LE(checksum(record, 0, record.length), 4);
  return record;
}

function writeKey(record: Buffer, at: number, key: KeyRecord, body: Buffer): number {
  record[at] = key.key.length;
  record.write(key.key, at + 1, 'latin1');
  at += 1 + key.key.length;
  record.write(key.fingerprint, at, 16, 'hex');
  record.writeDoubleLE(key.expiresAt, at + 16);
  record.writeUInt16LE(key.status, at + 24);
  record.writeUInt32LE(body.length, at + 26);
  body.copy(record, at + 30);
  return at + 30 + body.length;
}

/** CRC-32 of the length field and the payload: a torn length cannot pass for a good one. */
function checksum(buffer: Buffer, start: number, end: number): number {
  return crc32(buffer.subarray(start + HEADER_BYTES, end), crc32(buffer.subarray(start, start + 4)));
}

export type EntryVisitor = (domain: string, delivered: number, bounced: number) => void;

/** Calls `visit` for every entry of the record at `start` (already validated by scanRecords). */
export function forEachEntry(buffer: Buffer, start: number, visit: EntryVisitor): void {
  let at = start + HEADER_BYTES + 8;
  const entries = buffer.readUInt32LE(at);
  at += 4;
  for (let i = 0; i < entries; i++) {
    const length = buffer[at]!;
    const domain = buffer.toString('latin1', at + 1, at + 1 + length);
    at += 1 + length;
    visit(domain, buffer.readUInt32LE(at), buffer.readUInt32LE(at + 4));
    at += 8;
  }
}

/** The same, with each domain as bytes of `buffer` rather than as a string: nothing allocated. */
export function forEachEntryBytes(
  buffer: Buffer,
  start: number,
  visit: (bytes: Buffer, domainStart: number, domainLength: number, delivered: number, bounced: number) => void,
): void {
  let at = start + HEADER_BYTES + 8;
  const entries = buffer.readUInt32LE(at);
  at += 4;
  for (let i = 0; i < entries; i++) {
    const length = buffer[at]!;
    visit(buffer, at + 1, length, buffer.readUInt32LE(at + 1 + length), buffer.readUInt32LE(at + 5 + length));
    at += 9 + length;
  }
}

/** Calls `visit` for every idempotency key of the record at `start` (already validated by scanRecords). */
export function forEachKey(buffer: Buffer, start: number, visit: (key: KeyRecord) => void): void {
  const end = start + HEADER_BYTES + buffer.readUInt32LE(start);
  let at = afterEntries(buffer, start, end);
  if (at === end) return;
  const keys = buffer.readUInt32LE(at);
  at += 4;
  for (let i = 0; i < keys; i++) {
    const length = buffer[at]!;
    const key = buffer.toString('latin1', at + 1, at + 1 + length);
    at += 1 + length;
    const bodyLength = buffer.readUInt32LE(at + 26);
    visit({
      key,
      fingerprint: buffer.toString('hex', at, at + 16),
      expiresAt: buffer.readDoubleLE(at + 16),
      status: buffer.readUInt16LE(at + 24),
      body: buffer.toString('utf8', at + 30, at + 30 + bodyLength),
    });
    at += 30 + bodyLength;
  }
}

/** Where the entries of the record at `start` end (at most at `end`). */
function afterEntries(buffer: Buffer, start: number, end: number): number {
  let at = start + HEADER_BYTES + 8;
  const entries = buffer.readUInt32LE(at);
  at += 4;
  for (let i = 0; i < entries && at < end; i++) at += 1 + buffer[at]! + 8;
  return at;
}

/** When the record at `start` was appended, in ms since the epoch. */
export function recordTime(buffer: Buffer, start: number): number {
  return buffer.readDoubleLE(start + HEADER_BYTES);
}

export interface Scan {
  /** Start offsets (within the buffer) of the complete, valid records, in order. */
  records: number[];
  /** Where the valid records end: the next record, if any, starts here. */
  end: number;
  /**
   * What follows `end`: nothing; an incomplete record (being written, or cut by a crash); a
   * torn record (complete length, bad checksum, nothing valid after it: a write cut by a crash or
   * a power loss); or corruption, a bad record with a valid one after it.
   */
  rest: 'none' | 'incomplete' | 'torn' | 'corrupt';
}

/** Walks the records of `buffer` from `start`. Never throws: the caller decides what `rest` means. */
export function scanRecords(buffer: Buffer, start: number): Scan {
  const records: number[] = [];
  let at = start;
  for (;;) {
    if (at === buffer.length) return { records, end: at, rest: 'none' };
    const state = recordAt(buffer, at);
    if (state === 'valid') {
      records.push(at);
      at += HEADER_BYTES + buffer.readUInt32LE(at);
      continue;
    }
    // A record being written, or cut by a crash, is the last thing in the file: a valid record
    // after it means a damaged length, not a short write.
    const damaged = validRecordAfter(buffer, at);
    if (state === 'incomplete') return { records, end: at, rest: damaged ? 'corrupt' : 'incomplete' };
    return { records, end: at, rest: damaged ? 'corrupt' : 'torn' };
  }
}

function recordAt(buffer: Buffer, at: number): 'valid' | 'incomplete' | 'bad' {
  if (buffer.length - at < HEADER_BYTES) return 'incomplete';
  const size = buffer.readUInt32LE(at);
  if (size < PAYLOAD_PREFIX || size > MAX_PAYLOAD) return isZero(buffer, at) ? 'incomplete' : 'bad';
  const end = at + HEADER_BYTES + size;
  if (end > buffer.length) return 'incomplete';
  if (checksum(buffer, at, end) !== buffer.readUInt32LE(at + 4)) return 'bad';
  return entriesFit(buffer, at, end) ? 'valid' : 'bad';
}

/** A checksum can collide; the entries, and the keys if any, must also fill the payload exactly. */
function entriesFit(buffer: Buffer, start: number, end: number): boolean {
  let at = afterEntries(buffer, start, end);
  if (at === end) return true;
  if (at + 4 > end) return false;
  const keys = buffer.readUInt32LE(at);
  at += 4;
  if (keys === 0) return false;
  for (let i = 0; i < keys; i++) {
    if (at + KEY_FIXED > end) return false;
    const length = buffer[at]!;
    if (at + KEY_FIXED + length > end) return false;
    at += KEY_FIXED + length + buffer.readUInt32LE(at + 1 + length + 26);
  }
  return at === end;
}

/** Zeros from `at` to the end: space the file system allocated but no write ever reached. */
function isZero(buffer: Buffer, at: number): boolean {
  for (let i = at; i < buffer.length; i++) if (buffer[i] !== 0) return false;
  return true;
}

/**
 * Whether a valid record starts anywhere after the bad one at `bad`. If so, the bad one is not a
 * write cut short at the end of the journal but damage in its middle, and skipping it would drop
 * counted events. Tried first where the bad record's own length points, then at every offset,
 * until the bytes checksummed pass a budget: past it, the answer is yes, since refusing to start
 * is safe and ignoring counted events is not.
 */
function validRecordAfter(buffer: Buffer, bad: number): boolean {
  if (buffer.length - bad < HEADER_BYTES) return false;
  const size = buffer.readUInt32LE(bad);
  const next = bad + HEADER_BYTES + size;
  if (size <= MAX_PAYLOAD && next < buffer.length && recordAt(buffer, next) === 'valid') return true;
  let budget = 64 * (buffer.length - bad) + MAX_PAYLOAD;
  for (let at = bad + 1; at + HEADER_BYTES + PAYLOAD_PREFIX <= buffer.length; at++) {
    if (recordAt(buffer, at) === 'valid') return true;
    const candidate = buffer.readUInt32LE(at);
    if (candidate <= buffer.length - at) budget -= candidate;
    if (budget < 0) return true;
  }
  return false;
}
