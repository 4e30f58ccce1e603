import type { DomainCounts } from '../core/status.js';
import { normalizeDomain } from '../core/domain.js';
import { parseEventType } from '../core/event.js';

/**
 * The records svc writes and reads; docs/kafka.md describes them for other producers.
 *
 * PREFIX.events holds two kinds of record, in any mix:
 * - svc's own (header `svc-format: deltas-v1`): one group commit's increments for the domains of
 *   one partition, `{"counts":{"example.com":[delivered,bounced],…}}`, plus, for a request that
 *   carried an Idempotency-Key, `"key":{"key":…,"expiresAt":ms}` (then the record holds that one
 *   request's events and nothing else);
 * - one event, as any producer may write it: key the normalised domain, value
 *   `{"domain":"example.com","type":"delivered"}` (the NDJSON line of POST /events).
 *
 * PREFIX.counts (compacted) holds, in the partition of the events they come from:
 * - key the domain, value `{"delivered":n,"bounced":m}`: the domain's totals;
 * - key `svc/next-offset`, value `{"next":n}`: the events of the partition below offset n are counted;
 * - key `svc/key/<Idempotency-Key>`, value `{"expiresAt":ms}`: a key already counted in the partition.
 * A domain never holds `/`, so the two `svc/` keys never meet a domain's in compaction.
 */
export const FORMAT_HEADER = 'svc-format';
export const DELTAS_FORMAT = 'deltas-v1';
export const NEXT_OFFSET_KEY = 'svc/next-offset';
export const IDEMPOTENCY_KEY_PREFIX = 'svc/key/';

export interface RecordKey {
  key: string;
  expiresAt: number;
}

/**
 * What one record of PREFIX.events adds: domain → [delivered, bounced], the shape deltas-v1 writes
 * (read as parsed, so that a materializer adds up a record of 1,000 domains without copying it).
 */
export type RecordCounts = Record<string, [number, number]>;

export interface EventsRecord {
  counts: RecordCounts;
  key?: RecordKey;
}

export function encodeDeltas(counts: Iterable<[string, DomainCounts]>, key?: RecordKey): Buffer {
  // Written as text, not as an object for JSON.stringify: serve-http encodes every event it
  // acknowledges once, and building a keyed object of the domains cost it 5% of its CPU.
  let json = '{"counts":{';
  let separator = '';
  for (const [domain, { delivered, bounced }] of counts) {
    json += `${separator}${JSON.stringify(domain)}:[${delivered},${bounced}]`;
    separator = ',';
  }
  json += key ? `},"key":${JSON.stringify({ key: key.key, expiresAt: key.expiresAt })}}` : '}}';
  return Buffer.from(json);
}

/** Reads one record of PREFIX.events; throws (a ValidationError for a bad event) when it is not one. */
export function decodeEventsRecord(value: Buffer | null, format: string | undefined): EventsRecord {
  if (value === null) throw new Error('record has no value');
  const parsed = JSON.parse(value.toString('utf8')) as unknown;
  if (format === DELTAS_FORMAT) return decodeDeltas(parsed);
  if (typeof parsed !== 'object' || parsed === null) throw new Error('record is not a JSON object');
  const event = parsed as { domain?: unknown; type?: unknown };
  const domain = normalizeDomain(event.domain as string);
  const type = parseEventType(event.type);
  return { counts: { [domain]: type === 'delivered' ? [1, 0] : [0, 1] } };
}

function decodeDeltas(parsed: unknown): EventsRecord {
  const { counts, key } = parsed as { counts?: Record<string, unknown>; key?: { key?: unknown; expiresAt?: unknown } };
  if (typeof counts !== 'object' || counts === null || Array.isArray(counts)) throw new Error(`a ${DELTAS_FORMAT} record without counts`);
  let renamed: Array<[string, string]> | undefined;
  for (const domain in counts) {
    const pair = counts[domain];
    if (!Array.isArray(pair) || pair.length !== 2 || !isCount(pair[0]) || !isCount(pair[1])) throw new Error(`bad counts for ${JSON.stringify(domain)}`);
    // Written normalised by svc; normalised again so that a hand-written record cannot split a domain.
    const name = normalizeDomain(domain);
    if (name !== domain) (renamed ??= []).push([domain, name]);
  }
  const result = renamed ? merged(counts as RecordCounts, renamed) : (counts as RecordCounts);
  if (key === undefined) return { counts: result };
  if (typeof key.key !== 'string' || typeof key.expiresAt !== 'number') throw new Error('bad idempotency key');
  return { counts: result, key: { key: key.key, expiresAt: key.expiresAt } };
}

/** A hand-written record's counts under normalised names (`Example.COM` and `example.com` become one). */
function merged(counts: RecordCounts, renamed: Array<[string, string]>): RecordCounts {
  for (const [domain, name] of renamed) {
    const [delivered, bounced] = counts[domain]!;
    delete counts[domain];
    const into = counts[name];
    if (into) counts[name] = [into[0] + delivered, into[1] + bounced];
    else counts[name] = [delivered, bounced];
  }
  return counts;
}

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

export const encodeCounts = (counts: DomainCounts) => Buffer.from(JSON.stringify({ delivered: counts.delivered, bounced: counts.bounced }));

/** One record of PREFIX.counts, as a reader of it sees it. */
export type CountsRecord =
  | { kind: 'domain'; domain: string; counts: DomainCounts }
  | { kind: 'next-offset'; next: number }
  | { kind: 'key'; key: string; expiresAt: number }
  | { kind: 'deleted'; key: string };

export function decodeCountsRecord(key: Buffer | null, value: Buffer | null): CountsRecord {
  if (key === null) throw new Error('a PREFIX.counts record without a key');
  const name = key.toString('utf8');
  if (value === null) return { kind: 'deleted', key: name };
  const parsed = JSON.parse(value.toString('utf8'));
  if (name === NEXT_OFFSET_KEY) return { kind: 'next-offset', next: parsed.next };
  if (name.startsWith(IDEMPOTENCY_KEY_PREFIX)) return { kind: 'key', key: name.slice(IDEMPOTENCY_KEY_PREFIX.length), expiresAt: parsed.expiresAt };
  return { kind: 'domain', domain: name, counts: { delivered: parsed.delivered, bounced: parsed.bounced } };
}
