/**
 * Which partition of PREFIX.events (and PREFIX.counts) a domain belongs to: the partition Kafka's
 * Java client picks for a record keyed by the normalised domain (its default partitioner:
 * murmur2 of the key's UTF-8 bytes, sign bit cleared, modulo the partition count). Any producer
 * that keys its records by the normalised domain with that partitioner (the Java client, librdkafka
 * with `partitioner=murmur2_random`, kafkajs's DefaultPartitioner, franz-go's StickyKeyPartitioner
 * with SaramaCompatHasher off) lands a domain's events in the same partition as svc does.
 */
export function partitionOf(domain: string, partitions: number): number {
  return (murmur2(Buffer.from(domain, 'utf8')) & 0x7fffffff) % partitions;
}

/** MurmurHash2, 32-bit, with the seed Kafka uses (0x9747b28c). */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const blocks = length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & 3;
  if (tail === 3) h ^= data[blocks + 2]! << 16;
  if (tail >= 2) h ^= data[blocks + 1]! << 8;
  if (tail >= 1) {
    h ^= data[blocks]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
