import { hash32, Random } from './random.js';

/** The top-level domains of the challenge's generator. */
export const TLDS = ['net', 'com', 'org', 'io', 'gov'] as const;

/** Letters in the first label of every generated name. */
export const NAME_LENGTH = 14;

/** The index is written into the name, so at most 2^32 distinct names exist per seed. */
export const MAX_DOMAINS = 2 ** 32;

// Seven base-26 letters hold any 32-bit value (26^7 ≈ 8.0e9 > 2^32).
const ENCODED_LETTERS = 7;
const codes = new Array<number>(NAME_LENGTH);

/**
 * The name of domain `index` (0 ≤ index < 2^32) for `seed`: 14 mixed-case letters under one of
 * net/com/org/io/gov, e.g. `qWeRtYuIoPaSdF.org`. A pure function, so a verifier or a log
 * generator recomputes any name from its index without storing it. Seven of the letters encode a
 * keyed bijection of the index, so two indices never give the same name, even once the service
 * has lowercased it; the other letters, the case and the TLD are only decoration.
 */
export function domainName(seed: number, index: number): string {
  let code = hash32(seed, index);
  const random = new Random(code ^ 0x5bd1e995);
  for (let i = 0; i < ENCODED_LETTERS; i++) {
    codes[i] = letter(code % 26, random);
    code = Math.floor(code / 26);
  }
  for (let i = ENCODED_LETTERS; i < NAME_LENGTH; i++) codes[i] = letter(random.below(26), random);
  return String.fromCharCode(...codes) + '.' + TLDS[random.below(TLDS.length)];
}

function letter(n: number, random: Random): number {
  return (random.nextUint32() & 1 ? 0x41 : 0x61) + n;
}
