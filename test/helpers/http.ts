import { expect } from 'vitest';
import { Pool } from 'undici';

export interface TestEvent {
  domain: string;
  type: 'delivered' | 'bounced';
}

/** A reproducible mix of events across `domains` domains. */
export function makeEvents(count: number, domains: number, seed = 1): TestEvent[] {
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  return Array.from({ length: count }, () => ({
    domain: `d${Math.floor(random() * domains)}.example.com`,
    type: random() < 0.1 ? 'bounced' : 'delivered',
  }));
}

export type Tally = Map<string, { delivered: number; bounced: number }>;

export function tally(events: Iterable<TestEvent>): Tally {
  const counts: Tally = new Map();
  for (const { domain, type } of events) {
    const c = counts.get(domain) ?? { delivered: 0, bounced: 0 };
    c[type]++;
    counts.set(domain, c);
  }
  return counts;
}

/**
 * PUTs every event, `connections` at a time; resolves with each event's HTTP status (0 for a
 * network error, or no answer within 20 s). The timeout is a client's: with `--workers`, a
 * connection the cluster's primary hands to a worker that is being killed is never answered
 * (seen under a loaded CI run), and a client without a timeout would wait for ever.
 */
export async function putEvents(baseUrl: string, events: TestEvent[], connections = 32): Promise<number[]> {
  const pool = new Pool(baseUrl, { connections, headersTimeout: 20_000, bodyTimeout: 20_000 });
  const statuses = new Array<number>(events.length).fill(0);
  let next = 0;
  const worker = async () => {
    while (next < events.length) {
      const i = next++;
      const { domain, type } = events[i]!;
      try {
        const res = await pool.request({ method: 'PUT', path: `/events/${domain}/${type}` });
        await res.body.dump();
        statuses[i] = res.statusCode;
      } catch {
        statuses[i] = 0;
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  await pool.close();
  return statuses;
}

export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/**
 * After a crash, for every domain: at least what was acknowledged is counted (nothing acknowledged
 * was lost) and at most what was sent (nothing counted twice).
 */
export function expectNothingAcknowledgedLost(counted: Tally, acknowledged: Tally, sent: Tally): void {
  for (const [domain, sentCounts] of sent) {
    const c = counted.get(domain) ?? { delivered: 0, bounced: 0 };
    const a = acknowledged.get(domain) ?? { delivered: 0, bounced: 0 };
    expect(c.delivered, domain).toBeGreaterThanOrEqual(a.delivered);
    expect(c.bounced, domain).toBeGreaterThanOrEqual(a.bounced);
    expect(c.delivered, domain).toBeLessThanOrEqual(sentCounts.delivered);
    expect(c.bounced, domain).toBeLessThanOrEqual(sentCounts.bounced);
  }
}
