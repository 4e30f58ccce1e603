import { Worker } from 'node:worker_threads';
import { hashRange } from './fingerprint.js';
import type { WorkerRequest } from './parse-worker.js';
import { parsePiece, type ParsedPiece } from './piece-parser.js';

export interface ParsedData {
  parsed: ParsedPiece;
  /** The piece itself, for a replay that has to parse part of it again. */
  data: Buffer;
}

/** What a worker answers: a parsed piece with its bytes back, or a range's hash. */
interface WorkerAnswer {
  id: number;
  parsed?: ParsedPiece;
  buffer?: ArrayBuffer;
  digest?: Uint8Array;
  error?: string;
}

interface Waiting {
  resolve(answer: WorkerAnswer): void;
  reject(error: Error): void;
}

/**
 * Parses pieces of a log on worker threads, so that a replay uses every core: the main thread only
 * reads, cuts and commits. Pieces travel by transfer, not by copy. The same threads hash files for
 * their fingerprint. With no threads, everything runs on the main thread.
 */
export class ParsePool {
  readonly #workers: Worker[] = [];
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 0;
  #failure: Error | undefined;

  constructor(threads: number) {
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(new URL('./parse-worker.js', import.meta.url));
      worker.on('message', (answer: WorkerAnswer) => {
        const waiting = this.#waiting.get(answer.id)!;
        this.#waiting.delete(answer.id);
        if (answer.error === undefined) waiting.resolve(answer);
        else waiting.reject(new Error(answer.error));
      });
      worker.on('error', (error) => this.#fail(error));
      worker.on('exit', (code) => this.#fail(new Error(`a parsing thread exited with code ${code}`)));
      this.#workers.push(worker);
    }
  }

  get threads(): number {
    return this.#workers.length;
  }

  /** Parses a piece that owns its memory (as chunkLog's do). */
  async parse(data: Buffer): Promise<ParsedData> {
    if (this.#workers.length === 0) return { parsed: parsePiece(data), data };
    const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : Buffer.from(data);
    const buffer = owned.buffer as ArrayBuffer;
    // Read before the transfer, which empties `owned`.
    const length = owned.length;
    const answer = await this.#ask((id) => ({ kind: 'parse', id, buffer, length }), [buffer]);
    return { parsed: answer.parsed!, data: Buffer.from(answer.buffer!, 0, length) };
  }

  /** SHA-256 of the bytes [start, end) of a file (see fingerprintFile). */
  readonly hashRange = async (path: string, start: number, end: number): Promise<Buffer> => {
    if (this.#workers.length === 0) return hashRange(path, start, end);
    const answer = await this.#ask((id) => ({ kind: 'hash', id, path, start, end }));
    return Buffer.from(answer.digest!);
  };

  #ask(request: (id: number) => WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerAnswer> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      // Requests are of about the same size: taking turns keeps the threads equally busy.
      this.#workers[id % this.#workers.length]!.postMessage(request(id), transfer);
    });
  }

  async close(): Promise<void> {
    const workers = this.#workers.splice(0);
    for (const worker of workers) worker.removeAllListeners('exit');
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiting of this.#waiting.values()) waiting.reject(error);
    this.#waiting.clear();
  }
}
