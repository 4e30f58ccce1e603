import { normalizeDomain } from '../core/domain.js';
import { ValidationError } from '../core/errors.js';
import type { DomainEvent, EventType } from '../core/event.js';

/** An event name, with a condition on another field: `failed[severity=permanent]`. */
export interface NameMatcher {
  name: string;
  field?: string[];
  value?: string;
}

/** How a record of an existing topic (one JSON event each) becomes a DomainEvent. */
export interface EventMapping {
  /** Path of the field holding the domain (`domain`), or undefined when recipientField is used. */
  domainField?: string[];
  /** Path of a field holding an address (`user@Example.COM`) to take the domain from. */
  recipientField?: string[];
  /** Path of the field holding the event name. */
  typeField: string[];
  delivered: NameMatcher[];
  bounced: NameMatcher[];
}

/** `a.b.c` → ['a', 'b', 'c']. */
export function parseFieldPath(path: string): string[] {
  const parts = path.split('.');
  if (parts.some((part) => part === '')) throw new ValidationError(`${JSON.stringify(path)} is not a field path such as recipient or event-data.recipient`);
  return parts;
}

const MATCHER = /^([^[\],=]+)(?:\[([^[\]=]+)=([^[\]]*)\])?$/;

/** `delivered,accepted` or `bounced,failed[severity=permanent]`. */
export function parseMatchers(list: string): NameMatcher[] {
  return list.split(',').map((item) => {
    const match = MATCHER.exec(item.trim());
    if (!match) throw new ValidationError(`${JSON.stringify(item)} is not an event name, or name[field=value]`);
    return match[2] === undefined ? { name: match[1]! } : { name: match[1]!, field: parseFieldPath(match[2]), value: match[3]! };
  });
}

function at(record: unknown, path: readonly string[]): unknown {
  let value = record;
  for (const part of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

const matches = (record: unknown, name: unknown, matcher: NameMatcher) =>
  name === matcher.name && (matcher.field === undefined || String(at(record, matcher.field)) === matcher.value);

/** The event a parsed record is; throws ValidationError when it has no domain or maps to no type. */
export function mapEvent(record: unknown, mapping: EventMapping): DomainEvent {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new ValidationError('record is not a JSON object');
  const name = at(record, mapping.typeField);
  let type: EventType;
  if (mapping.bounced.some((m) => matches(record, name, m))) type = 'bounced';
  else if (mapping.delivered.some((m) => matches(record, name, m))) type = 'delivered';
  else throw new ValidationError(`event ${JSON.stringify(name)} maps to neither delivered nor bounced`, 'invalid_type');
  let domain: unknown;
  if (mapping.recipientField) {
    const address = at(record, mapping.recipientField);
    if (typeof address !== 'string' || !address.includes('@')) throw new ValidationError('recipient is not an address', 'invalid_domain');
    domain = address.slice(address.lastIndexOf('@') + 1);
  } else {
    domain = at(record, mapping.domainField ?? ['domain']);
  }
  if (typeof domain !== 'string') throw new ValidationError('record has no domain', 'invalid_domain');
  return { domain: normalizeDomain(domain), type };
}
