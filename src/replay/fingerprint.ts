import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';

/**
 * A file is hashed in ranges of this size, which threads can hash at the same time; the
 * fingerprint is the same whatever the number of threads.
 */
const RANGE_BYTES = 64 * 1024 * 1024;

export type RangeHasher = (path: string, start: number, end: number) => Promise<Buffer>;

/** SHA-256 of the bytes [start, end) of a file. */
export async function hashRange(path: string, start: number, end: number): Promise<Buffer> {
  const hash = createHash('sha256');
  if (end > start) {
    // Large reads: with the default 64 KiB, reading costs more than hashing.
    await pipeline(createReadStream(path, { start, end: end - 1, highWaterMark: 1024 * 1024 }), hash);
  }
  return hash.digest();
}

/**
 * The fingerprint replay records a file's progress under: SHA-256 over the file's size and the
 * SHA-256 of each of its ranges (a hash tree one level deep), so that identical content has the
 * same fingerprint under any name and any change gives another.
 */
export async function fingerprintFile(path: string, size: number, hasher: RangeHasher = hashRange): Promise<string> {
  const ranges: Array<Promise<Buffer>> = [];
  for (let start = 0; start < size || start === 0; start += RANGE_BYTES) ranges.push(hasher(path, start, Math.min(size, start + RANGE_BYTES)));
  const digests = await Promise.all(ranges);
  return createHash('sha256').update(`svc replay fingerprint, ${size} bytes\n`).update(Buffer.concat(digests)).digest('hex');
}
