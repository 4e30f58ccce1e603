import type { Long } from 'mongodb';
import type { AnyBulkWriteOperation } from 'mongodb';
import type { ClaimedKey } from '../../core/idempotency.js';
import type { DomainCounts } from '../../core/status.js';
import type { ReplayCheckpoint } from '../counter-store.js';

/** One counter document per domain; the domain is the `_id`, so a hashed shard key on `_id` spreads them. */
export interface DomainDocument {
  _id: string;
  delivered: Long | number;
  bounced: Long | number;
  /** Per writer slot, the last of its batches applied to this document (see BatchLog). */
  w?: Record<string, number>;
}

/**
 * A live batch, logged before any of it is written and deleted once all of it is: if its writer
 * dies half-way, whoever takes the writer's slot applies it again, and the documents' guards
 * skip what was already applied.
 */
export interface BatchDocument {
  _id: string;
  slot: number;
  seq: number;
  /** The deltas as three arrays of one length (FerretDB stores no arrays of arrays). */
  domains: string[];
  delivered: number[];
  bounced: number[];
  keys: Array<Omit<ClaimedKey, 'claimedAt'> & { claimedBy: string }>;
}

export interface CheckpointDocument extends Omit<ReplayCheckpoint, 'source'> {
  _id: string;
}

/**
 * An idempotency key: claimed by a request in flight (`claimedBy`, `claimedAt`), or done with the
 * answer its request got (`expiresAt`, which a TTL index removes it after).
 */
export interface KeyDocument {
  _id: string;
  fingerprint: string;
  claimedBy?: string;
  claimedAt?: Date;
  expiresAt?: Date;
  status?: number;
  body?: string;
}

export type Operation = AnyBulkWriteOperation<DomainDocument>;

export type Entry = [domain: string, delivered: number, bounced: number];

export function entriesOf(batch: BatchDocument): Entry[] {
  return batch.domains.map((domain, i) => [domain, batch.delivered[i]!, batch.bounced[i]!]);
}

export function countsOf(document: DomainDocument): DomainCounts {
  return { delivered: Number(document.delivered), bounced: Number(document.bounced) };
}
