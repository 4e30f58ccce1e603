import type { DomainCounts } from '../core/status.js';
import { domainName } from './domain-names.js';
import { hash32, mix32, type Random } from './random.js';
import type { Workload, WorkloadEvent } from './workload.js';

/** The shape of the challenge's own event generator. */
export const CHALLENGE = {
  /** Each domain gets a random count of events in 1..maxEvents - 1. */
  maxEvents: 2500,
  /** A bounce whenever `i % floor(bounceSpacing * count) == 0`. */
  bounceSpacing: 0.35,
  /** Domains whose index is a multiple of this never bounce. */
  noBounceEvery: 25,
} as const;

/**
 * Domains whose events are being emitted at once. The challenge shuffles the events of all its
 * domains; with 10,000,000 domains that cannot be held, so events are interleaved within a
 * window of this many domains, each emitted in order from its first event to its last.
 */
export const CHALLENGE_WINDOW = 1024;

export interface ChallengePlan {
  /** Events of the domain. */
  count: number;
  /** A bounce at every event `i` with `i % bounceEvery == 0`; 0 means never. */
  bounceEvery: number;
}

/** How many events domain `index` gets, and where its bounces fall: a pure function of seed and index. */
export function challengePlan(seed: number, index: number): ChallengePlan {
  const count = 1 + (mix32(hash32(seed, index) ^ 0x27d4eb2d) % (CHALLENGE.maxEvents - 1));
  // floor(0.35 * count) is 0 below 3 events: `i % 0` is NaN in JavaScript, so such a domain never bounces.
  const bounceEvery = index % CHALLENGE.noBounceEvery === 0 ? 0 : Math.floor(CHALLENGE.bounceSpacing * count);
  return { count, bounceEvery };
}

/** The counts domain `index` ends with once all its events are in: what a log generator writes as expected. */
export function challengeCounts(seed: number, index: number): DomainCounts {
  const { count, bounceEvery } = challengePlan(seed, index);
  const bounced = bounceEvery > 0 ? Math.ceil(count / bounceEvery) : 0;
  return { delivered: count - bounced, bounced };
}

/**
 * The challenge's events, domain 0 first: a window of domains is live at a time and every event
 * comes from a random live domain. With `repeat` the domains start over after the last one (a
 * load test never runs out); without it the stream ends after the last event of the last domain.
 */
export class ChallengeEvents implements Workload {
  readonly #seed: number;
  readonly #domains: number;
  readonly #repeat: boolean;
  readonly #random: Random;
  readonly #readRandom: Random;
  // One entry per window slot, in parallel arrays: no object per live domain.
  readonly #index: Float64Array;
  readonly #position: Uint16Array;
  readonly #count: Uint16Array;
  readonly #bounceEvery: Uint16Array;
  #live = 0;
  #nextDomain = 0;

  constructor(options: { seed: number; domains: number; repeat: boolean; random: Random; readRandom: Random }) {
    this.#seed = options.seed;
    this.#domains = options.domains;
    this.#repeat = options.repeat;
    this.#random = options.random;
    this.#readRandom = options.readRandom;
    const window = Math.min(CHALLENGE_WINDOW, options.domains);
    this.#index = new Float64Array(window);
    this.#position = new Uint16Array(window);
    this.#count = new Uint16Array(window);
    this.#bounceEvery = new Uint16Array(window);
    while (this.#live < window) this.#load(this.#live++, this.#nextDomain++);
  }

  next(): WorkloadEvent | undefined {
    if (this.#live === 0) return undefined;
    const slot = this.#random.below(this.#live);
    const index = this.#index[slot]!;
    const i = this.#position[slot]!;
    const every = this.#bounceEvery[slot]!;
    const type = every > 0 && i % every === 0 ? 'bounced' : 'delivered';
    if ((this.#position[slot] = i + 1) === this.#count[slot]) this.#refill(slot);
    return { index, type };
  }

  /** A domain that is receiving events now. */
  sampleDomain(): number {
    return this.#live === 0 ? 0 : this.#index[this.#readRandom.below(this.#live)]!;
  }

  name(index: number): string {
    return domainName(this.#seed, index);
  }

  #refill(slot: number): void {
    if (this.#nextDomain === this.#domains && this.#repeat) this.#nextDomain = 0;
    if (this.#nextDomain < this.#domains) {
      this.#load(slot, this.#nextDomain++);
      return;
    }
    // Finished for good: move the last live domain into the freed slot.
    const last = --this.#live;
    this.#index[slot] = this.#index[last]!;
    this.#position[slot] = this.#position[last]!;
    this.#count[slot] = this.#count[last]!;
    this.#bounceEvery[slot] = this.#bounceEvery[last]!;
  }

  #load(slot: number, index: number): void {
    const plan = challengePlan(this.#seed, index);
    this.#index[slot] = index;
    this.#position[slot] = 0;
    this.#count[slot] = plan.count;
    this.#bounceEvery[slot] = plan.bounceEvery;
  }
}
