import type { IncomingMessage, ServerResponse } from 'node:http';
import { OverloadedError, PayloadTooLargeError } from '../core/errors.js';

/**
 * Bytes of request bodies held in memory at once, across requests. --max-body bounds one body;
 * this bounds them all when many large POSTs arrive together, which --max-pending cannot: it
 * counts events only once a body has been read and parsed.
 */
export class BodyBudget {
  #used = 0;
  constructor(readonly limit: number) {}

  tryTake(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#used -= bytes;
  }
}

/**
 * Reads a whole request body, refusing more than `limit` bytes (413, before reading when
 * Content-Length says so) and more than `budget` has room for (503). The bytes stay counted until
 * the response closes: the body, and the strings cut from it, live as long as the request.
 */
export function readBody(req: IncomingMessage, res: ServerResponse, limit: number, budget: BodyBudget): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(new PayloadTooLargeError(limit));
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    res.once('close', () => budget.release(size));
    const refuse = (error: Error) => {
      req.off('data', onData);
      req.off('end', onEnd);
      chunks = [];
      // Drain what the client still sends, so that the answer reaches it.
      req.resume();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > limit) return refuse(new PayloadTooLargeError(limit));
      if (!budget.tryTake(chunk.length)) return refuse(new OverloadedError());
      size += chunk.length;
      chunks.push(chunk);
    };
    const onEnd = () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}
