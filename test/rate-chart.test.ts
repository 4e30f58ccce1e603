import { describe, expect, it } from 'vitest';
import { rateSeries } from '../src/loadtest/rate-chart.js';
import type { TimelineSecond } from '../src/loadtest/timeline.js';

/** A timeline from [offered, sent] per second. */
const timeline = (seconds: [number, number][]): TimelineSecond[] =>
  seconds.map(([offered, sent], second) => ({ second, offered, sent, ok: sent, errors: 0, outcomes: {}, latencyMs: null, uncorrectedLatencyMs: null }));

describe('the rate chart of the HTML report', () => {
  it('draws whole seconds as counts, and not the sends that spill past the end of the schedule', () => {
    // 2 s at 400/s; two requests due just before 2 s were sent just after.
    expect(rateSeries(timeline([[400, 400], [400, 398], [0, 2]]), 400)).toEqual({ offered: [400, 400, null], achieved: [400, 398, null] });
    // A backlog sent for two seconds after the schedule is not drawn as a rate with nothing offered.
    expect(rateSeries(timeline([[400, 300], [0, 90], [0, 10]]), 400)).toEqual({ offered: [400, null, null], achieved: [300, null, null] });
  });

  it('draws a last partial second as the rate over the part the schedule covered', () => {
    // --duration 2.5s at 400/s: the third second holds half a second of schedule.
    expect(rateSeries(timeline([[400, 400], [400, 400], [200, 190], [0, 10]]), 400)).toEqual({
      offered: [400, 400, 400, null],
      achieved: [400, 400, 380, null],
    });
    // A run stopped 0.8 s into its second second (SIGINT).
    expect(rateSeries(timeline([[100, 100], [80, 80]]), 100)).toEqual({ offered: [100, 100], achieved: [100, 100] });
  });

  it('leaves out a last second covered less than half, unless it is the only one', () => {
    expect(rateSeries(timeline([[400, 400], [100, 100]]), 400)).toEqual({ offered: [400, null], achieved: [400, null] });
    // 7 requests at 3/s: 2.33 s.
    expect(rateSeries(timeline([[3, 3], [3, 3], [1, 1]]), 3)).toEqual({ offered: [3, 3, null], achieved: [3, 3, null] });
    // --duration 250ms: a quarter second is the whole run.
    expect(rateSeries(timeline([[100, 100]]), 400)).toEqual({ offered: [400], achieved: [400] });
    expect(rateSeries([], 400)).toEqual({ offered: [], achieved: [] });
  });
});
