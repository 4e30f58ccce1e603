import { RequestTimeoutError } from './errors.js';

/** A request that can be timed out: linked into the list while in flight. */
export interface Deadline {
  dispatchedAt: number;
  /** Set by undici once the request is being written. */
  abort: ((error: Error) => void) | undefined;
  previous: Deadline | undefined;
  next: Deadline | undefined;
}

/**
 * Times requests out with one sweep timer over an intrusive list kept in dispatch order, instead
 * of undici's two timers per request (headers, then body): measurably cheaper per request, at
 * the price of firing up to one sweep interval late.
 */
export class Deadlines {
  readonly #timeoutMs: number;
  readonly #timer: NodeJS.Timeout;
  #head: Deadline | undefined;
  #tail: Deadline | undefined;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#timer = setInterval(() => this.#sweep(), Math.min(250, Math.max(10, timeoutMs / 10)));
  }

  add(request: Deadline): void {
    request.previous = this.#tail;
    request.next = undefined;
    if (this.#tail) this.#tail.next = request;
    else this.#head = request;
    this.#tail = request;
  }

  remove(request: Deadline): void {
    if (request.previous) request.previous.next = request.next;
    else if (this.#head === request) this.#head = request.next;
    else return; // not in the list
    if (request.next) request.next.previous = request.previous;
    else this.#tail = request.previous;
    request.previous = request.next = undefined;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #sweep(): void {
    const limit = performance.now() - this.#timeoutMs;
    // Collect first: aborting one request can fail and unlink others on the same connection.
    const expired: Deadline[] = [];
    for (let request = this.#head; request && request.dispatchedAt <= limit; request = request.next) expired.push(request);
    for (const request of expired) {
      // Without an abort function undici has not started it yet: its connect timeout applies.
      if (request.abort) {
        this.remove(request);
        request.abort(new RequestTimeoutError(this.#timeoutMs));
      }
    }
  }
}
