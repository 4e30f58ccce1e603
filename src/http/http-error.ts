import type { ServerResponse } from 'node:http';
import { OverloadedError, SvcError, type ErrorCode } from '../core/errors.js';
import { log } from '../log.js';

/** An error that already knows its HTTP answer (404, 405, …). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  SVC_INVALID_INPUT: 400,
  SVC_PAYLOAD_TOO_LARGE: 413,
  SVC_OVERLOADED: 503,
  SVC_STORE_UNAVAILABLE: 503,
  SVC_SHUTTING_DOWN: 503,
  SVC_KEY_IN_FLIGHT: 409,
  SVC_KEY_MISMATCH: 422,
  SVC_READS_ELSEWHERE: 501,
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * The one place where errors become responses. Known errors keep their message; anything else
 * is logged and answered with a bare 500, so no internal detail reaches a client.
 */
export function sendError(res: ServerResponse, error: unknown): void {
  // The client went away mid-request (Node's "aborted"): nobody is left to answer, nothing went wrong here.
  if (res.destroyed && (error as NodeJS.ErrnoException | undefined)?.code === 'ECONNRESET') return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (error instanceof HttpError) {
    sendJson(res, error.status, { error: error.message }, error.headers);
  } else if (error instanceof SvcError) {
    const headers: Record<string, string> = {};
    if (error instanceof OverloadedError) headers['retry-after'] = String(error.retryAfterSeconds);
    // A store outage is usually short, and a stopping node is replaced by another: retry soon.
    if (error.code === 'SVC_STORE_UNAVAILABLE' || error.code === 'SVC_SHUTTING_DOWN' || error.code === 'SVC_KEY_IN_FLIGHT') headers['retry-after'] = '1';
    if (error.code === 'SVC_SHUTTING_DOWN' || error.code === 'SVC_PAYLOAD_TOO_LARGE') headers.connection = 'close';
    sendJson(res, STATUS_BY_CODE[error.code], { error: error.message }, headers);
  } else {
    log('error', 'unexpected error while handling a request', { error: String((error as Error)?.stack ?? error) });
    sendJson(res, 500, { error: 'internal error' });
  }
}
