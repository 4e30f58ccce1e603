import { ValidationError } from './errors.js';
import { normalizeDomain } from './domain.js';
import { FNV_OFFSET, FNV_PRIME } from './hash.js';

export type EventType = 'delivered' | 'bounced';

export interface DomainEvent {
  domain: string;
  type: EventType;
}

/** Longest NDJSON line we parse; a real event is under 300 bytes. */
export const MAX_LINE_LENGTH = 4096;

export function parseEventType(value: unknown): EventType {
  if (value === 'delivered' || value === 'bounced') return value;
  if (typeof value !== 'string') throw new ValidationError('type must be "delivered" or "bounced"', 'invalid_type');
  throw new ValidationError(`unknown event type ${JSON.stringify(value.slice(0, 40))}`, 'invalid_type');
}

// The two shapes every event producer writes, matched without a JSON parser: a string without
// quotes, backslashes or control characters is the same in JSON and as plain text, and only JSON
// whitespace is allowed between tokens. Anything else (other fields, escapes) takes JSON.parse.
const DOMAIN_FIRST =
  /^\{[ \t\r\n]*"domain"[ \t\r\n]*:[ \t\r\n]*"([^"\\\x00-\x1f]*)"[ \t\r\n]*,[ \t\r\n]*"type"[ \t\r\n]*:[ \t\r\n]*"([^"\\\x00-\x1f]*)"[ \t\r\n]*\}$/;
const TYPE_FIRST =
  /^\{[ \t\r\n]*"type"[ \t\r\n]*:[ \t\r\n]*"([^"\\\x00-\x1f]*)"[ \t\r\n]*,[ \t\r\n]*"domain"[ \t\r\n]*:[ \t\r\n]*"([^"\\\x00-\x1f]*)"[ \t\r\n]*\}$/;

const CANONICAL_PREFIX = '{"domain":"';
const DELIVERED_SUFFIX = '","type":"delivered"}';
const BOUNCED_SUFFIX = '","type":"bounced"}';
/** Where the domain of a canonical line starts. */
export const CANONICAL_DOMAIN_START = CANONICAL_PREFIX.length;

/** What scanCanonical found; one object reused from line to line. */
export interface CanonicalScan {
  type: EventType;
  /** Where the domain ends (it starts at CANONICAL_DOMAIN_START). */
  domainEnd: number;
  /** fnv1a of the domain as written. */
  hash: number;
}

/**
 * Recognises `{"domain":"…","type":"…"}` exactly as JSON.stringify writes it, with no regular
 * expression and no allocation, and hashes the domain on the way: a caller that counts per name
 * (replay) then needs no second pass over it. Returns false for any other shape.
 */
export function scanCanonical(line: string, scan: CanonicalScan): boolean {
  if (!line.startsWith(CANONICAL_PREFIX)) return false;
  let type: EventType;
  let end: number;
  if (line.endsWith(DELIVERED_SUFFIX)) {
    type = 'delivered';
    end = line.length - DELIVERED_SUFFIX.length;
  } else if (line.endsWith(BOUNCED_SUFFIX)) {
    type = 'bounced';
    end = line.length - BOUNCED_SUFFIX.length;
  } else {
    return false;
  }
  // fnv1a, inline: this loop runs for every character of every line replayed.
  let hash = FNV_OFFSET;
  for (let i = CANONICAL_DOMAIN_START; i < end; i++) {
    const c = line.charCodeAt(i);
    // A quote, backslash or control character means JSON escaping: left to the full parser.
    if (c === 0x22 || c === 0x5c || c < 0x20) return false;
    hash = Math.imul(hash ^ c, FNV_PRIME);
  }
  scan.type = type;
  scan.domainEnd = end;
  scan.hash = hash;
  return true;
}

const scratch: CanonicalScan = { type: 'delivered', domainEnd: 0, hash: 0 };

/**
 * Parses one NDJSON line `{"domain": "...", "type": "delivered"|"bounced"}` (other fields are
 * ignored) into a normalised event. Throws ValidationError with the reason otherwise.
 */
export function parseEventLine(line: string): DomainEvent {
  const event = parseRawEventLine(line);
  event.domain = normalizeDomain(event.domain);
  return event;
}

/**
 * Like parseEventLine, but leaves the domain as written: a caller that sees the same name many
 * times (replay) normalises each distinct name once. Checks the type before the domain.
 */
export function parseRawEventLine(line: string): DomainEvent {
  if (line.length > MAX_LINE_LENGTH) throw new ValidationError(`line is longer than ${MAX_LINE_LENGTH} characters`, 'line_too_long');
  if (scanCanonical(line, scratch)) return { domain: line.slice(CANONICAL_DOMAIN_START, scratch.domainEnd), type: scratch.type };
  const domainFirst = DOMAIN_FIRST.exec(line);
  if (domainFirst) return { type: parseEventType(domainFirst[2]), domain: domainFirst[1]! };
  const typeFirst = TYPE_FIRST.exec(line);
  if (typeFirst) return { type: parseEventType(typeFirst[1]), domain: typeFirst[2]! };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ValidationError('line is not valid JSON', 'invalid_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError('line is not a JSON object', 'invalid_json');
  }
  const { domain, type } = value as { domain?: unknown; type?: unknown };
  if (typeof domain !== 'string') throw new ValidationError('domain is missing or not a string', 'invalid_domain');
  return { type: parseEventType(type), domain };
}
