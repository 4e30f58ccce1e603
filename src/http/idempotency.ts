import type { IncomingMessage, ServerResponse } from 'node:http';
import { InDoubtError } from '../core/errors.js';
import { fingerprint, parseIdempotencyKey, type ClaimedKey, type KeyStore, type StoredAnswer } from '../core/idempotency.js';
import { HttpError } from './http-error.js';

/** Commits a request's events, with its key when it has one; resolves once they are counted. */
export type Commit = (key?: ClaimedKey) => Promise<void>;

/**
 * The `Idempotency-Key` header for the ingestion routes (see core/idempotency.ts):
 * - no key: the request is processed as always;
 * - a new key: processed, and its answer stored with its counts in one write;
 * - a key already used for the same request: the stored answer, with `Idempotent-Replayed: true`;
 * - a key used for another request (method, path or body): 422;
 * - a key whose first request has not finished, here or in another process: 409, retry later;
 * - a key whose first request failed (503): that request released it, so a retry is processed.
 */
export class IdempotentRequests {
  readonly #store: KeyStore;
  readonly #windowMs: number;
  /** Keys of this process's requests in flight, with their fingerprints: a repeat is refused without a store round trip. */
  readonly #inFlight = new Map<string, string>();

  constructor(store: KeyStore, windowMs: number) {
    this.#store = store;
    this.#windowMs = windowMs;
  }

  /**
   * Answers `req` with `answer` once `commit` has counted its events, or, when its key was used
   * before, with what that use was answered. `answer` is worked out before anything is counted,
   * so that it can be stored with the counts.
   */
  async respond(req: IncomingMessage, res: ServerResponse, answer: StoredAnswer, commit: Commit, body?: Buffer): Promise<void> {
    const key = parseIdempotencyKey(req.headers['idempotency-key']);
    if (key === undefined) {
      await commit();
      return send(res, answer);
    }
    const print = fingerprint(req.method ?? '', req.url ?? '', body);
    const held = this.#inFlight.get(key);
    if (held !== undefined) throw refusal(held, print);
    this.#inFlight.set(key, print);
    try {
      const now = Date.now();
      const claim = await this.#store.claimKey(key, print, now);
      if (claim.state === 'in-flight') throw refusal(claim.fingerprint, print);
      if (claim.state === 'done') {
        if (claim.record.fingerprint !== print) throw refusal(claim.record.fingerprint, print);
        return send(res, claim.record, { 'idempotent-replayed': 'true' });
      }
      try {
        await commit({ key, fingerprint: print, claimedAt: now, expiresAt: now + this.#windowMs, ...answer });
      } catch (error) {
        // Nothing was counted, so the key is free again; unless the write may have landed.
        if (!(error instanceof InDoubtError)) await this.#store.releaseKey(key).catch(() => {});
        throw error;
      }
      send(res, answer);
    } finally {
      this.#inFlight.delete(key);
    }
  }
}

function refusal(stored: string, sent: string): HttpError {
  if (stored !== sent) return new HttpError(422, 'this Idempotency-Key was used for another request (method, path or body)');
  return new HttpError(409, 'a request with this Idempotency-Key is being processed; retry once it is answered', { 'retry-after': '1' });
}

function send(res: ServerResponse, { status, body }: StoredAnswer, headers?: Record<string, string>): void {
  if (body === '') {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}
