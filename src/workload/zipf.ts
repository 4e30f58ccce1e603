import type { Random } from './random.js';

/**
 * Samples ranks 1..n with P(k) ∝ 1/k^s in constant time and memory, whatever n: the
 * rejection-inversion method of Hörmann and Derflinger (1996), as in Apache Commons RNG's
 * RejectionInversionZipfSampler. A table of 10,000,000 cumulative weights would cost 80 MB and a
 * binary search per draw; this needs a few logarithms and rarely rejects.
 */
export class ZipfSampler {
  readonly #n: number;
  readonly #exponent: number;
  readonly #hIntegralX1: number;
  readonly #hIntegralN: number;
  readonly #s: number;
  readonly #random: Random;

  constructor(n: number, exponent: number, random: Random) {
    if (!(n >= 1) || !(exponent > 0)) throw new RangeError('ZipfSampler needs n >= 1 and exponent > 0');
    this.#n = n;
    this.#exponent = exponent;
    this.#random = random;
    this.#hIntegralX1 = this.#hIntegral(1.5) - 1;
    this.#hIntegralN = this.#hIntegral(n + 0.5);
    this.#s = 2 - this.#hIntegralInverse(this.#hIntegral(2.5) - this.#h(2));
  }

  /** A rank in 1..n; rank 1 is the most frequent. */
  sample(): number {
    for (;;) {
      const u = this.#hIntegralN + this.#random.next() * (this.#hIntegralX1 - this.#hIntegralN);
      const x = this.#hIntegralInverse(u);
      let k = Math.floor(x + 0.5);
      if (k < 1) k = 1;
      else if (k > this.#n) k = this.#n;
      if (k - x <= this.#s || u >= this.#hIntegral(k + 0.5) - this.#h(k)) return k;
    }
  }

  #h(x: number): number {
    return Math.exp(-this.#exponent * Math.log(x));
  }

  #hIntegral(x: number): number {
    const logX = Math.log(x);
    return helper2((1 - this.#exponent) * logX) * logX;
  }

  #hIntegralInverse(x: number): number {
    let t = x * (1 - this.#exponent);
    if (t < -1) t = -1; // rounding can push t just below -1, where log1p is undefined
    return Math.exp(helper1(t) * x);
  }
}

/** log1p(x)/x, accurate near 0 where the quotient loses precision. */
function helper1(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - 0.25 * x));
}

/** expm1(x)/x, accurate near 0. */
function helper2(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + (x / 3) * (1 + 0.25 * x));
}
