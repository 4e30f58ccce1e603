import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { LmdbTables } from '../lmdb/lmdb-tables.js';
import { applyJob, FencedError, type ApplyJob } from './apply-job.js';

/** The thread that applies journal segments to LMDB, so the daemon's main thread never waits for it. */
export interface ApplyRequest {
  id: number;
  job?: ApplyJob;
}

export interface ApplyAnswer {
  id: number;
  outcome?: Awaited<ReturnType<typeof applyJob>>;
  error?: { message: string; fenced: boolean };
}

const { storeDirectory, journalDirectory } = workerData as { storeDirectory: string; journalDirectory: string };
// Applying is background work: on a busy machine requests and readers come first. On Linux this
// lowers the priority of this thread alone; where it cannot, nothing is lost but the courtesy.
try {
  setPriority(10);
} catch {
  // Not permitted here: run at the process's priority.
}
const tables = new LmdbTables(storeDirectory);
const port = parentPort!;

port.on('message', async (request: ApplyRequest) => {
  if (request.job === undefined) {
    await tables.close();
    port.postMessage({ id: request.id } satisfies ApplyAnswer);
    port.close();
    return;
  }
  try {
    port.postMessage({ id: request.id, outcome: await applyJob(tables, journalDirectory, request.job) } satisfies ApplyAnswer);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    port.postMessage({ id: request.id, error: { message, fenced: error instanceof FencedError } } satisfies ApplyAnswer);
  }
});
