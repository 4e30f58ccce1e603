import { ValidationError } from '../core/errors.js';
import { normalizeDomain } from '../core/domain.js';

/** The path of a request URL split into segments, without the query string: `/a/b?x` → ['a', 'b']. */
export function pathSegments(url: string): string[] {
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  return path.split('/').slice(1);
}

/** Percent-decodes and normalises the domain segment of a path. */
export function domainFromSegment(segment: string): string {
  let decoded = segment;
  if (segment.includes('%')) {
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw new ValidationError('domain is not valid percent-encoding');
    }
  }
  return normalizeDomain(decoded);
}
