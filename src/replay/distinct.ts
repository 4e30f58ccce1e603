import { fnv1a, FNV_OFFSET, mix32 } from '../core/hash.js';

/**
 * Counts distinct strings in bounded memory: exactly up to `exactLimit`, then as a HyperLogLog
 * estimate (2^14 registers, about 1 % error), so that a replay's memory never grows with the file.
 * The exact set holds 52-bit hashes, not the strings: a name cut out of a line would keep the
 * whole block of text it was cut from alive. (Two of 100,000 names share a hash with odds of
 * about one in a million.)
 */
export class DistinctCounter {
  #exact: Set<number> | undefined = new Set();
  readonly #exactLimit: number;
  readonly #registers = new Uint8Array(1 << 14);

  constructor(exactLimit = 100_000) {
    this.#exactLimit = exactLimit;
  }

  add(value: string): void {
    const hash = hash32(value, FNV_OFFSET);
    const index = hash >>> 18;
    const rank = Math.clz32((hash << 14) | (1 << 13)) + 1;
    if (rank > this.#registers[index]!) this.#registers[index] = rank;
    if (this.#exact) {
      this.#exact.add(hash * 2 ** 20 + (hash32(value, 0x9e3779b9) >>> 12));
      if (this.#exact.size > this.#exactLimit) this.#exact = undefined;
    }
  }

  /** Adds everything another counter has seen. */
  merge(other: DistinctCounter): void {
    for (let i = 0; i < this.#registers.length; i++) {
      if (other.#registers[i]! > this.#registers[i]!) this.#registers[i] = other.#registers[i]!;
    }
    if (this.#exact && other.#exact) {
      for (const value of other.#exact) this.#exact.add(value);
      if (this.#exact.size > this.#exactLimit) this.#exact = undefined;
    } else {
      this.#exact = undefined;
    }
  }

  get exact(): boolean {
    return this.#exact !== undefined;
  }

  get count(): number {
    if (this.#exact) return this.#exact.size;
    const m = this.#registers.length;
    let sum = 0;
    let zeros = 0;
    for (const register of this.#registers) {
      sum += 2 ** -register;
      if (register === 0) zeros++;
    }
    const estimate = ((0.7213 / (1 + 1.079 / m)) * m * m) / sum;
    // Linear counting is the better estimate while many registers are still empty.
    return Math.round(estimate <= 2.5 * m && zeros > 0 ? m * Math.log(m / zeros) : estimate);
  }
}

/** FNV-1a followed by murmur3's finaliser, so that every bit of the result depends on every character. */
function hash32(value: string, seed: number): number {
  return mix32(fnv1a(value, 0, value.length, seed));
}
