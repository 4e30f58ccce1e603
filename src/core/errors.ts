/**
 * Typed errors with fixed codes. Library code throws these; only the HTTP layer and the CLI
 * decide what a code means to a client (status code, exit code).
 */
export type ErrorCode =
  | 'SVC_INVALID_INPUT'
  | 'SVC_PAYLOAD_TOO_LARGE'
  | 'SVC_OVERLOADED'
  | 'SVC_STORE_UNAVAILABLE'
  | 'SVC_SHUTTING_DOWN';

export class SvcError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Input that can never succeed as sent: a bad domain, event type, line or option. */
export class ValidationError extends SvcError {
  constructor(message: string) {
    super('SVC_INVALID_INPUT', message);
  }
}

export class PayloadTooLargeError extends SvcError {
  constructor(limit: number) {
    super('SVC_PAYLOAD_TOO_LARGE', `body exceeds ${limit} bytes`);
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

export class ShuttingDownError extends SvcError {
  constructor() {
    super('SVC_SHUTTING_DOWN', 'server is shutting down');
  }
}
