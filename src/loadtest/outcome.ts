import { OverloadedError, ShuttingDownError } from '../core/errors.js';
import type { Outcome } from './ledger.js';
import type { FailureKind } from './stats.js';

// The service refuses these before taking the event in: such a 503 is a definite "not counted".
// Other 503s (store unavailable) may follow a write that did land, e.g. a MongoDB timeout.
const REFUSED_BEFORE_ACCEPTING = new Set([new OverloadedError().message, new ShuttingDownError().message]);

/** The outcome of every event of a request answered with `status` and `body` (read for 503s). */
export function outcomeOf(status: number, body: string | undefined): Outcome {
  if (status >= 200 && status < 300) return 'acknowledged';
  if (status >= 400 && status < 500) return 'rejected';
  if (status === 503 && body !== undefined && REFUSED_BEFORE_ACCEPTING.has(errorMessage(body))) return 'rejected';
  return 'indefinite';
}

function errorMessage(body: string): string {
  try {
    return String((JSON.parse(body) as { error?: unknown }).error);
  } catch {
    return '';
  }
}

/**
 * The lines a `POST /events` answer says were rejected (1-based), or undefined when the answer
 * cannot be read, in which case no event of the batch has a definite outcome.
 */
export function rejectedLines(body: string, events: number): Set<number> | undefined {
  try {
    const answer = JSON.parse(body) as { accepted?: unknown; rejected?: unknown; errors?: { line?: unknown }[] };
    if (answer.accepted === events && answer.rejected === 0) return new Set();
    if (typeof answer.accepted !== 'number' || !Array.isArray(answer.errors)) return undefined;
    const lines = new Set(answer.errors.map((error) => Number(error.line)));
    return answer.accepted + lines.size === events ? lines : undefined;
  } catch {
    return undefined;
  }
}

const FAILURE_BY_CODE: Record<string, FailureKind> = {
  SVC_REQUEST_TIMEOUT: 'timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  UND_ERR_CONNECT_TIMEOUT: 'connect',
  ECONNREFUSED: 'connect',
  ENOTFOUND: 'connect',
  EHOSTUNREACH: 'connect',
  EADDRNOTAVAIL: 'connect',
  UND_ERR_SOCKET: 'socket',
  ECONNRESET: 'socket',
  EPIPE: 'socket',
};

export function failureKind(error: Error): FailureKind {
  return FAILURE_BY_CODE[(error as { code?: string }).code ?? ''] ?? 'other';
}
