import { accessSync, constants, createReadStream, statSync } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { fingerprintFile, type RangeHasher } from './fingerprint.js';

/** Where replay reads a log from: a file (plain or .gz) or standard input. */
export interface ReplaySource {
  /** As given on the command line; `-` for standard input. */
  name: string;
  /** Bytes of the file as stored (compressed for .gz); undefined for standard input. */
  size: number | undefined;
  /** See fingerprintFile; undefined for standard input, which cannot be read twice. */
  fingerprint(hasher?: RangeHasher): Promise<string | undefined>;
  /**
   * The content (decompressed) from byte `offset` on. `progress` is told how many bytes of the
   * stored file have been read, for a progress bar.
   */
  open(offset: number, progress: (storedBytes: number) => void): Readable;
}

/** A file's size, or an error that names the file and says why it cannot be replayed. */
function readableSize(path: string): number {
  let stats;
  try {
    stats = statSync(path);
    accessSync(path, constants.R_OK);
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    const why = code === 'ENOENT' ? 'no such file (ENOENT)' : code === 'EACCES' ? 'permission denied (EACCES)' : (error as Error).message;
    throw new Error(`cannot read ${path}: ${why}`);
  }
  if (stats.isDirectory()) throw new Error(`cannot read ${path}: it is a directory (EISDIR)`);
  return stats.size;
}

export function openSource(name: string): ReplaySource {
  return name === '-' ? stdinSource() : fileSource(name);
}

function fileSource(path: string): ReplaySource {
  const size = readableSize(path);
  const gzip = path.endsWith('.gz');
  return {
    name: path,
    size,
    fingerprint: (hasher) => fingerprintFile(path, size, hasher),
    open(offset, progress) {
      // A plain file is read from the offset on; a compressed one has to be decompressed from the
      // start, and the bytes before the offset are dropped.
      const file = createReadStream(path, { start: gzip ? 0 : offset, highWaterMark: 256 * 1024 });
      let read = gzip ? 0 : offset;
      file.on('data', (chunk) => progress((read += chunk.length)));
      if (!gzip) return file;
      const gunzip = createGunzip();
      file.on('error', (error) => gunzip.destroy(error));
      return file.pipe(gunzip).pipe(skipBytes(offset));
    },
  };
}

function stdinSource(): ReplaySource {
  return {
    name: '-',
    size: undefined,
    fingerprint: async () => undefined,
    open(_offset, progress) {
      let read = 0;
      process.stdin.on('data', (chunk) => progress((read += chunk.length)));
      return process.stdin;
    },
  };
}

function skipBytes(count: number): Transform {
  let left = count;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (left >= chunk.length) {
        left -= chunk.length;
        done();
        return;
      }
      const rest = left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
      done(null, rest);
    },
  });
}
