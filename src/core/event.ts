import { ValidationError } from './errors.js';
import { normalizeDomain } from './domain.js';

export type EventType = 'delivered' | 'bounced';

export interface DomainEvent {
  domain: string;
  type: EventType;
}

/** Longest NDJSON line we parse; a real event is under 300 bytes. */
export const MAX_LINE_LENGTH = 4096;

export function parseEventType(value: unknown): EventType {
  if (value === 'delivered' || value === 'bounced') return value;
  if (typeof value !== 'string') throw new ValidationError('type must be "delivered" or "bounced"');
  throw new ValidationError(`unknown event type ${JSON.stringify(value.slice(0, 40))}`);
}

/**
 * Parses one NDJSON line `{"domain": "...", "type": "delivered"|"bounced"}` (other fields are
 * ignored) into a normalised event. Throws ValidationError with the reason otherwise.
 */
export function parseEventLine(line: string): DomainEvent {
  if (line.length > MAX_LINE_LENGTH) throw new ValidationError(`line is longer than ${MAX_LINE_LENGTH} characters`);
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ValidationError('line is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError('line is not a JSON object');
  }
  const { domain, type } = value as { domain?: unknown; type?: unknown };
  if (typeof domain !== 'string') throw new ValidationError('domain is missing or not a string');
  return { domain: normalizeDomain(domain), type: parseEventType(type) };
}
