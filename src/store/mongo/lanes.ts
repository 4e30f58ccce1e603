/** How long a lane waits for a command given up on to settle before it sends the next one. */
const LANE_QUIET_MS = 60_000;

/**
 * Writes in lanes (see ServerProfile.lanes): each lane runs its writes one after another, lanes
 * run in parallel. The first lane also orders replay chunks.
 */
export class Lanes {
  /** Per lane, its last write. */
  #lanes: Array<Promise<unknown>> = [];
  /** Per lane, when its last command settled (see command). */
  #settled: Array<Promise<unknown>> = [];

  /** Runs `write` after the lane's previous write. */
  run(lane: number, write: () => Promise<void>): Promise<void> {
    const next = (this.#lanes[lane] ?? Promise.resolve()).then(write);
    this.#lanes[lane] = next.catch(() => {});
    return next;
  }

  /**
   * Resolves once the lane's last command has settled, even one given up on at the deadline (for
   * at most LANE_QUIET_MS): on FerretDB a command still running could otherwise read a document
   * before the retry's write and overwrite the next batch's.
   */
  quiet(lane: number): Promise<unknown> | undefined {
    return this.#settled[lane];
  }

  /** Records the lane's command just sent (see quiet). */
  sent(lane: number, command: Promise<unknown>): void {
    const quiet = new Promise((resolve) => setTimeout(resolve, LANE_QUIET_MS).unref());
    this.#settled[lane] = Promise.race([command.then(() => {}, () => {}), quiet]);
  }
}
