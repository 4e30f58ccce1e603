import type { ClaimedKey, KeyStore } from '../core/idempotency.js';
import type { DomainCounts } from '../core/status.js';

/** Per-domain increments of one batch, keyed by normalised domain. */
export type Deltas = ReadonlyMap<string, DomainCounts>;

/**
 * How far a replay of one file has got. Stored with (LMDB: in the same transaction as) or right
 * after (MongoDB: idempotently) the counts it covers.
 */
export interface ReplayCheckpoint {
  /** Fingerprint of the file's content. */
  source: string;
  /** One application of the file; `--force` starts a new one. */
  run: string;
  /** Chunks applied so far; each chunk's number is one more than the last. */
  chunk: number;
  /** The chunk size the run cuts the file with; a resumed run keeps it, so that its chunks are the same. */
  chunkBytes: number;
  /** Bytes of (decompressed) content and lines fully applied. */
  offset: number;
  lines: number;
  events: number;
  invalid: number;
  done: boolean;
  /**
   * Embedded store: the batch ending at `partial.chunk` is applied for every domain up to
   * `partial.cursor` (it is written in sorted parts); the same batch sent again resumes there.
   */
  partial?: { chunk: number; cursor: string };
}

/** What a batch carries besides its deltas. */
export interface BatchExtras {
  /** Replay: where the batch ends in its file. */
  checkpoint?: ReplayCheckpoint;
  /** The idempotency keys of the batch's requests, claimed by them (see KeyStore), with their answers. */
  keys?: readonly ClaimedKey[];
}

/**
 * What every store implements. The core never asks which store it has.
 * Stores throw StoreUnavailableError when they cannot be reached.
 */
export interface CounterStore extends KeyStore {
  /**
   * True when idempotency keys are checked where the counts are made rather than here (Kafka):
   * the engine then gives each keyed request a batch of its own.
   */
  readonly keyedBatchesAlone?: boolean;
  /**
   * Batches the engine commits at once unless the operator says otherwise: a network store hides
   * one batch's round trip behind the others'. Unset: one (the embedded store's writer is single).
   */
  readonly commitsInFlight?: number;
  /**
   * Adds every delta atomically: after a crash, all of the batch is there or none of it. With a
   * checkpoint (replay), the batch is also applied at most once per `run` and `chunk`, even when
   * the same call is made again after a failure, and the checkpoint is recorded with it. With
   * keys, they are stored with the deltas (see each store for how atomically).
   */
  applyBatch(deltas: Deltas, extras?: BatchExtras): Promise<void>;
  /** The last checkpoint recorded for a file fingerprint. */
  getCheckpoint(source: string): Promise<ReplayCheckpoint | undefined>;
  /** Counts of one domain, or undefined if it was never seen. */
  get(domain: string): Promise<DomainCounts | undefined>;
  /** Counts of many domains in one round trip; domains never seen are absent from the map. */
  getMany(domains: readonly string[]): Promise<Map<string, DomainCounts>>;
  /** Prepares the store for production use (idempotent); returns what it did, for the operator. */
  setup(): Promise<string[]>;
  /** Resolves when the store is reachable; throws StoreUnavailableError otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
