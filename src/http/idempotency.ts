import type { IncomingMessage, ServerResponse } from 'node:http';
import { fingerprint, KeyedCommits, parseIdempotencyKey, type ClaimedKey, type KeyStore, type StoredAnswer } from '../core/idempotency.js';

/** Commits a request's events, with its key when it has one; resolves once they are counted. */
export type Commit = (key?: ClaimedKey) => Promise<void>;

/**
 * The `Idempotency-Key` header for the ingestion routes (see processOnce in core/idempotency.ts):
 * - no key: the request is processed as always;
 * - a new key: processed, and its answer stored with its counts in one write;
 * - a key already used for the same request: the stored answer, with `Idempotent-Replayed: true`;
 * - a key used for another request (method, path or body): 422;
 * - a key whose first request has not finished, here or in another process: 409, retry later;
 * - a key whose first request failed (503): that request released it, so a retry is processed.
 */
export class IdempotentRequests {
  readonly #commits: KeyedCommits;

  constructor(store: KeyStore, windowMs: number) {
    this.#commits = new KeyedCommits(store, windowMs);
  }

  /**
   * Answers `req` with `answer` once `commit` has counted its events, or, when its key was used
   * before, with what that use was answered. `body` is the request's, for its fingerprint.
   */
  async respond(req: IncomingMessage, res: ServerResponse, answer: StoredAnswer, commit: Commit, body?: Buffer): Promise<void> {
    const key = parseIdempotencyKey(idempotencyKeyHeader(req));
    if (key === undefined) {
      await commit();
      return send(res, answer);
    }
    const print = fingerprint(req.method ?? '', req.url ?? '', body);
    const outcome = await this.#commits.once({ key, fingerprint: print, answer }, commit);
    send(res, outcome.answer, outcome.replayed ? REPLAYED : undefined);
  }
}

const REPLAYED = { 'idempotent-replayed': 'true' };

/**
 * The header's values as sent. Node joins the repeats of a header it does not know with ", "
 * (`a, b`, a valid key), so repeats are seen only in the raw headers; those are looked at only
 * when the header is there at all.
 */
function idempotencyKeyHeader(req: IncomingMessage): string | string[] | undefined {
  const joined = req.headers['idempotency-key'];
  if (joined === undefined) return undefined;
  const values: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'idempotency-key') values.push(raw[i + 1]!);
  }
  return values.length === 1 ? values[0] : values;
}

function send(res: ServerResponse, { status, body }: StoredAnswer, headers?: Record<string, string>): void {
  if (body === '') {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}
