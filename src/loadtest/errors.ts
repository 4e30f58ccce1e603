/** The target answered nothing at all before the run: no connection, or no HTTP answer. */
export class TargetUnreachableError extends Error {
  readonly code = 'SVC_TARGET_UNREACHABLE';

  constructor(
    readonly target: string,
    cause: unknown,
  ) {
    super(`cannot reach ${target}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = new.target.name;
  }
}

/** A request got no complete answer within the timeout. */
export class RequestTimeoutError extends Error {
  readonly code = 'SVC_REQUEST_TIMEOUT';

  constructor(timeoutMs: number) {
    super(`no complete answer within ${timeoutMs} ms`);
    this.name = new.target.name;
  }
}
