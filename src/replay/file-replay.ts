import { randomBytes } from 'node:crypto';
import type { CounterStore, ReplayCheckpoint } from '../store/counter-store.js';
import { SortedDeltas } from '../store/sorted-deltas.js';
import { chunkLog } from './chunks.js';
import { DistinctCounter } from './distinct.js';
import type { ParsedData, ParsePool } from './parse-pool.js';
import { MAX_LINE_BYTES, parsePiece, type ParsedPiece } from './piece-parser.js';
import type { ReplaySource } from './source.js';
/** A ratio budget is only judged once this many lines have been read (or at the end of a file). */
const RATIO_MIN_LINES = 1000;
/**
 * Chunks are committed in groups: one store write per distinct domain per group, and the embedded
 * store's cost per domain falls as its writes grow (LMDB's pages are then shared by more of them).
 * A group ends at this many chunks or distinct domains, whichever comes first, so memory stays
 * bounded and a resumed run forms the same groups as the run it resumes.
 */
const GROUP_CHUNKS = 32;
const GROUP_DOMAINS = 2_000_000;

export type InvalidBudget = { count: number } | { ratio: number };

export interface ReplayOptions {
  store: CounterStore;
  /** Bytes of log per chunk (cut at a line end): one store write per distinct domain per chunk. */
  chunkBytes: number;
  /** Where chunks are parsed. */
  parsers: ParsePool;
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
  /** Store writes issued: one per distinct domain per group of chunks. */
  domainWrites: number;
  domains: DistinctCounter;
}

/**
 * Replays one NDJSON event log into a store, exactly once. The log is cut into chunks of about
 * `chunkBytes` (see chunkLog), parsed and added up on the parser threads, and each chunk is
 * committed in order with a checkpoint (the fingerprint of the file's content, the byte offset and
 * line reached). A resumed run cuts the rest of the file into the same chunks as the interrupted
 * one did: that is what lets the MongoDB store recognise a chunk it has already applied.
 */
export async function replayFile(source: ReplaySource, options: ReplayOptions): Promise<FileResult> {
  const fingerprint = await source.fingerprint(options.parsers.hashRange);
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
  #inFlight: Promise<void> = Promise.resolve();
  /** Bytes of content consumed, through the end of the last complete line. */
  #offset: number;
  /** Lines consumed from the start of the file, through the offset. */
  #linesConsumed: number;
  /** Events and bad lines of earlier, interrupted runs of the same file and run. */
  readonly #previousEvents: number;
  readonly #previousInvalid: number;
  #stopReason: string | undefined;
  readonly #chunkBytes: number;
  /** Chunks read and not committed yet (each sorted by domain), and their domains. */
  #group: ParsedPiece[] = [];
  #groupDomains = 0;

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
      ? (resume && withoutPartial(resume)) ?? { source: fingerprint, run: randomBytes(6).toString('hex'), chunk: 0, chunkBytes: options.chunkBytes, offset: 0, lines: 0, events: 0, invalid: 0, done: false }
      : undefined;
    // MongoDB recognises a chunk applied before by its number: the number must mean the same lines.
    this.#chunkBytes = resume?.chunkBytes ?? options.chunkBytes;
  }

  async run(): Promise<void> {
    const { signal, parsers } = this.#options;
    const stream = this.#source.open(this.#offset, (bytes) => this.#options.onProgress?.(bytes, this.#result.events));
    // Chunks parse ahead on the threads while earlier ones are applied, in file order.
    const ahead: Array<Promise<ParsedData | OverlongLine>> = [];
    const depth = 2 * Math.max(1, parsers.threads) + 1;
    let readToEnd = false;
    try {
      for await (const piece of chunkLog(stream, this.#chunkBytes, MAX_LINE_BYTES)) {
        ahead.push(piece.kind === 'lines' ? parsers.parse(piece.data) : Promise.resolve(overlongLine(piece.bytes)));
        if (ahead.length >= depth) await this.#apply(await ahead.shift()!);
        if (this.#stopReason !== undefined || signal?.aborted) break;
      }
      readToEnd = this.#stopReason === undefined && !signal?.aborted;
      while (ahead.length > 0 && this.#stopReason === undefined) await this.#apply(await ahead.shift()!);
    } finally {
      stream.destroy();
      // Nothing is left waiting on a chunk that will not be applied.
      for (const pending of ahead) pending.catch(() => {});
    }
    if (readToEnd && this.#stopReason === undefined) this.#checkRatio(this.#result.lines, true);
    await this.#commitGroup();
    await this.#inFlight;
    if (this.#stopReason !== undefined) {
      this.#result.outcome = 'stopped';
      this.#result.stopReason = this.#stopReason;
    } else if (!readToEnd) {
      this.#result.outcome = 'interrupted';
    } else if (this.#checkpoint) {
      await this.#options.store.applyBatch(new Map(), { checkpoint: this.#nextCheckpoint(true) });
    }
  }

  /**
   * Reports a chunk's bad lines in order, stopping at the one that --strict or the budget says
   * to stop at (then only the lines before it are applied), and commits the chunk.
   */
  async #apply({ parsed, data }: ParsedData | OverlongLine): Promise<void> {
    let applied = parsed;
    for (const rejection of parsed.rejections) {
      this.#reject(rejection.reason, rejection.text, rejection.line);
      if (this.#stopReason !== undefined) {
        // The bad line is not consumed: the same command run again stops at it again.
        applied = data ? parsePiece(data, rejection.line) : NOTHING;
        break;
      }
    }
    this.#result.lines += applied.lines;
    this.#result.events += applied.events;
    this.#offset += applied.bytes;
    this.#linesConsumed += applied.lines;
    for (const domain of applied.domains) this.#result.domains.add(domain);
    await this.#commit(applied);
  }

  /** A bad line: counted, reported, and the run stopped when --strict or the budget says so. */
  #reject(reason: string, text: string, lineInChunk: number): void {
    const line = this.#linesConsumed + lineInChunk;
    this.#result.invalid++;
    this.#options.onRejected?.({ file: this.#source.name, line, reason, text });
    const budget = this.#options.maxInvalid;
    if (this.#options.strict) {
      this.#stopReason = `line ${line}: ${reason} (--strict)`;
    } else if (budget && 'count' in budget && this.#result.invalid > budget.count) {
      this.#stopReason = `more than ${budget.count} bad lines (--max-invalid)`;
    } else {
      this.#checkRatio(this.#result.lines + lineInChunk, false);
    }
  }

  /** `lines`: lines read so far in this run, the bad line just seen included. */
  #checkRatio(lines: number, endOfFile: boolean): void {
    const budget = this.#options.maxInvalid;
    if (!budget || !('ratio' in budget) || this.#stopReason !== undefined) return;
    if (!endOfFile && lines < RATIO_MIN_LINES) return;
    if (lines > 0 && this.#result.invalid / lines > budget.ratio) {
      this.#stopReason = `bad lines exceed ${budget.ratio * 100}% of lines (--max-invalid)`;
    }
  }

  /** Adds a chunk to the group being gathered; commits the group once it is full. */
  async #commit(chunk: ParsedPiece): Promise<void> {
    if (chunk.events === 0 && chunk.bytes === 0) return;
    this.#group.push(chunk);
    this.#groupDomains += chunk.domains.length;
    // Bad or blank lines alone still move the checkpoint forward.
    if (this.#checkpoint) this.#nextCheckpoint(false);
    this.#result.chunks++;
    if (this.#group.length >= GROUP_CHUNKS || this.#groupDomains >= GROUP_DOMAINS) await this.#commitGroup();
  }

  /** Sends the group to the store once the previous one is committed: never two at once, so they land in order. */
  async #commitGroup(): Promise<void> {
    if (this.#group.length === 0) return;
    const deltas = SortedDeltas.merge(this.#group);
    const checkpoint = this.#checkpoint ? { ...this.#checkpoint } : undefined;
    this.#group = [];
    this.#groupDomains = 0;
    this.#result.domainWrites += deltas.size;
    await this.#inFlight;
    this.#inFlight = this.#options.store.applyBatch(deltas, { checkpoint });
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

function withoutPartial({ partial: _, ...checkpoint }: ReplayCheckpoint): ReplayCheckpoint {
  return checkpoint;
}

/** A line too long to hold, as chunkLog reports it: one bad line, nothing to parse again. */
interface OverlongLine {
  parsed: ParsedPiece;
  data: undefined;
}

const NOTHING: ParsedPiece = { bytes: 0, lines: 0, events: 0, domains: [], delivered: [], bounced: [], rejections: [] };

function overlongLine(bytes: number): OverlongLine {
  const rejection = { line: 1, reason: `line is longer than ${MAX_LINE_BYTES} bytes`, text: '' };
  return { parsed: { ...NOTHING, bytes, lines: 1, rejections: [rejection] }, data: undefined };
}
