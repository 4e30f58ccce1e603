/** Counts of one domain as the store holds them. */
export interface DomainCounts {
  delivered: number;
  bounced: number;
}

export type DomainStatus = 'catch-all' | 'not catch-all' | 'unknown';

/** The answer every read interface gives, in this shape and key order. */
export interface DomainReport extends DomainCounts {
  domain: string;
  status: DomainStatus;
}

export const DEFAULT_THRESHOLD = 1000;

/**
 * A single bounce proves the domain rejects unknown addresses, for ever. Without one, a domain
 * is a catch-all only once it has accepted more than `threshold` deliveries.
 */
export function statusOf(counts: DomainCounts, threshold: number): DomainStatus {
  if (counts.bounced >= 1) return 'not catch-all';
  if (counts.delivered > threshold) return 'catch-all';
  return 'unknown';
}

export function reportOf(domain: string, counts: DomainCounts | undefined, threshold: number): DomainReport {
  const delivered = counts?.delivered ?? 0;
  const bounced = counts?.bounced ?? 0;
  return { domain, status: statusOf({ delivered, bounced }, threshold), delivered, bounced };
}
