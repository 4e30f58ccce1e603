/** What the pacer drives: sends requests and says whether another one can go now. */
export interface PacedSender {
  /** Whether a connection slot is free for one more request. */
  ready(): boolean;
  /** Sends the request due at `due` (performance.now() time) now; `queued` if it waited for a slot. */
  send(due: number, queued: boolean): void;
  /** The request due at `due` will never be sent. */
  drop(due: number): void;
}

export interface PacerOptions {
  /** performance.now() time of request 0. */
  startMs: number;
  intervalMs: number;
  /** Requests in the schedule. */
  total: number;
  /** Requests that may wait for a free slot; beyond this they are dropped. */
  maxQueue: number;
  /** After the last due time, how long queued requests may still wait for a slot. */
  drainMs: number;
}

// Requests sent in one go before the event loop gets a turn to read answers.
const MAX_BURST = 256;
// Sleep with setTimeout only when the next request is further away than this: Node's timers have
// millisecond granularity and may fire a millisecond late, so shorter waits spin on setImmediate.
const SLEEP_THRESHOLD_MS = 1.5;

/**
 * The open model: request i is due at start + i × interval, whatever the server does.
 *
 * While slots are free, a tick sends each request at its due time. Once a due request finds every
 * slot busy, ticking stops: from then on each freed slot first files every request that has
 * fallen due since into a bounded FIFO queue (or drops it when the queue is full), in due order,
 * then takes the oldest. That gives the same queue and drops as filing each request at its due
 * time, without spinning while the target is saturated or stalled. The sender measures lateness
 * against the due time.
 */
export class Pacer {
  readonly #sender: PacedSender;
  readonly #options: PacerOptions;
  readonly #queue: DueQueue;
  /** The next request not yet sent, queued or dropped. */
  #next = 0;
  /** A tick is pending: slots were free and the queue empty when it was scheduled. */
  #ticking = false;
  #finished = false;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #endTimer: NodeJS.Timeout | undefined;
  #finish: () => void = () => {};

  constructor(sender: PacedSender, options: PacerOptions) {
    this.#sender = sender;
    this.#options = options;
    this.#queue = new DueQueue(options.maxQueue);
  }

  /** Resolves once every request of the schedule was sent or dropped. */
  run(): Promise<void> {
    return new Promise((resolve) => {
      this.#finish = resolve;
      // Saturated, nothing may run at the end of the schedule: this timer files the last requests.
      const last = this.#due(Math.max(0, this.#options.total - 1));
      this.#endTimer = setTimeout(() => this.#fileDue(), Math.max(0, last - performance.now() + 1));
      this.#tick();
    });
  }

  /** A slot became free. */
  release(): void {
    if (this.#finished || this.#ticking) return;
    this.#fileDue();
    while (this.#queue.size > 0 && this.#sender.ready()) this.#sender.send(this.#queue.shift(), true);
    if (this.#queue.size > 0) return;
    if (this.#next === this.#options.total) this.#end();
    else if (this.#sender.ready()) this.#schedule(0);
  }

  /** Schedules nothing more and drops what waits in the queue. */
  stop(): void {
    if (!this.#ticking) this.#fileDue();
    this.#end();
  }

  /** Requests due and waiting for a slot. */
  get queued(): number {
    if (this.#ticking || this.#finished) return this.#queue.size;
    const due = Math.min(this.#options.total, Math.floor((performance.now() - this.#options.startMs) / this.#options.intervalMs) + 1);
    return Math.min(this.#options.maxQueue, this.#queue.size + Math.max(0, due - this.#next));
  }

  #due(index: number): number {
    // Multiplying rather than adding keeps rounding errors from drifting the rate.
    return this.#options.startMs + index * this.#options.intervalMs;
  }

  #tick = (): void => {
    this.#ticking = false;
    this.#timer = this.#immediate = undefined;
    if (this.#finished) return;
    const now = performance.now();
    const total = this.#options.total;
    for (let burst = 0; this.#next < total; burst++) {
      const due = this.#due(this.#next);
      if (due > now) break;
      if (this.#queue.size > 0 || !this.#sender.ready()) {
        this.#fileDue(); // every slot is busy: release() takes over
        return;
      }
      if (burst === MAX_BURST) {
        this.#schedule(0);
        return;
      }
      this.#next++;
      this.#sender.send(due, false);
    }
    if (this.#next === total) this.#end();
    else this.#schedule(this.#due(this.#next) - performance.now());
  };

  #schedule(waitMs: number): void {
    this.#ticking = true;
    if (waitMs > SLEEP_THRESHOLD_MS) this.#timer = setTimeout(this.#tick, waitMs - 1);
    else this.#immediate = setImmediate(this.#tick);
  }

  /** Files every request due by now into the queue, or drops it when the queue is full. */
  #fileDue(): void {
    if (this.#ticking || this.#finished) return;
    const now = performance.now();
    const total = this.#options.total;
    while (this.#next < total) {
      const due = this.#due(this.#next);
      if (due > now) break;
      this.#next++;
      if (this.#queue.full) this.#sender.drop(due);
      else this.#queue.push(due);
    }
    if (this.#next === total && this.#timer === undefined) {
      // The schedule is over: what still waits gets drainMs to find a slot.
      if (this.#queue.size === 0) this.#end();
      else this.#timer = setTimeout(() => this.#end(), this.#options.drainMs);
    }
  }

  #end(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#endTimer);
    clearImmediate(this.#immediate);
    while (this.#queue.size > 0) this.#sender.drop(this.#queue.shift());
    this.#finish();
  }
}

/** A fixed-capacity FIFO of due times: no allocation per request. */
class DueQueue {
  readonly #items: Float64Array;
  #head = 0;
  size = 0;

  constructor(capacity: number) {
    this.#items = new Float64Array(capacity);
  }

  get full(): boolean {
    return this.size === this.#items.length;
  }

  push(due: number): void {
    this.#items[(this.#head + this.size++) % this.#items.length] = due;
  }

  shift(): number {
    const due = this.#items[this.#head]!;
    this.#head = (this.#head + 1) % this.#items.length;
    this.size--;
    return due;
  }
}
