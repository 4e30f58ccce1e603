import { Pool } from 'undici';
import { bearerHeaders } from '../client/bearer.js';
import type { EventType } from '../core/event.js';
import type { DomainCounts } from '../core/status.js';
import type { DomainLedger, Ledger } from './ledger.js';

export interface VerifyTotals {
  /** Events the service answered with a 2xx. */
  acknowledged: number;
  /** Events without a definite answer: they may or may not have been counted. */
  indefinite: number;
  /** What the service reports for the touched domains. */
  counted: number;
  /** Acknowledged but not counted: Σ max(0, acknowledged − counted). Must be 0. */
  lost: number;
  /** Counted beyond everything that may have been: Σ max(0, counted − acknowledged − indefinite). */
  extra: number;
}

export interface Mismatch {
  domain: string;
  acknowledged: DomainCounts;
  indefinite: DomainCounts;
  counted: DomainCounts;
}

export interface VerifyReport extends VerifyTotals {
  url: string;
  /** Domains that received events, every one of them read back. */
  domains: number;
  /** Domains whose counts could not be read: not compared, so the verification is incomplete. */
  unreadable: number;
  byType: Record<EventType, VerifyTotals>;
  /** The first few domains with lost or extra events. */
  mismatches: Mismatch[];
  /** Why the first unreadable domain could not be read. */
  unreadableReason?: string;
}

export interface VerifyOptions {
  url: string;
  connections: number;
  timeoutMs: number;
  /** Bearer token for the reads; '' sends none. */
  token: string;
  /** The name of a domain index. */
  name: (index: number) => string;
  /** Reads one domain's counts another way than GET /domains/:domain (gRPC: Status/Get). */
  read?: (domain: string) => Promise<DomainCounts>;
}

const MAX_MISMATCHES = 10;
const PIPELINING = 4;
const ATTEMPTS = 3;
/**
 * A reader may lag behind the writer (serve-read reads the journal every --max-read-lag, a MongoDB
 * secondary replicates): a domain read short of what was acknowledged is read again after these
 * pauses before its missing events count as lost.
 */
const SETTLE_PAUSES_MS = [250, 1000, 2000];
const TYPES: readonly EventType[] = ['delivered', 'bounced'];

/**
 * Reads every domain of the ledger back with `GET /domains/:domain` and compares each with what
 * the service acknowledged. Meaningful only against a store that held none of these domains
 * before the run, and a reader without a cache (serve-http, or serve-read with --cache-size 0).
 */
export async function verifyCounts(ledger: Ledger, options: VerifyOptions): Promise<VerifyReport> {
  const report: VerifyReport = {
    url: options.url,
    domains: ledger.size,
    unreadable: 0,
    ...zero(),
    byType: { delivered: zero(), bounced: zero() },
    mismatches: [],
  };
  const connections = Math.min(ledger.size, options.connections) || 1;
  const pool = options.read ? undefined : new Pool(options.url, {
    connections,
    pipelining: PIPELINING,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connectTimeout: options.timeoutMs,
  });
  const read = options.read ?? httpReadCounts(pool!, bearerHeaders(options.token));
  /** Domains read short of what was acknowledged: the reader may only be lagging. */
  let lagging: Reading[] = [];
  const readAll = async (readings: Iterator<Reading>, settle: boolean): Promise<void> => {
    const worker = async (): Promise<void> => {
      for (let next = readings.next(); !next.done; next = readings.next()) {
        const reading = next.value;
        try {
          reading.counted = await readWithRetries(read, reading.domain);
        } catch (error) {
          report.unreadable++;
          report.unreadableReason ??= `${reading.domain}: ${(error as Error).message}`;
          continue;
        }
        if (settle && isShort(reading)) lagging.push(reading);
        else compare(report, reading);
      }
    };
    await Promise.all(Array.from({ length: connections * PIPELINING }, worker));
  };
  try {
    await readAll(readingsOf(ledger, options.name), true);
    for (const [round, pause] of SETTLE_PAUSES_MS.entries()) {
      if (lagging.length === 0) break;
      const again = lagging;
      lagging = [];
      await new Promise((resolve) => setTimeout(resolve, pause));
      await readAll(again.values(), round < SETTLE_PAUSES_MS.length - 1);
    }
  } finally {
    await pool?.close();
  }
  return report;
}

interface Reading {
  domain: string;
  expected: DomainLedger;
  counted: DomainCounts;
}

function* readingsOf(ledger: Ledger, name: (index: number) => string): Generator<Reading> {
  for (const expected of ledger.domains()) {
    yield { domain: name(expected.index), expected, counted: { delivered: 0, bounced: 0 } };
  }
}

function isShort({ expected, counted }: Reading): boolean {
  return TYPES.some((type) => counted[type] < expected.acknowledged[type]);
}

async function readWithRetries(read: (domain: string) => Promise<DomainCounts>, domain: string): Promise<DomainCounts> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read(domain);
    } catch (error) {
      if (attempt === ATTEMPTS) throw error;
    }
  }
}

/** GET /domains/:domain on the pool. */
function httpReadCounts(pool: Pool, headers: Record<string, string>): (domain: string) => Promise<DomainCounts> {
  return async (domain) => {
    const response = await pool.request({ method: 'GET', path: `/domains/${domain}`, headers });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new Error(`answered ${response.statusCode}`);
    }
    const { delivered, bounced } = (await response.body.json()) as Partial<DomainCounts>;
    if (typeof delivered !== 'number' || typeof bounced !== 'number') throw new Error('answer has no counts');
    return { delivered, bounced };
  };
}

function compare(report: VerifyReport, { domain, expected, counted }: Reading): void {
  let mismatch = false;
  for (const type of TYPES) {
    const acknowledged = expected.acknowledged[type];
    const indefinite = expected.indefinite[type];
    const lost = Math.max(0, acknowledged - counted[type]);
    const extra = Math.max(0, counted[type] - acknowledged - indefinite);
    for (const totals of [report, report.byType[type]]) {
      totals.acknowledged += acknowledged;
      totals.indefinite += indefinite;
      totals.counted += counted[type];
      totals.lost += lost;
      totals.extra += extra;
    }
    if (lost > 0 || extra > 0) mismatch = true;
  }
  if (mismatch && report.mismatches.length < MAX_MISMATCHES) {
    report.mismatches.push({ domain, acknowledged: expected.acknowledged, indefinite: expected.indefinite, counted });
  }
}

function zero(): VerifyTotals {
  return { acknowledged: 0, indefinite: 0, counted: 0, lost: 0, extra: 0 };
}
