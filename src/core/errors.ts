/**
 * Typed errors with fixed codes. Library code throws these; only the HTTP layer and the CLI
 * decide what a code means to a client (status code, exit code).
 */
export type ErrorCode =
  | 'SVC_INVALID_INPUT'
  | 'SVC_PAYLOAD_TOO_LARGE'
  | 'SVC_OVERLOADED'
  | 'SVC_STORE_UNAVAILABLE'
  | 'SVC_SHUTTING_DOWN'
  | 'SVC_KEY_IN_FLIGHT'
  | 'SVC_KEY_MISMATCH'
  /** This process does not answer reads; the message names the one that does. */
  | 'SVC_READS_ELSEWHERE';

export class SvcError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * Why an event or NDJSON line was not counted, as a small fixed set (a metric label must not take
 * the free-text message, whose values are unbounded).
 */
export const REJECT_REASONS = [
  'invalid_domain',
  'invalid_type',
  'invalid_json',
  'line_too_long',
  'invalid_input',
  'overloaded',
  'shutting_down',
  'store_unavailable',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Input that can never succeed as sent: a bad domain, event type, line or option. */
export class ValidationError extends SvcError {
  constructor(
    message: string,
    readonly reason: RejectReason = 'invalid_input',
  ) {
    super('SVC_INVALID_INPUT', message);
  }
}

export class PayloadTooLargeError extends SvcError {
  constructor(limit: number) {
    super('SVC_PAYLOAD_TOO_LARGE', `body exceeds ${limit} bytes`);
  }
}

/** An NDJSON batch with more lines than one request may carry. */
export class TooManyLinesError extends SvcError {
  constructor(limit: number) {
    super('SVC_PAYLOAD_TOO_LARGE', `batch has more than ${limit} lines`);
  }
}

/** Too many events wait for a commit; the client should retry after a pause. */
export class OverloadedError extends SvcError {
  constructor(readonly retryAfterSeconds = 1) {
    super('SVC_OVERLOADED', 'too many pending events, retry later');
  }
}

/** The store could not be reached or refused a write; nothing of the affected batch was acknowledged. */
export class StoreUnavailableError extends SvcError {
  constructor(message = 'store unavailable', options?: ErrorOptions) {
    super('SVC_STORE_UNAVAILABLE', message, options);
  }
}

/** A write that failed in a way that may have counted it all the same (it reached the store, then timed out). */
export class InDoubtError extends StoreUnavailableError {}

/** A request with this idempotency key is being processed (here or in another process): retry once it is answered. */
export class KeyInFlightError extends SvcError {
  constructor() {
    super('SVC_KEY_IN_FLIGHT', 'a request with this Idempotency-Key is being processed; retry once it is answered');
  }
}

/** The idempotency key was used for another request: the client reused a key by mistake. */
export class KeyMismatchError extends SvcError {
  constructor() {
    super('SVC_KEY_MISMATCH', 'this Idempotency-Key was used for another request (method, path or body)');
  }
}

export class ShuttingDownError extends SvcError {
  constructor() {
    super('SVC_SHUTTING_DOWN', 'server is shutting down');
  }
}
