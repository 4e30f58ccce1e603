import { closeSync, fdatasync, fsyncSync, ftruncateSync, mkdirSync, openSync, unlinkSync, write, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crash, reached } from './crash-point.js';
import { MAGIC } from './record.js';
import { segmentFile } from './segments.js';

export interface JournalWriterOptions {
  /** Flush every write to disk before it is acknowledged (survives power loss). */
  fsync: boolean;
  /** A segment is sealed once it holds this many bytes. */
  segmentBytes: number;
  /** Hears of every sealed segment, which may now be applied. */
  sealed(seq: number, bytes: number): void;
}

interface Append {
  record: Buffer;
  resolve(seq: number): void;
  reject(error: Error): void;
}

/**
 * Appends records to this process's own segments: one write (and, with fsync, one flush) for all
 * the records queued while the previous write was under way, so appends are group commits too.
 * Writes are positioned: after a failed one (a full disk) the file is cut back to its last
 * complete record, so that a later record never follows a partial one.
 */
export class JournalWriter {
  readonly id: string;
  readonly #directory: string;
  readonly #options: JournalWriterOptions;
  #fd: number;
  #seq = 0;
  #offset = 0;
  #queue: Append[] = [];
  #writing = false;
  #sealWanted = false;
  #broken: Error | undefined;
  #idle: Array<() => void> = [];

  constructor(directory: string, id: string, options: JournalWriterOptions) {
    this.id = id;
    this.#directory = directory;
    this.#options = options;
    mkdirSync(directory, { recursive: true });
    this.#fd = this.#create(1);
    this.#seq = 1;
    this.#offset = MAGIC.length;
  }

  /** The segment being appended to, and its size. */
  get seq(): number {
    return this.#seq;
  }

  get bytes(): number {
    return this.#offset;
  }

  /** Resolves with the segment the record went into, once it is written (and flushed, with fsync). */
  append(record: Buffer): Promise<number> {
    if (this.#broken) return Promise.reject(this.#broken);
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      this.#write();
    });
  }

  /** Seals the segment after the write under way, if it holds any record. */
  seal(): void {
    if (this.#offset === MAGIC.length) return;
    this.#sealWanted = true;
    if (!this.#writing) this.#rotate();
  }

  /** Waits for the writes under way, then closes the segment: sealed if it holds records, else removed. */
  async close(): Promise<void> {
    while (this.#writing || this.#queue.length > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    closeSync(this.#fd);
    this.#broken = new Error('journal writer is closed');
    if (this.#offset === MAGIC.length) unlinkSync(join(this.#directory, segmentFile(this.id, this.#seq)));
    else this.#options.sealed(this.#seq, this.#offset);
  }

  #write(): void {
    if (this.#writing || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#writing = true;
    const data = batch.length === 1 ? batch[0]!.record : Buffer.concat(batch.map((append) => append.record));
    if (reached('append')) {
      writeSync(this.#fd, data, 0, data.length >> 1, this.#offset);
      crash();
    }
    writeAt(this.#fd, data, this.#offset, this.#options.fsync, (error) => {
      this.#writing = false;
      if (error) {
        this.#cutBack(error);
        for (const append of batch) append.reject(error);
      } else {
        this.#offset += data.length;
        const seq = this.#seq;
        for (const append of batch) append.resolve(seq);
        if (this.#sealWanted || this.#offset >= this.#options.segmentBytes) this.#rotate();
      }
      if (this.#queue.length > 0) this.#write();
      else for (const wake of this.#idle.splice(0)) wake();
    });
  }

  /** Removes what a failed write may have left past the last complete record. */
  #cutBack(error: Error): void {
    try {
      ftruncateSync(this.#fd, this.#offset);
    } catch {
      // A partial record followed by a later one would read as damage: write no more.
      this.#broken = new Error(`journal segment ${segmentFile(this.id, this.#seq)} cannot be cut back after a failed write`, { cause: error });
    }
  }

  #rotate(): void {
    const sealed = { seq: this.#seq, bytes: this.#offset };
    let fd: number;
    try {
      fd = this.#create(sealed.seq + 1);
    } catch {
      // No new file (a full disk, no file descriptors): keep appending to this one and try
      // again after the next write.
      return;
    }
    closeSync(this.#fd);
    this.#fd = fd;
    this.#seq = sealed.seq + 1;
    this.#offset = MAGIC.length;
    this.#sealWanted = false;
    this.#options.sealed(sealed.seq, sealed.bytes);
  }

  /** A new segment file holding only the magic bytes. */
  #create(seq: number): number {
    const path = join(this.#directory, segmentFile(this.id, seq));
    const fd = openSync(path, 'wx');
    try {
      writeSync(fd, MAGIC, 0, MAGIC.length, 0);
      if (this.#options.fsync) {
        fsyncSync(fd);
        syncDirectory(this.#directory);
      }
    } catch (error) {
      closeSync(fd);
      try {
        unlinkSync(path);
      } catch {
        // Left as an empty segment, which reads as one.
      }
      throw error;
    }
    return fd;
  }
}

/** Makes a new file's name durable, not only its content. */
function syncDirectory(directory: string): void {
  const fd = openSync(directory, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAt(fd: number, data: Buffer, position: number, flush: boolean, done: (error: Error | null) => void): void {
  if (!flush) {
    // Into the page cache only, which outlives a crash of the process: on the main thread a
    // write of a few kilobytes costs less than a round trip through libuv's thread pool.
    try {
      for (let written = 0; written < data.length; ) written += writeSync(fd, data, written, data.length - written, position + written);
    } catch (error) {
      return done(error as Error);
    }
    return done(null);
  }
  let written = 0;
  const next = (error: Error | null, bytes = 0) => {
    if (error) return done(error);
    written += bytes;
    if (written < data.length) return write(fd, data, written, data.length - written, position + written, next);
    fdatasync(fd, done);
  };
  next(null);
}
