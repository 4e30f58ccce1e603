import { Worker } from 'node:worker_threads';
import type { ApplyJob, ApplyOutcome } from './apply-job.js';
import { FencedError } from './apply-job.js';
import type { ApplyAnswer, ApplyRequest } from './apply-worker.js';

// Always the compiled worker: the tests run the TypeScript sources, which a worker thread cannot
// load (`npm test` compiles first). From src/store/journal/ and from dist/store/journal/ alike,
// three levels up is the project's root.
const WORKER = new URL('../../../dist/store/journal/apply-worker.js', import.meta.url);

/** Runs apply jobs on a thread of their own, one at a time; started at the first job. */
export class ApplyThread {
  readonly #storeDirectory: string;
  readonly #journalDirectory: string;
  #worker: Worker | undefined;
  readonly #waiting = new Map<number, { resolve(answer: ApplyAnswer): void; reject(error: Error): void }>();
  #nextId = 0;
  #closed = false;

  constructor(storeDirectory: string, journalDirectory: string) {
    this.#storeDirectory = storeDirectory;
    this.#journalDirectory = journalDirectory;
  }

  /** Closed for good: a job asked for afterwards would start a thread that nobody stops. */
  get closed(): boolean {
    return this.#closed;
  }

  async run(job: ApplyJob): Promise<ApplyOutcome> {
    if (this.#closed) throw new Error("the journal's apply thread is closed");
    const answer = await this.#ask({ id: this.#nextId++, job });
    if (answer.error) throw answer.error.fenced ? new FencedError(answer.error.message) : new Error(answer.error.message);
    return answer.outcome!;
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Held here: once the thread has answered it exits, and its exit handler clears #worker,
    // possibly before this function resumes.
    const worker = this.#worker;
    if (worker === undefined) return;
    await this.#ask({ id: this.#nextId++ });
    await worker.terminate();
    this.#worker = undefined;
  }

  #ask(request: ApplyRequest): Promise<ApplyAnswer> {
    const worker = (this.#worker ??= this.#start());
    return new Promise((resolve, reject) => {
      this.#waiting.set(request.id, { resolve, reject });
      worker.postMessage(request);
    });
  }

  #start(): Worker {
    const worker = new Worker(WORKER, { workerData: { storeDirectory: this.#storeDirectory, journalDirectory: this.#journalDirectory } });
    worker.on('message', (answer: ApplyAnswer) => {
      const waiting = this.#waiting.get(answer.id);
      this.#waiting.delete(answer.id);
      waiting?.resolve(answer);
    });
    const fail = (error: Error) => {
      this.#worker = undefined;
      for (const waiting of this.#waiting.values()) waiting.reject(error);
      this.#waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the journal's apply thread exited with code ${code}`)));
    return worker;
  }
}
