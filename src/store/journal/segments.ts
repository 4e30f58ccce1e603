import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where the journal lives and what its files are called. Every writing process has its own
 * writer id and appends to its own numbered segments, `<writer>.<seq>.journal`, so no two
 * processes ever write the same file.
 */
export const JOURNAL_DIRECTORY = 'journal';

export interface SegmentName {
  writer: string;
  seq: number;
  file: string;
}

const SEGMENT_FILE = /^([a-z0-9-]+)\.(\d{8,})\.journal$/;

/** A new writer id: unique across processes and restarts, and safe in a file name. */
export function newWriterId(): string {
  return `${Date.now().toString(36)}-${process.pid.toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function segmentFile(writer: string, seq: number): string {
  return `${writer}.${String(seq).padStart(8, '0')}.journal`;
}

export function journalDirectory(storeDirectory: string): string {
  return join(storeDirectory, JOURNAL_DIRECTORY);
}

/** The journal's segments, by writer then sequence; other files are not ours and are left alone. */
export function listSegments(directory: string): SegmentName[] {
  let files: string[];
  try {
    files = readdirSync(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const segments: SegmentName[] = [];
  for (const file of files) {
    const match = SEGMENT_FILE.exec(file);
    if (match) segments.push({ writer: match[1]!, seq: Number(match[2]), file });
  }
  return segments.sort((a, b) => (a.writer === b.writer ? a.seq - b.seq : a.writer < b.writer ? -1 : 1));
}
