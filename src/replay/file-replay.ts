import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { SvcError } from '../core/errors.js';
import { normalizeDomain } from '../core/domain.js';
import { fnv1a } from '../core/hash.js';
import { CANONICAL_DOMAIN_START, MAX_LINE_LENGTH, parseRawEventLine, scanCanonical, type CanonicalScan, type EventType } from '../core/event.js';
import type { DomainCounts } from '../core/status.js';
import type { CounterStore, ReplayCheckpoint } from '../store/counter-store.js';
import { DistinctCounter } from './distinct.js';
import { forEachLine } from './lines.js';
import { NameTable } from './name-table.js';
import type { ReplaySource } from './source.js';

/** Longest line kept in memory; a longer one is rejected without being buffered whole. */
const MAX_LINE_BYTES = 64 * 1024;
/** A ratio budget is only judged once this many lines have been read (or at the end of a file). */
const RATIO_MIN_LINES = 1000;

export type InvalidBudget = { count: number } | { ratio: number };

export interface ReplayOptions {
  store: CounterStore;
  /** Events per chunk: one store write per distinct domain per chunk. */
  chunkEvents: number;
  /** Stop at the first bad line. */
  strict: boolean;
  /** Apply a file again even if a replay of it has completed. */
  force: boolean;
  maxInvalid?: InvalidBudget;
  /** Aborting stops after the chunk being read is committed. */
  signal?: AbortSignal;
  onRejected?(rejection: Rejection): void;
  /** Called as the file is read, with the stored bytes read and the events parsed so far in this file. */
  onProgress?(storedBytes: number, events: number): void;
}

export interface Rejection {
  file: string;
  line: number;
  reason: string;
  text: string;
}

export type FileOutcome =
  /** Read to the end and recorded as done. */
  | 'applied'
  /** A replay of the same content had already completed; nothing applied. */
  | 'already-applied'
  /** Stopped at a bad line (--strict) or once the --max-invalid budget was spent. */
  | 'stopped'
  /** Aborted (Ctrl-C); what was read is committed and the next run resumes. */
  | 'interrupted';

export interface FileResult {
  file: string;
  outcome: FileOutcome;
  /** Why a file was stopped. */
  stopReason?: string;
  /** Line number the run started after (0 for a fresh run). */
  resumedAfterLine: number;
  /** Lines, events and bad lines read by this run (not counting a previous, resumed run). */
  lines: number;
  events: number;
  invalid: number;
  chunks: number;
  /** Store writes issued: one per distinct domain per chunk. */
  domainWrites: number;
  domains: DistinctCounter;
}

/**
 * Replays one NDJSON event log into a store, exactly once. Events are aggregated per chunk of
 * `chunkEvents` events and each chunk is committed with a checkpoint (the fingerprint of the
 * file's content, the byte offset and line reached). Chunks end at a fixed count of events, so a
 * resumed run cuts the rest of the file into the same chunks as the interrupted one did: that is
 * what lets the MongoDB store recognise a chunk it has already applied.
 */
export async function replayFile(source: ReplaySource, options: ReplayOptions): Promise<FileResult> {
  const fingerprint = await source.fingerprint();
  const recorded = fingerprint ? await options.store.getCheckpoint(fingerprint) : undefined;
  const result: FileResult = {
    file: source.name,
    outcome: 'applied',
    resumedAfterLine: 0,
    lines: 0,
    events: 0,
    invalid: 0,
    chunks: 0,
    domainWrites: 0,
    domains: new DistinctCounter(),
  };
  if (recorded?.done && !options.force) return { ...result, outcome: 'already-applied' };
  const resume = recorded && !recorded.done && !options.force ? recorded : undefined;
  const replay = new FileReplay(source, options, result, fingerprint, resume);
  await replay.run();
  return result;
}

class FileReplay {
  readonly #source: ReplaySource;
  readonly #options: ReplayOptions;
  readonly #result: FileResult;
  /** Progress as committed to the store, or undefined for standard input (no checkpoints). */
  readonly #checkpoint: ReplayCheckpoint | undefined;
  /** The chunk being read, by domain as written in the file. */
  #chunk = new NameTable<ChunkEntry>();
  readonly #scan: CanonicalScan = { type: 'delivered', domainEnd: 0, hash: 0 };
  #chunkEvents = 0;
  #inFlight: Promise<void> = Promise.resolve();
  /** Bytes of content consumed, through the end of the last complete line. */
  #offset: number;
  /** Lines consumed from the start of the file, through the offset. */
  #linesConsumed: number;
  /** Events and bad lines of earlier, interrupted runs of the same file and run. */
  readonly #previousEvents: number;
  readonly #previousInvalid: number;
  #stopReason: string | undefined;

  constructor(source: ReplaySource, options: ReplayOptions, result: FileResult, fingerprint: string | undefined, resume: ReplayCheckpoint | undefined) {
    this.#source = source;
    this.#options = options;
    this.#result = result;
    this.#offset = resume?.offset ?? 0;
    this.#linesConsumed = resume?.lines ?? 0;
    this.#previousEvents = resume?.events ?? 0;
    this.#previousInvalid = resume?.invalid ?? 0;
    result.resumedAfterLine = this.#linesConsumed;
    this.#checkpoint = fingerprint
      ? resume ?? { source: fingerprint, run: randomBytes(6).toString('hex'), chunk: 0, offset: 0, lines: 0, events: 0, invalid: 0, done: false }
      : undefined;
  }

  async run(): Promise<void> {
    const stream = this.#source.open(this.#offset, (bytes) => this.#options.onProgress?.(bytes, this.#result.events));
    try {
      await this.#read(stream);
    } finally {
      stream.destroy();
    }
    if (this.#stopReason === undefined && !this.#options.signal?.aborted) this.#checkRatio(true);
    await this.#commitChunk();
    await this.#inFlight;
    if (this.#stopReason !== undefined) {
      this.#result.outcome = 'stopped';
      this.#result.stopReason = this.#stopReason;
    } else if (this.#options.signal?.aborted) {
      this.#result.outcome = 'interrupted';
    } else if (this.#checkpoint) {
      await this.#options.store.applyBatch(new Map(), this.#nextCheckpoint(true));
    }
  }

  async #read(stream: Readable): Promise<void> {
    const signal = this.#options.signal;
    await forEachLine(stream, MAX_LINE_BYTES, (text, bytes) => {
      if (text === undefined) this.#reject(`line is longer than ${MAX_LINE_BYTES} bytes`, '');
      else this.#line(text);
      if (this.#stopReason !== undefined) return false;
      this.#consumed(bytes);
      if (this.#chunkEvents >= this.#options.chunkEvents) return this.#commitChunk();
      if (signal?.aborted) return false;
    });
  }

  #consumed(bytes: number): void {
    this.#offset += bytes;
    this.#linesConsumed++;
  }

  #line(text: string): void {
    this.#result.lines++;
    if (text.length === 0 || (text.charCodeAt(0) <= 0x20 && text.trim().length === 0)) return;
    // The name is looked up where it sits in the line: no string is cut out of a canonical line
    // unless its name is new to the chunk.
    let source = text;
    let start = CANONICAL_DOMAIN_START;
    let end: number;
    let hash: number;
    let type: EventType;
    const scan = this.#scan;
    if (text.length <= MAX_LINE_LENGTH && scanCanonical(text, scan)) {
      ({ domainEnd: end, hash, type } = scan);
    } else {
      let event;
      try {
        event = parseRawEventLine(text);
      } catch (error) {
        if (!(error instanceof SvcError)) throw error;
        this.#reject(error.message, text);
        return;
      }
      source = event.domain;
      start = 0;
      end = source.length;
      hash = fnv1a(source);
      type = event.type;
    }
    let entry = this.#chunk.get(source, start, end, hash);
    if (entry === undefined) {
      entry = newEntry(source.slice(start, end));
      this.#chunk.add(source, start, end, hash, entry);
      if (entry.domain !== undefined) this.#result.domains.add(entry.domain);
    }
    if (entry.invalid !== undefined) {
      this.#reject(entry.invalid, text);
      return;
    }
    entry[type]++;
    this.#chunkEvents++;
    this.#result.events++;
  }

  /** A bad line: counted, reported, and the run stopped when --strict or the budget says so. */
  #reject(reason: string, text: string): void {
    const line = this.#linesConsumed + 1;
    this.#result.invalid++;
    this.#options.onRejected?.({ file: this.#source.name, line, reason, text });
    const budget = this.#options.maxInvalid;
    if (this.#options.strict) {
      // The bad line is not consumed: the same command run again stops at it again.
      this.#stopReason = `line ${line}: ${reason} (--strict)`;
    } else if (budget && 'count' in budget && this.#result.invalid > budget.count) {
      this.#stopReason = `more than ${budget.count} bad lines (--max-invalid)`;
    } else {
      this.#checkRatio(false);
    }
  }

  #checkRatio(endOfFile: boolean): void {
    const budget = this.#options.maxInvalid;
    if (!budget || !('ratio' in budget) || this.#stopReason !== undefined) return;
    if (!endOfFile && this.#result.lines < RATIO_MIN_LINES) return;
    if (this.#result.lines > 0 && this.#result.invalid / this.#result.lines > budget.ratio) {
      this.#stopReason = `bad lines exceed ${budget.ratio * 100}% of lines (--max-invalid)`;
    }
  }

  /** Sends the chunk read so far to the store, once the previous one is committed. */
  async #commitChunk(): Promise<void> {
    if (this.#chunkEvents === 0 && !this.#checkpointMoved()) return;
    const deltas = normalisedDeltas(this.#chunk);
    const checkpoint = this.#checkpoint ? this.#nextCheckpoint(false) : undefined;
    this.#result.chunks++;
    this.#result.domainWrites += deltas.size;
    this.#chunk = new NameTable();
    this.#chunkEvents = 0;
    // One chunk is committed while the next is read; never two at once, so they land in order.
    await this.#inFlight;
    this.#inFlight = this.#options.store.applyBatch(deltas, checkpoint);
  }

  /** Bad or blank lines since the last checkpoint move it forward even without events. */
  #checkpointMoved(): boolean {
    return this.#checkpoint !== undefined && this.#offset !== this.#checkpoint.offset;
  }

  #nextCheckpoint(done: boolean): ReplayCheckpoint {
    const checkpoint = this.#checkpoint!;
    Object.assign(checkpoint, {
      chunk: checkpoint.chunk + 1,
      offset: this.#offset,
      lines: this.#linesConsumed,
      // Every event read so far is in this chunk or an earlier one.
      events: this.#previousEvents + this.#result.events,
      invalid: this.#previousInvalid + this.#result.invalid,
      done,
    });
    return { ...checkpoint };
  }
}

/** Counts of one domain name as written; `Example.com` and `example.com` are separate entries until the commit. */
interface ChunkEntry extends DomainCounts {
  /** The normalised name, or undefined when the name is invalid. */
  domain: string | undefined;
  invalid: string | undefined;
}

function newEntry(written: string): ChunkEntry {
  try {
    return { domain: normalizeDomain(written), invalid: undefined, delivered: 0, bounced: 0 };
  } catch (error) {
    if (!(error instanceof SvcError)) throw error;
    return { domain: undefined, invalid: error.message, delivered: 0, bounced: 0 };
  }
}

function normalisedDeltas(chunk: NameTable<ChunkEntry>): Map<string, DomainCounts> {
  const deltas = new Map<string, DomainCounts>();
  for (const entry of chunk.values()) {
    if (entry.domain === undefined || entry.delivered + entry.bounced === 0) continue;
    const counts = deltas.get(entry.domain);
    if (counts === undefined) {
      deltas.set(entry.domain, { delivered: entry.delivered, bounced: entry.bounced });
    } else {
      counts.delivered += entry.delivered;
      counts.bounced += entry.bounced;
    }
  }
  return deltas;
}
