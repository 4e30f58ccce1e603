import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { indexAfter, type LmdbTables } from '../lmdb/lmdb-tables.js';
import { AppliedTable, type WriterRecord } from './applied.js';
import { crashPoint } from './crash-point.js';
import { DeltaTable } from './delta-table.js';
import type { KeyRecord } from '../../core/idempotency.js';
import { MAGIC, forEachEntryBytes, forEachKey, scanRecords } from './record.js';
import { listSegments, type SegmentName } from './segments.js';
import { JournalDamagedError } from './tail.js';

/** Apply a writer's segments after its last applied one, up to `upTo`. */
export interface ApplyJob {
  writer: string;
  /** The process applying them; a transaction that finds another owner recorded stops the job. */
  owner: string;
  upTo: number;
  domainsPerTransaction: number;
}

export interface ApplyOutcome {
  writer: string;
  /** Every segment of the writer up to this one is now applied. */
  through: number;
  domains: number;
  events: number;
  /** Segments that ended with a record cut short by a crash (never acknowledged), and its bytes. */
  cut: Array<{ file: string; bytes: number }>;
}

/** Another process took this journal over: this one must not touch it again. */
export class FencedError extends Error {}

/**
 * Adds a job's deltas to the counts in sorted parts, moving the writer's mark in each part's
 * transaction (see applied.ts), then waits for LMDB's flush so the segments may be deleted. Run
 * again after a crash, a job resumes after the last part committed; a job already applied changes
 * nothing.
 */
export async function applyJob(tables: LmdbTables, directory: string, job: ApplyJob): Promise<ApplyOutcome | undefined> {
  const applied = new AppliedTable(tables.journal);
  const start = applied.writer(job.writer);
  if (start === undefined || start.owner !== job.owner) throw new FencedError(`the journal of ${job.writer} is not applied by ${job.owner}`);
  // An interrupted run is finished first, over exactly its own segments.
  const through = start.partial?.through ?? job.upTo;
  if (through <= start.through) return undefined;
  const segments = listSegments(directory).filter((name) => name.writer === job.writer && name.seq > start.through && name.seq <= through);
  checkContiguous(job.writer, segments, start.through + 1, through);
  const { table, events, cut, keys: requestKeys } = readSegments(directory, segments);
  const deltas = table.sorted();
  const keys = deltas.domains;
  let record: WriterRecord | undefined;
  const progress = {
    start: () => {
      record = ownedRecord(applied, job);
      // Only the owner applies, so nothing moved since the segments were chosen.
      if (record.through !== start.through || record.partial?.cursor !== start.partial?.cursor) {
        throw new Error(`the mark of ${job.writer} moved while its apply job was prepared`);
      }
      return record.partial ? indexAfter(keys, record.partial.cursor) : 0;
    },
    record: (end: number, finished: boolean) => {
      record = ownedRecord(applied, job);
      if (finished) {
        // With the mark that makes readers drop the segments from their index.
        tables.storeKeys(requestKeys, Date.now());
        record.through = through;
        delete record.partial;
      } else {
        record.partial = { through, cursor: keys[end - 1]! };
      }
      applied.put(job.writer, record);
      applied.bumpEpoch();
    },
  };
  await tables.addSortedInParts(deltas, job.domainsPerTransaction, progress, async () => {
    if (!process.env.SVC_CRASH_AT) return;
    await tables.root.committed;
    crashPoint('apply-part');
  });
  await tables.root.flushed;
  return { writer: job.writer, through, domains: keys.length, events, cut };
}

/** A gap means a segment file was lost, and acknowledged events with it. */
function checkContiguous(writer: string, segments: readonly SegmentName[], first: number, last: number): void {
  for (let seq = first; seq <= last; seq++) {
    if (segments[seq - first]?.seq !== seq) throw new JournalDamagedError(`journal segment ${writer} #${seq} is missing`);
  }
}

/** The writer's record, read in the transaction; another owner recorded means this process must stop. */
function ownedRecord(applied: AppliedTable, job: ApplyJob): WriterRecord {
  const record = applied.writer(job.writer);
  if (record === undefined || record.owner !== job.owner) {
    throw new FencedError(`the journal of ${job.writer} is now applied by ${record?.owner ?? 'nobody'}`);
  }
  return record;
}

/**
 * The deltas of whole segments, summed per domain, and their requests' idempotency keys. A torn
 * tail (a crash mid-write) is left out.
 */
export function readSegments(
  directory: string,
  segments: readonly SegmentName[],
): { table: DeltaTable; events: number; cut: ApplyOutcome['cut']; keys: KeyRecord[] } {
  const table = new DeltaTable();
  const cut: ApplyOutcome['cut'] = [];
  const keys: KeyRecord[] = [];
  const addKey = (key: KeyRecord) => keys.push(key);
  let events = 0;
  const add = (bytes: Buffer, start: number, length: number, delivered: number, bounced: number) => {
    table.addBytes(bytes, start, length, delivered, bounced);
    events += delivered + bounced;
  };
  for (const segment of segments) {
    const path = join(directory, segment.file);
    const buffer = readFileSync(path);
    if (buffer.length < MAGIC.length || !buffer.subarray(0, MAGIC.length).equals(MAGIC)) {
      if (buffer.every((byte) => byte === 0)) continue;
      throw new JournalDamagedError(`${path} is not a journal segment (bad magic bytes)`);
    }
    const scan = scanRecords(buffer, MAGIC.length);
    if (scan.rest === 'corrupt') throw new JournalDamagedError(`journal segment ${path} is damaged at byte ${scan.end}: a bad record is followed by valid ones`);
    if (scan.end < buffer.length && !buffer.subarray(scan.end).every((byte) => byte === 0)) {
      cut.push({ file: segment.file, bytes: buffer.length - scan.end });
    }
    for (const start of scan.records) {
      forEachEntryBytes(buffer, start, add);
      forEachKey(buffer, start, addKey);
    }
  }
  return { table, events, cut, keys };
}
