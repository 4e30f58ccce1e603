import { parentPort } from 'node:worker_threads';
import { hashRange } from './fingerprint.js';
import { parsePiece } from './piece-parser.js';

export type WorkerRequest =
  | { kind: 'parse'; id: number; buffer: ArrayBuffer; length: number }
  | { kind: 'hash'; id: number; path: string; start: number; end: number };

/**
 * A worker thread of ParsePool: parses the pieces it is sent (and sends their bytes back with the
 * result), and hashes ranges of files for their fingerprint.
 */
parentPort!.on('message', async (request: WorkerRequest) => {
  if (request.kind === 'parse') {
    const parsed = parsePiece(Buffer.from(request.buffer, 0, request.length));
    parentPort!.postMessage({ id: request.id, parsed, buffer: request.buffer }, [request.buffer]);
    return;
  }
  try {
    const digest = await hashRange(request.path, request.start, request.end);
    parentPort!.postMessage({ id: request.id, digest });
  } catch (error) {
    parentPort!.postMessage({ id: request.id, error: (error as Error).message });
  }
});
