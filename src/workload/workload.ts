import type { EventType } from '../core/event.js';
import { ValidationError } from '../core/errors.js';
import { ChallengeEvents } from './challenge.js';
import { domainName, MAX_DOMAINS } from './domain-names.js';
import { mix32, Random } from './random.js';
import { ZipfSampler } from './zipf.js';

export const DISTRIBUTIONS = ['uniform', 'zipf', 'challenge'] as const;
export type Distribution = (typeof DISTRIBUTIONS)[number];

export interface WorkloadOptions {
  distribution: Distribution;
  /** Distinct domains, named by `domainName(seed, index)` for index 0..domains - 1. */
  domains: number;
  /** Share of bounces for uniform and zipf; challenge has its own pattern. */
  bounceRatio: number;
  seed: number;
  /** Zipf exponent s: P(rank k) ∝ 1/k^s. */
  zipfExponent: number;
  /** challenge: start over after the last domain instead of ending. */
  repeat: boolean;
}

export const DEFAULT_WORKLOAD_OPTIONS = {
  distribution: 'uniform',
  domains: 10_000_000,
  bounceRatio: 0.1,
  seed: 1,
  zipfExponent: 1,
  repeat: true,
} as const satisfies WorkloadOptions;

/** One event: the domain is an index, named by `Workload.name`, so events stay small. */
export interface WorkloadEvent {
  index: number;
  type: EventType;
}

export interface Workload {
  /** The next event, or undefined once a finite workload has no more. */
  next(): WorkloadEvent | undefined;
  /** A domain index drawn like the events' domains, for reads; does not change the events. */
  sampleDomain(): number;
  /** The name of domain `index`: `domainName(seed, index)`. */
  name(index: number): string;
}

// Events and reads draw from separate streams, so mixing in reads leaves the events unchanged.
const EVENT_STREAM = 0x45564e54;
const READ_STREAM = 0x52454144;

/** The event sequence of a seed: the same options always give the same sequence. */
export function createWorkload(options: Partial<WorkloadOptions> = {}): Workload {
  const resolved = { ...DEFAULT_WORKLOAD_OPTIONS, ...options };
  const { distribution, domains, bounceRatio, seed } = resolved;
  if (!Number.isInteger(domains) || domains < 1 || domains > MAX_DOMAINS) {
    throw new ValidationError(`domains: expected an integer from 1 to ${MAX_DOMAINS}`);
  }
  if (!(bounceRatio >= 0 && bounceRatio <= 1)) throw new ValidationError('bounceRatio: expected a number from 0 to 1');
  const random = new Random(mix32(seed ^ EVENT_STREAM));
  const readRandom = new Random(mix32(seed ^ READ_STREAM));
  switch (distribution) {
    case 'uniform':
      return new SampledEvents(seed, bounceRatio, random, () => random.below(domains), () => readRandom.below(domains));
    case 'zipf': {
      const events = new ZipfSampler(domains, resolved.zipfExponent, random);
      const reads = new ZipfSampler(domains, resolved.zipfExponent, readRandom);
      return new SampledEvents(seed, bounceRatio, random, () => events.sample() - 1, () => reads.sample() - 1);
    }
    case 'challenge':
      return new ChallengeEvents({ seed, domains, repeat: resolved.repeat, random, readRandom });
    default:
      throw new ValidationError(`distribution: expected one of ${DISTRIBUTIONS.join(', ')}`);
  }
}

/** Draws the domain of each event independently from a distribution over indices. */
class SampledEvents implements Workload {
  readonly #seed: number;
  readonly #bounceRatio: number;
  readonly #random: Random;
  readonly #sampleEvent: () => number;
  readonly #sampleRead: () => number;

  constructor(seed: number, bounceRatio: number, random: Random, sampleEvent: () => number, sampleRead: () => number) {
    this.#seed = seed;
    this.#bounceRatio = bounceRatio;
    this.#random = random;
    this.#sampleEvent = sampleEvent;
    this.#sampleRead = sampleRead;
  }

  next(): WorkloadEvent {
    const index = this.#sampleEvent();
    return { index, type: this.#random.next() < this.#bounceRatio ? 'bounced' : 'delivered' };
  }

  sampleDomain(): number {
    return this.#sampleRead();
  }

  name(index: number): string {
    return domainName(this.#seed, index);
  }
}

/** The first `count` events of a workload (fewer if it ends first), with their domain names. */
export function takeEvents(workload: Workload, count: number): { domain: string; type: EventType }[] {
  const events = [];
  for (let i = 0; i < count; i++) {
    const event = workload.next();
    if (!event) break;
    events.push({ domain: workload.name(event.index), type: event.type });
  }
  return events;
}
