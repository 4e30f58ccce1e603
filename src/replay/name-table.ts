/**
 * A hash table from domain names as written to values, for one replay chunk, keyed by text that
 * need not be cut out of its line: a lookup takes the line, where the name sits in it and its hash
 * (computed by the scanner on its way through), and allocates nothing. Names are compared code unit
 * by code unit with a copy kept in a typed array. Why not a Map: a Map needs the name as a string
 * of its own per event, and V8 compares such slices of lines with one another several times
 * slower than this (10M events of 8,747 domains: 2.5 s more than the parse alone, against 0.3 s).
 */
export class NameTable<T> {
  /** Open addressing, linear probing: each slot holds an entry index + 1, or 0 when empty. */
  #slots: Int32Array;
  #hashes: number[] = [];
  #starts: number[] = [];
  #lengths: number[] = [];
  #values: T[] = [];
  #chars = new Uint16Array(16 * 1024);
  #charsUsed = 0;

  constructor(initialSlots = 1024) {
    this.#slots = new Int32Array(initialSlots);
  }

  get size(): number {
    return this.#values.length;
  }

  /** The value stored for text[start, end), whose fnv1a is `hash`. */
  get(text: string, start: number, end: number, hash: number): T | undefined {
    const index = this.#find(text, start, end, hash);
    return index < 0 ? undefined : this.#values[index];
  }

  /** Stores a value for a name that is not in the table yet. */
  add(text: string, start: number, end: number, hash: number, value: T): void {
    const length = end - start;
    if (this.#charsUsed + length > this.#chars.length) this.#growChars(length);
    for (let i = 0; i < length; i++) this.#chars[this.#charsUsed + i] = text.charCodeAt(start + i);
    this.#hashes.push(hash);
    this.#starts.push(this.#charsUsed);
    this.#lengths.push(length);
    this.#values.push(value);
    this.#charsUsed += length;
    // Kept under half full, so that probes stay short.
    if (this.#values.length * 2 > this.#slots.length) this.#rehash(this.#slots.length * 2);
    else this.#place(this.#values.length - 1);
  }

  values(): readonly T[] {
    return this.#values;
  }

  #find(text: string, start: number, end: number, hash: number): number {
    const mask = this.#slots.length - 1;
    const length = end - start;
    for (let slot = mix(hash) & mask; ; slot = (slot + 1) & mask) {
      const index = this.#slots[slot]! - 1;
      if (index < 0) return -1;
      if (this.#hashes[index] === hash && this.#lengths[index] === length && this.#equals(index, text, start, length)) return index;
    }
  }

  #equals(index: number, text: string, start: number, length: number): boolean {
    const chars = this.#chars;
    const at = this.#starts[index]!;
    for (let i = 0; i < length; i++) if (chars[at + i] !== text.charCodeAt(start + i)) return false;
    return true;
  }

  #place(index: number): void {
    const mask = this.#slots.length - 1;
    let slot = mix(this.#hashes[index]!) & mask;
    while (this.#slots[slot] !== 0) slot = (slot + 1) & mask;
    this.#slots[slot] = index + 1;
  }

  #rehash(slots: number): void {
    this.#slots = new Int32Array(slots);
    for (let i = 0; i < this.#values.length; i++) this.#place(i);
  }

  #growChars(needed: number): void {
    const chars = new Uint16Array(Math.max(this.#chars.length * 2, this.#charsUsed + needed));
    chars.set(this.#chars.subarray(0, this.#charsUsed));
    this.#chars = chars;
  }
}

/** FNV-1a's low bits are weak on short keys; fold the high bits in before masking. */
function mix(hash: number): number {
  return hash ^ (hash >>> 16);
}
