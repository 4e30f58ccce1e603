import type { Counter } from 'prom-client';

/**
 * A labelled series is printed only once it has a value; starting it at 0 lets `rate()` and
 * `increase()` see its first increment.
 */
export function zeroed(counter: Counter.Internal): Counter.Internal {
  counter.inc(0);
  return counter;
}
