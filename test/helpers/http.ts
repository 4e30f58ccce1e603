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

/** How long a request may go unanswered before putEvents calls the server broken. */
const NO_ANSWER_MS = 10_000;

/**
 * PUTs every event, `connections` at a time; resolves with each event's HTTP status (0 for a
 * connection refused or reset). A request with no answer at all within 10 s fails the call: a
 * server that leaves a client waiting (a connection handed to a worker being killed, say) is
 * broken, and a client without a timeout would wait for ever. `freshConnections` opens a new
 * connection for every request, as many clients do. `onAnswered` hears the count of answers so far
 * after each one (to act in the middle of the load).
 */
export async function putEvents(
  baseUrl: string,
  events: TestEvent[],
  connections = 32,
  options: { freshConnections?: boolean; onAnswered?: (answered: number) => void } = {},
): Promise<number[]> {
  const pool = new Pool(baseUrl, { connections, headersTimeout: NO_ANSWER_MS, bodyTimeout: NO_ANSWER_MS });
  const statuses = new Array<number>(events.length).fill(0);
  const unanswered: string[] = [];
  let next = 0;
  let answered = 0;
  const worker = async () => {
    while (next < events.length) {
      const i = next++;
      const { domain, type } = events[i]!;
      try {
        const res = await pool.request({ method: 'PUT', path: `/events/${domain}/${type}`, reset: options.freshConnections });
        await res.body.dump();
        statuses[i] = res.statusCode;
        options.onAnswered?.(++answered);
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') unanswered.push(`${domain}/${type}`);
        statuses[i] = 0;
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  await pool.close();
  if (unanswered.length > 0) throw new Error(`${unanswered.length} requests got no answer within ${NO_ANSWER_MS} ms, e.g. ${unanswered[0]}`);
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

/** Probes until `accept` takes the value or `timeoutMs` passed; returns the last value (the caller asserts on it). */
export async function until<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One NDJSON line of a POST /events body. */
export const eventLine = (domain: string, type: 'delivered' | 'bounced') => JSON.stringify({ domain, type }) + '\n';

/** The counts per domain of NDJSON bodies, as they should be stored once each body is counted once. */
export function tallyBodies(bodies: string[]): Tally {
  return tally(bodies.flatMap((body) => body.trim().split('\n').map((text) => JSON.parse(text) as TestEvent)));
}
