import { createHash } from 'node:crypto';
import { InDoubtError, KeyInFlightError, KeyMismatchError, ValidationError } from './errors.js';

/**
 * Idempotency keys (the IETF httpapi draft's `Idempotency-Key`, as Stripe's API uses it): the
 * first request with a key is processed and its answer stored with the counts it adds, in the
 * same atomic write; a repeat gets the stored answer and counts nothing.
 */

/** The answer a request got, stored with its key and sent again to its repeats. */
export interface StoredAnswer {
  status: number;
  /** The JSON body, or '' for none. */
  body: string;
}

/** A key as stored with the counts of the request that used it first. */
export interface KeyRecord extends StoredAnswer {
  key: string;
  /** Of the request's method, path and body (see fingerprint()): a repeat must carry the same. */
  fingerprint: string;
  /** When the key is forgotten, in ms since the epoch. */
  expiresAt: number;
}

/** A key as its request hands it to the store with the batch: claimed at `claimedAt` (the `now` of claimKey). */
export interface ClaimedKey extends KeyRecord {
  claimedAt: number;
}

/** What a store knows of a key when a request claims it. */
export type KeyClaim =
  /** Nobody used the key (or it expired): this request now holds it, and must store or release it. */
  | { state: 'claimed' }
  /** Another request holds it and has not finished: the draft's answer is 409. */
  | { state: 'in-flight'; fingerprint: string }
  /** A request used it and got this answer. */
  | { state: 'done'; record: KeyRecord };

/** What a store does with keys, besides storing them with the counts (applyBatch). */
export interface KeyStore {
  /** Looks the key up and, if nobody holds it, holds it for this request, atomically across processes. */
  claimKey(key: string, fingerprint: string, now: number): Promise<KeyClaim>;
  /** Lets go of a key claimed by a request whose batch failed: nothing of it was counted. */
  releaseKey(key: string): Promise<void>;
}

export const MAX_KEY_LENGTH = 255;

/**
 * The key of a request's header (or of another protocol's field, named `name` in errors), or
 * undefined without one. Throws ValidationError (400) for a bad one.
 */
export function parseIdempotencyKey(value: string | string[] | undefined, name = 'Idempotency-Key'): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw new ValidationError(`send one ${name} header, not several`);
  if (value.length === 0 || value.length > MAX_KEY_LENGTH) {
    throw new ValidationError(`${name} must be 1 to ${MAX_KEY_LENGTH} characters long`);
  }
  // Printable ASCII: the key is stored and compared byte for byte.
  if (!/^[\x20-\x7e]+$/.test(value)) throw new ValidationError(`${name} must hold printable ASCII characters only`);
  return value;
}

/** What identifies a request: a key sent again with another method, path or body is a client's mistake (422). */
export function fingerprint(method: string, path: string, body?: Buffer): string {
  const hash = createHash('sha256').update(`${method} ${path}\n`);
  if (body !== undefined) hash.update(body);
  return hash.digest('hex').slice(0, 32);
}

/** A request that carries a key, as `processOnce` takes it. */
export interface KeyedRequest {
  key: string;
  fingerprint: string;
  /** The answer the request gets when processed, worked out before anything is counted so that it is stored with the counts. */
  answer: StoredAnswer;
}

/**
 * Processes a keyed request at most once per key: claims the key, then commits the request's
 * events with it (`commit`), or returns the answer a first use of the key got. Throws
 * KeyInFlightError while another request holds the key, KeyMismatchError for a key used for
 * another request, and the commit's own error after releasing the key (nothing was counted),
 * unless the commit may have landed (InDoubtError): then the key stays claimed.
 */
export async function processOnce(
  store: KeyStore,
  request: KeyedRequest,
  windowMs: number,
  commit: (key: ClaimedKey) => Promise<void>,
): Promise<{ answer: StoredAnswer; replayed: boolean }> {
  const { key, fingerprint: print, answer } = request;
  const now = Date.now();
  const claim = await store.claimKey(key, print, now);
  if (claim.state === 'in-flight') throw claim.fingerprint === print ? new KeyInFlightError() : new KeyMismatchError();
  if (claim.state === 'done') {
    if (claim.record.fingerprint !== print) throw new KeyMismatchError();
    return { answer: claim.record, replayed: true };
  }
  try {
    await commit({ key, fingerprint: print, claimedAt: now, expiresAt: now + windowMs, ...answer });
  } catch (error) {
    if (!(error instanceof InDoubtError)) await store.releaseKey(key).catch(() => {});
    throw error;
  }
  return { answer, replayed: false };
}

/**
 * processOnce for one process's requests, whatever their protocol (HTTP header or gRPC field):
 * a repeat of a key this process is still processing is answered without a store round trip.
 */
export class KeyedCommits {
  readonly #store: KeyStore;
  readonly #windowMs: number;
  /** Keys of this process's requests in flight: their fingerprints and outcomes. */
  readonly #inFlight = new Map<string, { fingerprint: string; outcome: Promise<{ answer: StoredAnswer; replayed: boolean }> }>();

  constructor(store: KeyStore, windowMs: number) {
    this.#store = store;
    this.#windowMs = windowMs;
  }

  /**
   * processOnce. A repeat of a request in flight here is refused (KeyInFlightError), or with
   * `waitForFirst` waits for it: then it gets the first's answer as a replay, or, if the first
   * failed and let go of its key, is processed itself. (gRPC waits: a refusal would end a
   * stream that resends its unacknowledged batches while the first copies are being committed.)
   */
  async once(
    request: KeyedRequest,
    commit: (key: ClaimedKey) => Promise<void>,
    waitForFirst = false,
  ): Promise<{ answer: StoredAnswer; replayed: boolean }> {
    const held = this.#inFlight.get(request.key);
    if (held !== undefined) {
      if (held.fingerprint !== request.fingerprint) throw new KeyMismatchError();
      if (!waitForFirst) throw new KeyInFlightError();
      const first = await held.outcome.catch(() => undefined);
      return first ? { answer: first.answer, replayed: true } : this.once(request, commit, waitForFirst);
    }
    const entry = { fingerprint: request.fingerprint, outcome: processOnce(this.#store, request, this.#windowMs, commit) };
    this.#inFlight.set(request.key, entry);
    try {
      return await entry.outcome;
    } finally {
      if (this.#inFlight.get(request.key) === entry) this.#inFlight.delete(request.key);
    }
  }
}
