import type { TimelineSecond } from './timeline.js';

/**
 * A last second the schedule covers less of than this is left out of the rate chart: a few
 * requests over a sliver of a second make a rate that jumps about.
 */
const MIN_LAST_SECOND = 0.5;

/** Requests per second for each second of the timeline; null where nothing is drawn. */
export interface RateSeries {
  offered: (number | null)[];
  achieved: (number | null)[];
}

/**
 * The values of the report's rate chart. A second's count is a rate only over the part of that
 * second the schedule covered: when the schedule ends inside a second (`--duration 2.5s`, a run
 * stopped early), that last second's counts are divided by the part covered (left out when under
 * half a second), and the seconds after the schedule (requests due at its very end and sent a few
 * milliseconds later, or a backlog still being sent) are not drawn. Drawn as plain counts, a last
 * partial second looked like the target stalling at the end of every run.
 *
 * The schedule's length is the number of requests due over the requested rate: the pacer makes
 * one due every 1/rps seconds from the timeline's start, until its total or until it is stopped.
 */
export function rateSeries(timeline: readonly TimelineSecond[], requestedRps: number): RateSeries {
  const due = timeline.reduce((sum, second) => sum + second.offered, 0);
  const scheduleSeconds = requestedRps > 0 ? due / requestedRps : 0;
  const offered: (number | null)[] = [];
  const achieved: (number | null)[] = [];
  for (const second of timeline) {
    const covered = Math.min(1, scheduleSeconds - second.second);
    // The first second is drawn however short the run: it is the only one.
    const drawn = covered >= 1 || (covered > 0 && (covered >= MIN_LAST_SECOND || second.second === 0));
    offered.push(drawn ? round(second.offered / covered) : null);
    achieved.push(drawn ? round(second.sent / covered) : null);
  }
  return { offered, achieved };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
