import type { SharedAnswers, SharedCacheStats } from '../../core/domain-reader.js';
import { reportOf, type DomainReport } from '../../core/status.js';
import { ClusterConnection } from './cluster-connection.js';
import type { RedisCommands } from './commands.js';
import { ServerConnection } from './connection.js';
import { checkCacheUrl, checkClusterUrl, checkRedisUrl } from './url.js';

/**
 * A read that waits on the cache longer than this reads the store instead: the cache is there to
 * make reads faster, so a slow or absent Redis must cost a read little.
 */
const CACHE_TIMEOUT_MS = 200;
/** An answer lives this long from its last write; a domain read again is written again by the next node that misses it. */
const ANSWER_TTL_S = 30 * 24 * 3600;

/** `svc:n:<domain>`: the counts (`delivered,bounced`) of a `not catch-all` answer, beside the store's own keys. */
const answerKey = (domain: string) => `svc:n:${domain}`;

/**
 * `serve-read --cache redis://…` (or `redis-cluster://…`): `not catch-all` answers shared by every
 * read node, behind each node's own in-memory cache. Such an answer never changes (a bounce is for
 * ever), so an entry needs no invalidation. A cache that fails or answers slowly is skipped: the
 * read goes to the store, and the failure is counted.
 */
export class RedisAnswerCache implements SharedAnswers {
  readonly #commands: RedisCommands & { close(): Promise<void> };
  readonly stats: SharedCacheStats = { hits: 0, misses: 0, errors: 0 };

  constructor(commands: RedisCommands & { close(): Promise<void> }) {
    this.#commands = commands;
  }

  async get(domain: string): Promise<DomainReport | undefined> {
    const key = answerKey(domain);
    let found: string | null;
    try {
      found = await this.#commands.send<string | null>(['GET', key], key);
    } catch {
      this.stats.errors++;
      return undefined;
    }
    const report = found === null ? undefined : parseAnswer(domain, found);
    if (report === undefined) this.stats.misses++;
    else this.stats.hits++;
    return report;
  }

  offer(report: DomainReport): void {
    if (report.status !== 'not catch-all') return;
    const key = answerKey(report.domain);
    this.#commands.send(['SET', key, `${report.delivered},${report.bounced}`, 'EX', String(ANSWER_TTL_S)], key).catch(() => this.stats.errors++);
  }

  close(): Promise<void> {
    return this.#commands.close();
  }
}

/** An entry that is not the counts of a `not catch-all` answer (written by something else) is a miss. */
function parseAnswer(domain: string, value: string): DomainReport | undefined {
  const match = /^(\d+),(\d+)$/.exec(value);
  if (!match) return undefined;
  const report = reportOf(domain, { delivered: Number(match[1]), bounced: Number(match[2]) }, Infinity);
  return report.status === 'not catch-all' ? report : undefined;
}

export function openAnswerCache(value: string): RedisAnswerCache {
  checkCacheUrl(value);
  if (value.startsWith('redis-cluster://')) return new RedisAnswerCache(new ClusterConnection(checkClusterUrl(value), CACHE_TIMEOUT_MS));
  return new RedisAnswerCache(new ServerConnection(checkRedisUrl(value).href, CACHE_TIMEOUT_MS));
}
