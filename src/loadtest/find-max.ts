/** What a capacity search needs from one step: the rate it tried and whether it met every gate. */
export interface Step {
  rps: number;
  passed: boolean;
}

export interface SearchOptions {
  /** The first rate tried. */
  start: number;
  /** Rates grow by this factor while steps pass. */
  factor?: number;
  /** Bisections between the last passing and the first failing rate, at most. */
  refine?: number;
  /** Bisection stops once the two are this close (a share of the passing rate). */
  precision?: number;
  /** Stops the search between steps. */
  signal?: AbortSignal;
}

export interface SearchResult<S extends Step> {
  /** The highest rate that passed, if any did. */
  best: S | undefined;
  /** Every step, in the order run, failed ones and repeats included. */
  steps: S[];
}

/**
 * The highest rate a target sustains: from `start`, multiply by `factor` while steps pass, then
 * bisect between the last pass and the first failure. A failed rate is tried once more before it
 * counts as failed: on a shared machine a single pause (another tenant, a disk flush) can sink a
 * whole step. Started too high, it halves the rate until a step passes (down to start / 16).
 * `svc loadtest --find-max` and `npm run bench` both search with this.
 */
export async function findMaxRate<S extends Step>(runStep: (rps: number) => Promise<S>, options: SearchOptions): Promise<SearchResult<S>> {
  const { start, factor = 1.5, refine = 4, precision = 0.05, signal } = options;
  const steps: S[] = [];
  const once = async (rps: number) => {
    const step = await runStep(Math.max(1, Math.round(rps)));
    steps.push(step);
    return step;
  };
  const attempt = async (rps: number) => {
    const first = await once(rps);
    return first.passed || signal?.aborted ? first : once(rps);
  };
  let best: S | undefined;
  let failed: S | undefined;
  for (let rps = start; !signal?.aborted; rps *= factor) {
    const step = await attempt(rps);
    if (!step.passed) {
      failed = step;
      break;
    }
    best = step;
  }
  for (let rps = start / 2; best === undefined && rps >= start / 16 && !signal?.aborted; rps /= 2) {
    const step = await attempt(rps);
    if (step.passed) best = step;
    else failed = step;
  }
  for (let i = 0; i < refine && best && failed && failed.rps - best.rps > best.rps * precision && !signal?.aborted; i++) {
    const step = await attempt((best.rps + failed.rps) / 2);
    if (step.passed) best = step;
    else failed = step;
  }
  return { best, steps };
}
