import { Pool } from 'undici';
import { StoreUnavailableError } from '../core/errors.js';
import { bearerHeaders } from './bearer.js';
import { mapConcurrently } from './concurrency.js';
import type { DomainReport } from '../core/status.js';

const CONCURRENCY = 32;

/** Asks a running serve-http or serve-read for many domains at once over keep-alive connections. */
export async function fetchReports(baseUrl: string, domains: readonly string[], token?: string, timeoutMs = 10_000): Promise<DomainReport[]> {
  const pool = new Pool(baseUrl, { connections: Math.min(CONCURRENCY, domains.length || 1), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    const headers = bearerHeaders(token);
    return await mapConcurrently(domains, CONCURRENCY, (domain) => fetchReport(pool, domain, headers));
  } finally {
    await pool.close();
  }
}

async function fetchReport(pool: Pool, domain: string, headers: Record<string, string>): Promise<DomainReport> {
  let response;
  try {
    response = await pool.request({ method: 'GET', path: `/domains/${encodeURIComponent(domain)}`, headers });
  } catch (error) {
    throw new StoreUnavailableError(`cannot reach the service: ${(error as Error).message}`, { cause: error });
  }
  const body = (await response.body.json()) as DomainReport & { error?: string };
  if (response.statusCode !== 200) {
    throw new StoreUnavailableError(`service answered ${response.statusCode} for ${domain}: ${body.error ?? 'no reason'}`);
  }
  return body;
}
