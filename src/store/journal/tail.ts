import { closeSync, fstatSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { StoreUnavailableError } from '../../core/errors.js';
import { MAGIC, recordTime, scanRecords } from './record.js';
import { listSegments, type SegmentName } from './segments.js';
import type { SegmentDeltas, UnappliedIndex } from './unapplied.js';

/** A journal that cannot be read without risking wrong counts. */
export class JournalDamagedError extends StoreUnavailableError {}

/** What a reading process hears of the journal, for its metrics and logs. */
export interface TailObserver {
  /** A record written by another process became visible here, `seconds` after it was appended. */
  visible(seconds: number): void;
  /** Something an operator should know of; reading goes on. */
  warning(message: string, fields: Record<string, unknown>): void;
}

export const NO_TAIL_OBSERVER: TailObserver = { visible() {}, warning() {} };

/** A segment deleted without its mark showing it applied this long after is worth a warning. */
const VANISHED_WARNING_MS = 5_000;

/**
 * Reads the segments other processes write, as they grow, into the index: what makes their
 * events visible here before they are applied to LMDB. A segment is read from where the last
 * read stopped; a record not completely written yet is read next time.
 */
export class JournalTail {
  readonly #directory: string;
  readonly #index: UnappliedIndex;
  readonly #observer: TailObserver;
  /** The writer whose segments this process fills itself, and so never reads. */
  #ownWriter: string | undefined;
  readonly #files = new Map<string, number>();
  /** Records appended before this process started are not a measure of its lag. */
  readonly #since = Date.now();
  /** Segments whose damage was reported: they are not read further. */
  readonly #damaged = new Set<string>();
  /** Segments gone from the directory, since when: normally applied, and their mark seen soon after. */
  readonly #vanished = new Map<string, number>();
  #watcher: FSWatcher | undefined;
  /** Segments the file system said changed since the last read; `undefined`: read them all. */
  #changed: Set<string> | undefined = new Set();
  #readSoon = false;

  constructor(directory: string, index: UnappliedIndex, observer: TailObserver = NO_TAIL_OBSERVER) {
    this.#directory = directory;
    this.#index = index;
    this.#observer = observer;
  }

  set ownWriter(writer: string) {
    this.#ownWriter = writer;
  }

  /**
   * Reads a segment as soon as the file system says it grew (inotify on Linux), a few
   * milliseconds after the write; the caller's interval poll stays as the bound when a
   * notification is late or lost.
   */
  watch(): void {
    try {
      this.#watcher = watch(this.#directory, (event, file) => this.#notified(event, file));
    } catch (error) {
      this.#observer.warning('cannot watch the journal directory; reading it at the poll interval only', { error: (error as Error).message });
      return;
    }
    this.#watcher.on('error', (error) => {
      this.#observer.warning('stopped watching the journal directory; reading it at the poll interval only', { error: error.message });
      this.#watcher?.close();
      this.#watcher = undefined;
    });
    this.#watcher.unref();
  }

  /** Reads what is new in every segment; damage is reported once and that segment read no further. */
  poll(): void {
    this.#changed = new Set();
    try {
      this.#poll(false);
    } catch (error) {
      this.#observer.warning('reading the journal failed', { error: (error as Error).message });
    }
  }

  /** Reads every segment at start: throws JournalDamagedError on damage and on a missing segment. */
  load(): void {
    this.#poll(true);
  }

  #notified(event: string, file: string | null): void {
    if (file !== null && this.#ownWriter !== undefined && file.startsWith(this.#ownWriter + '.')) return;
    if (file === null || event === 'rename' || !this.#files.has(file)) this.#changed = undefined;
    else this.#changed?.add(file);
    if (this.#readSoon) return;
    this.#readSoon = true;
    setImmediate(() => {
      this.#readSoon = false;
      const changed = this.#changed;
      if (changed === undefined) return this.poll();
      this.#changed = new Set();
      try {
        this.#index.refresh();
        for (const file of changed) {
          const segment = this.#index.segment(file);
          if (segment && !this.#damaged.has(file) && !this.#index.appliedWhole(segment.writer, segment.seq)) this.#read(segment, false);
        }
      } catch (error) {
        this.#observer.warning('reading the journal failed', { error: (error as Error).message });
      }
    });
  }

  #poll(strict: boolean): void {
    const names = listSegments(this.#directory);
    this.#index.refresh();
    const listed = new Set<string>();
    for (const name of names) {
      listed.add(name.file);
      if (name.writer === this.#ownWriter || this.#damaged.has(name.file)) continue;
      if (this.#index.appliedWhole(name.writer, name.seq)) {
        this.#close(name.file);
        continue;
      }
      this.#read(name, strict);
    }
    if (strict) this.#checkContinuity(names);
    for (const file of this.#files.keys()) {
      if (listed.has(file)) continue;
      this.#close(file);
      // Its deltas stay in the index until a refresh sees the mark that says they are applied.
      this.#vanished.set(file, Date.now());
    }
    for (const [file, since] of this.#vanished) {
      const segment = this.#index.segment(file);
      if (segment === undefined || this.#index.appliedWhole(segment.writer, segment.seq)) this.#vanished.delete(file);
      else if (Date.now() - since > VANISHED_WARNING_MS) {
        this.#observer.warning('journal segment removed before it was applied: its events are counted here until this process restarts', { file });
        this.#vanished.delete(file);
      }
    }
  }

  close(): void {
    this.#watcher?.close();
    for (const file of [...this.#files.keys()]) this.#close(file);
  }

  #read(name: SegmentName, strict: boolean): void {
    let fd = this.#files.get(name.file);
    if (fd === undefined) {
      try {
        fd = openSync(join(this.#directory, name.file), 'r');
      } catch (error) {
        // Applied and removed since the listing.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      this.#files.set(name.file, fd);
    }
    const segment = this.#index.open(name.writer, name.seq, name.file);
    const rest = readNewRecords(fd, segment, this.#since, this.#observer);
    if (rest === 'corrupt' || rest === 'not-a-segment') {
      const message = rest === 'corrupt'
        ? `journal segment ${join(this.#directory, name.file)} is damaged at byte ${segment.offset}: a bad record is followed by valid ones`
        : `${join(this.#directory, name.file)} is not a journal segment (bad magic bytes)`;
      if (strict) throw new JournalDamagedError(`${message}. Its events cannot be counted safely; restore the file, or move it out of the journal directory to start without them`);
      this.#damaged.add(name.file);
      this.#observer.warning(message, { file: name.file });
    }
  }

  /**
   * Every segment after the last applied one must be there: a gap means a file was lost, and with
   * it acknowledged events.
   */
  #checkContinuity(names: SegmentName[]): void {
    let previous: SegmentName | undefined;
    for (const name of names) {
      const first = previous?.writer === name.writer ? previous.seq + 1 : (this.#index.mark(name.writer)?.through ?? 0) + 1;
      if (name.seq > first && !this.#index.appliedWhole(name.writer, name.seq)) {
        throw new JournalDamagedError(
          `journal segment ${name.writer} #${first} is missing from ${this.#directory} (found #${name.seq}): acknowledged events may be lost. ` +
            'Restore it, or move the writer\'s remaining segments out of the journal directory to start without them',
        );
      }
      previous = name;
    }
  }

  #close(file: string): void {
    const fd = this.#files.get(file);
    if (fd === undefined) return;
    closeSync(fd);
    this.#files.delete(file);
  }
}

/**
 * Takes the complete records a segment file holds past `segment.offset` into `segment`. Returns
 * what follows them (see scanRecords), or 'not-a-segment'.
 */
export function readNewRecords(
  fd: number,
  segment: SegmentDeltas,
  since = Number.POSITIVE_INFINITY,
  observer: TailObserver = NO_TAIL_OBSERVER,
): ReturnType<typeof scanRecords>['rest'] | 'not-a-segment' {
  const size = fstatSync(fd).size;
  if (size < MAGIC.length) return 'incomplete';
  if (segment.offset === MAGIC.length) {
    const magic = Buffer.alloc(MAGIC.length);
    readFully(fd, magic, 0);
    if (!magic.equals(MAGIC)) return magic.every((byte) => byte === 0) ? 'incomplete' : 'not-a-segment';
  }
  if (size <= segment.offset) return 'none';
  const buffer = Buffer.allocUnsafe(size - segment.offset);
  readFully(fd, buffer, segment.offset);
  const scan = scanRecords(buffer, 0);
  segment.addRecords(buffer, scan.records);
  if (scan.records.length > 0) {
    const now = Date.now();
    for (const start of scan.records) {
      const appended = recordTime(buffer, start);
      if (appended >= since) observer.visible(Math.max(0, now - appended) / 1000);
    }
  }
  segment.advance(scan.end);
  return scan.rest;
}

function readFully(fd: number, buffer: Buffer, position: number): void {
  let done = 0;
  while (done < buffer.length) {
    const read = readSync(fd, buffer, done, buffer.length - done, position + done);
    if (read === 0) {
      // The file shrank (a failed write was truncated away): what is left is read next time.
      buffer.fill(0, done);
      return;
    }
    done += read;
  }
}
