import { SvcError, TooManyLinesError, ValidationError, type RejectReason } from './errors.js';
import { parseEventLine, type DomainEvent } from './event.js';

export interface LineError {
  line: number;
  reason: string;
}

export interface ParsedBatch {
  events: DomainEvent[];
  rejected: number;
  /** The first `maxErrors` rejected lines with their reasons. */
  errors: LineError[];
}

/**
 * Parses an NDJSON body of events. Blank lines are skipped, CRLF is accepted, and each bad line
 * is counted (never thrown) so that the good lines of a batch still count; `onRejected` hears
 * the reason of every one of them, not only of the first `maxErrors`. A body of more than
 * `maxLines` lines (blank ones included: they cost work too) throws TooManyLinesError.
 */
export function parseNdjsonBatch(
  text: string,
  maxErrors = 10,
  onRejected?: (reason: RejectReason) => void,
  maxLines = Number.POSITIVE_INFINITY,
): ParsedBatch {
  const events: DomainEvent[] = [];
  const errors: LineError[] = [];
  let rejected = 0;
  let lineNumber = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (++lineNumber > maxLines) throw new TooManyLinesError(maxLines);
    let line = text.slice(start, end);
    start = end + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim().length === 0) continue;
    try {
      events.push(parseEventLine(line));
    } catch (error) {
      if (!(error instanceof SvcError)) throw error;
      rejected++;
      onRejected?.(error instanceof ValidationError ? error.reason : 'invalid_input');
      if (errors.length < maxErrors) errors.push({ line: lineNumber, reason: error.message });
    }
  }
  return { events, rejected, errors };
}
