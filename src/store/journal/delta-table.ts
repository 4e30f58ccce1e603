import { fnv1a, fnv1aBytes } from '../../core/hash.js';
import { byCodeUnit, SortedDeltas } from '../sorted-deltas.js';

/**
 * Counts per domain in flat typed arrays: open-addressing hash tables over arenas of ASCII domain
 * bytes. The journal's index holds every domain not yet applied, in every process, and at 10M
 * uniform domains that is millions of entries. A Map of string keys costs about 90 bytes per entry
 * plus a string and a table for the garbage collector to trace, and its rehashes need twice the
 * memory at once; this costs about 50 bytes, nothing to trace, and takes entries straight from a
 * record's bytes without making a string of them. It is split in 64 shards by hash: a shard that
 * doubles re-places a 64th of the entries, so no insertion stops the event loop for long (one
 * table of 4M entries stopped it for 300 ms as it grew).
 */
export class DeltaTable {
  readonly #shards: Shard[] = Array.from({ length: SHARDS }, () => new Shard(16));

  get size(): number {
    let size = 0;
    for (const shard of this.#shards) size += shard.size;
    return size;
  }

  /** Bytes held by the table's arrays. */
  get bytes(): number {
    let bytes = 0;
    for (const shard of this.#shards) bytes += shard.bytes;
    return bytes;
  }

  /** Adds to the counts of a domain given as a string (ASCII, at most 255 characters). */
  add(domain: string, delivered: number, bounced: number): void {
    const hash = hashString(domain);
    this.#shards[hash >>> SHARD_SHIFT]!.add(domain, hash, delivered, bounced);
  }

  /** Adds to the counts of a domain given as `length` bytes of `buffer` at `start`. */
  addBytes(buffer: Uint8Array, start: number, length: number, delivered: number, bounced: number): void {
    const hash = hashBytes(buffer, start, length);
    this.#shards[hash >>> SHARD_SHIFT]!.addBytes(buffer, start, length, hash, delivered, bounced);
  }

  /** The entry of a domain, or -1: a number for delivered(), bounced() and domain(). */
  find(domain: string): number {
    const hash = hashString(domain);
    const shard = hash >>> SHARD_SHIFT;
    const entry = this.#shards[shard]!.find(domain, hash);
    return entry < 0 ? -1 : shard * SHARD_SPAN + entry;
  }

  delivered(entry: number): number {
    return this.#shards[Math.floor(entry / SHARD_SPAN)]!.delivered(entry % SHARD_SPAN);
  }

  bounced(entry: number): number {
    return this.#shards[Math.floor(entry / SHARD_SPAN)]!.bounced(entry % SHARD_SPAN);
  }

  domain(entry: number): string {
    return this.#shards[Math.floor(entry / SHARD_SPAN)]!.domain(entry % SHARD_SPAN);
  }

  /** Every entry, sorted by domain. */
  sorted(): SortedDeltas {
    const keys: string[] = [];
    const delivered: number[] = [];
    const bounced: number[] = [];
    for (const shard of this.#shards) {
      for (let entry = 0; entry < shard.size; entry++) {
        keys.push(shard.domain(entry));
        delivered.push(shard.delivered(entry));
        bounced.push(shard.bounced(entry));
      }
    }
    const order = Array.from({ length: keys.length }, (_, i) => i).sort((a, b) => byCodeUnit(keys[a]!, keys[b]!));
    return new SortedDeltas(
      order.map((i) => keys[i]!),
      Float64Array.from(order, (i) => delivered[i]!),
      Float64Array.from(order, (i) => bounced[i]!),
    );
  }
}

const SHARDS = 64;
/** The top six bits of a hash pick the shard; the rest of it, the slot. */
const SHARD_SHIFT = 26;
/** Entry numbers within a shard stay below this. */
const SHARD_SPAN = 2 ** 26;

/** One shard of a DeltaTable. */
class Shard {
  /** Entry index + 1 per slot (0: empty); the capacity is a power of two, at most half full. */
  #slots: Int32Array;
  #hashes: Uint32Array;
  #offsets: Uint32Array;
  #lengths: Uint8Array;
  #delivered: Float64Array;
  #bounced: Float64Array;
  #arena: Buffer;
  #used = 0;
  #size = 0;

  constructor(capacity: number) {
    this.#slots = new Int32Array(capacity * 2);
    this.#hashes = new Uint32Array(capacity);
    this.#offsets = new Uint32Array(capacity);
    this.#lengths = new Uint8Array(capacity);
    this.#delivered = new Float64Array(capacity);
    this.#bounced = new Float64Array(capacity);
    this.#arena = Buffer.allocUnsafe(capacity * 24);
  }

  get size(): number {
    return this.#size;
  }

  /** Bytes held by the table's arrays. */
  get bytes(): number {
    return this.#slots.byteLength + this.#hashes.length * 25 + this.#arena.length;
  }

  add(domain: string, hash: number, delivered: number, bounced: number): void {
    let entry = this.#findString(domain, hash);
    if (entry < 0) entry = this.#insert(hash, domain.length, (at) => this.#arena.write(domain, at, 'latin1'));
    this.#delivered[entry]! += delivered;
    this.#bounced[entry]! += bounced;
  }

  addBytes(buffer: Uint8Array, start: number, length: number, hash: number, delivered: number, bounced: number): void {
    let entry = this.#findBytes(buffer, start, length, hash);
    if (entry < 0) entry = this.#insert(hash, length, (at) => this.#arena.set(buffer.subarray(start, start + length), at));
    this.#delivered[entry]! += delivered;
    this.#bounced[entry]! += bounced;
  }

  find(domain: string, hash: number): number {
    return this.#findString(domain, hash);
  }

  delivered(entry: number): number {
    return this.#delivered[entry]!;
  }

  bounced(entry: number): number {
    return this.#bounced[entry]!;
  }

  domain(entry: number): string {
    const at = this.#offsets[entry]!;
    return this.#arena.toString('latin1', at, at + this.#lengths[entry]!);
  }

  #findString(domain: string, hash: number): number {
    const mask = this.#slots.length - 1;
    const length = domain.length;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.#slots[slot]! - 1;
      if (entry < 0) return -1;
      if (this.#hashes[entry] !== hash || this.#lengths[entry] !== length) continue;
      const at = this.#offsets[entry]!;
      let i = 0;
      while (i < length && this.#arena[at + i] === domain.charCodeAt(i)) i++;
      if (i === length) return entry;
    }
  }

  #findBytes(buffer: Uint8Array, start: number, length: number, hash: number): number {
    const mask = this.#slots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.#slots[slot]! - 1;
      if (entry < 0) return -1;
      if (this.#hashes[entry] !== hash || this.#lengths[entry] !== length) continue;
      const at = this.#offsets[entry]!;
      let i = 0;
      while (i < length && this.#arena[at + i] === buffer[start + i]) i++;
      if (i === length) return entry;
    }
  }

  #insert(hash: number, length: number, copy: (at: number) => void): number {
    if (this.#size === this.#hashes.length) this.#growEntries();
    if (this.#used + length > this.#arena.length) this.#growArena(length);
    const entry = this.#size++;
    this.#hashes[entry] = hash;
    this.#offsets[entry] = this.#used;
    this.#lengths[entry] = length;
    copy(this.#used);
    this.#used += length;
    this.#place(entry);
    return entry;
  }

  #place(entry: number): void {
    const mask = this.#slots.length - 1;
    let slot = this.#hashes[entry]! & mask;
    while (this.#slots[slot] !== 0) slot = (slot + 1) & mask;
    this.#slots[slot] = entry + 1;
  }

  #growEntries(): void {
    const capacity = this.#hashes.length * 2;
    this.#hashes = grown(this.#hashes, new Uint32Array(capacity));
    this.#offsets = grown(this.#offsets, new Uint32Array(capacity));
    this.#lengths = grown(this.#lengths, new Uint8Array(capacity));
    this.#delivered = grown(this.#delivered, new Float64Array(capacity));
    this.#bounced = grown(this.#bounced, new Float64Array(capacity));
    this.#slots = new Int32Array(capacity * 2);
    for (let entry = 0; entry < this.#size; entry++) this.#place(entry);
  }

  #growArena(needed: number): void {
    const arena = Buffer.allocUnsafe(Math.max(this.#arena.length * 2, this.#used + needed));
    this.#arena.copy(arena, 0, 0, this.#used);
    this.#arena = arena;
  }
}

function grown<T extends Uint8Array | Uint32Array | Float64Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

// The same hash from a string and from its ASCII bytes.
const hashString = (text: string) => fnv1a(text) >>> 0;
const hashBytes = (buffer: Uint8Array, start: number, length: number) => fnv1aBytes(buffer, start, start + length) >>> 0;
