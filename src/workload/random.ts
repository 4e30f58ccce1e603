/**
 * Small, fast, seeded randomness. Everything the workload draws comes from here, so the same seed
 * gives the same events on every machine and Node version (Math.random cannot be seeded).
 */

import { mix32 } from '../core/hash.js';

export { mix32 };

/**
 * A 32-bit value derived from a seed and an index. For a fixed seed it is a bijection of the index
 * (0 ≤ index < 2^32), so distinct indices never share a value.
 */
export function hash32(seed: number, index: number): number {
  return mix32((index + mix32(seed ^ 0x9e3779b9)) >>> 0);
}

/** mulberry32: one 32-bit state, a few integer operations per draw; plenty for load generation. */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.#state ^ (this.#state >>> 15), 1 | this.#state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform number in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** A uniform integer in [0, n), for n ≤ 2^32. */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}
