import { fnv1a } from '../../core/hash.js';

/**
 * Where svc keeps things in Redis, the same on one server and on a cluster:
 *
 * - `svc:c:{<tag>}<domain>`: a hash of the domain's counts, fields `d` (delivered) and `b`
 *   (bounced); a field never incremented is 0.
 * - `svc:g:{<tag>}<batch>`: a batch's guard, set with the batch's increments and expiring on its own.
 * - `svc:k:{<tag>}<key>`: an idempotency key, claimed (`c|…`) or done with its answer (`d|…`).
 * - `svc:r:{<tag>}<file fingerprint>`: a replay's checkpoint.
 *
 * The `{tag}` is Redis Cluster's hash tag: only it picks the key's hash slot. A domain's tag is
 * one of BUCKETS, by a hash of the domain, so a batch falls into at most BUCKETS groups whose keys
 * share a slot, each applied by one atomic script with its own guard (a cluster refuses a script
 * whose keys span slots). Each bucket's tag is chosen to land in its own 1/BUCKETS of the 16384
 * slots, so masters that split the slots evenly split the buckets evenly.
 */
export const BUCKETS = 64;
export const SLOTS = 16384;

/** CRC16/XMODEM, the hash Redis Cluster takes the key slot from (mod 16384). */
function crc16(text: string): number {
  let crc = 0;
  for (let i = 0; i < text.length; i++) {
    crc ^= text.charCodeAt(i) << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The slot Redis Cluster gives a hash tag's keys. */
export function slotOf(tag: string): number {
  return crc16(tag) % SLOTS;
}

/** For each bucket, the shortest base-36 number whose slot lies in the bucket's share of the slots. */
const TAGS: string[] = (() => {
  const tags: string[] = new Array(BUCKETS);
  let found = 0;
  for (let n = 0; found < BUCKETS; n++) {
    const tag = n.toString(36);
    const bucket = Math.floor((slotOf(tag) * BUCKETS) / SLOTS);
    if (tags[bucket] === undefined) {
      tags[bucket] = tag;
      found++;
    }
  }
  return tags;
})();

export function bucketOf(domain: string): number {
  return (fnv1a(domain) >>> 0) % BUCKETS;
}

export function tagOf(bucket: number): string {
  return TAGS[bucket]!;
}

export const counterKey = (domain: string, bucket = bucketOf(domain)) => `svc:c:{${TAGS[bucket]}}${domain}`;
export const guardKey = (bucket: number, batch: string) => `svc:g:{${TAGS[bucket]}}${batch}`;
export const idempotencyKey = (key: string) => `svc:k:{${TAGS[(fnv1a(key) >>> 0) % BUCKETS]}}${key}`;
export const checkpointKey = (source: string) => `svc:r:{${TAGS[(fnv1a(source) >>> 0) % BUCKETS]}}${source}`;
/** Cluster: the leases of live writers (a sorted set, expiry in ms by writer). */
export const WRITERS_KEY = 'svc:writers';
/** Cluster: a writer's batch log (a hash, batch number to batch), in a slot chosen by the writer. */
export const logKey = (writer: string) => `svc:l:{${TAGS[(fnv1a(writer) >>> 0) % BUCKETS]}}${writer}`;
