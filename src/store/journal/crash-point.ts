import { closeSync, openSync } from 'node:fs';

/**
 * A test hook for recovery: with `SVC_CRASH_AT=<point>[:<n>]` in its environment, the process
 * kills itself with SIGKILL the n-th time (the first by default) it reaches `<point>`, so that a
 * test can crash it at exactly one step of the journal's life. Unset, each point costs one string
 * comparison. The points: `append` (half of a record written), `apply-transaction` (inside an
 * apply transaction, before its commit), `apply-part` (between two committed parts of one job),
 * `apply-done` (a job applied and flushed, its segments not deleted yet).
 * With `SVC_CRASH_ONCE=<file>` as well, only the first process to get there crashes (it creates
 * the file): one worker of `--workers N` dies, and its replacement does not die the same way.
 */
const [wanted, nth] = (process.env.SVC_CRASH_AT ?? '').split(':');
const onceFile = process.env.SVC_CRASH_ONCE;
let remaining = Number(nth ?? 1);

/** Whether the process must crash at `point` now; call `crash()` once ready (e.g. after a half write). */
export function reached(point: string): boolean {
  return point === wanted && --remaining === 0 && firstToCrash();
}

function firstToCrash(): boolean {
  if (onceFile === undefined) return true;
  try {
    closeSync(openSync(onceFile, 'wx'));
    return true;
  } catch {
    return false;
  }
}

export function crash(): never {
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL is not handled: nothing runs after it, but the type checker cannot know.
  throw new Error('unreachable');
}

/** Crashes here if this is the point and the time. */
export function crashPoint(point: string): void {
  if (reached(point)) crash();
}
