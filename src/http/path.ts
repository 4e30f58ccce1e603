import { ValidationError } from '../core/errors.js';
import { normalizeDomain } from '../core/domain.js';

/** The path of a request URL split into segments, without the query string: `/a/b?x` → ['a', 'b']. */
export function pathSegments(url: string): string[] {
  // Clients send `/a/b`; a server must also accept the absolute form `http://host/a/b` (RFC 9112 3.2.2).
  const start = url.charCodeAt(0) === 0x2f /* / */ ? 0 : absolutePathStart(url);
  const query = url.indexOf('?', start);
  const path = url.slice(start, query === -1 ? url.length : query);
  return path.split('/').slice(1);
}

const SCHEME_AND_AUTHORITY = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

function absolutePathStart(url: string): number {
  const match = SCHEME_AND_AUTHORITY.exec(url);
  return match === null ? 0 : match[0].length;
}

/** Percent-decodes and normalises the domain segment of a path. */
export function domainFromSegment(segment: string): string {
  let decoded = segment;
  if (segment.includes('%')) {
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw new ValidationError('domain is not valid percent-encoding', 'invalid_domain');
    }
  }
  return normalizeDomain(decoded);
}
