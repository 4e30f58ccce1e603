import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson } from './helpers/http.js';
import { parsePrometheus, sampleValue } from './helpers/prometheus.js';
import { hasRedis, startRedis, type RedisServer } from './helpers/redis.js';
import { runSvc, startDaemon, tempDir, type Daemon } from './helpers/svc.js';

const metric = async (daemon: Daemon, name: string) => sampleValue(parsePrometheus(await (await fetch(`${daemon.url}/metrics`)).text()), name);

describe.skipIf(!hasRedis() && !process.env.CI)('serve-read --cache: not-catch-all answers shared by read nodes in Redis', () => {
  let redis: RedisServer;
  const store = tempDir();
  beforeAll(async () => {
    redis = await startRedis();
    const writer = await startDaemon('serve-http', ['--store', store.path]);
    try {
      for (const path of ['bounced.example/bounced', 'bounced.example/delivered', 'bounced.example/delivered', 'open.example/delivered', 'other.example/bounced']) {
        expect((await fetch(`${writer.url}/events/${path}`, { method: 'PUT' })).status).toBe(204);
      }
    } finally {
      await writer.stop();
    }
  });
  afterAll(async () => {
    await redis?.destroy();
    store.remove();
  });

  it('keeps a node’s not-catch-all answers for the others, behind each node’s own cache, and reads the store when Redis is gone', async () => {
    const first = await startDaemon('serve-read', ['--store', store.path, '--cache', redis.url]);
    const second = await startDaemon('serve-read', ['--store', store.path, '--cache', redis.url]);
    try {
      const answer = { domain: 'bounced.example', status: 'not catch-all', delivered: 2, bounced: 1 };
      expect((await getJson(`${first.url}/domains/bounced.example`)).body).toEqual(answer);
      expect((await getJson(`${first.url}/domains/bounced.example`)).body).toEqual(answer);
      // The second read came from the node's own cache: Redis was asked once.
      expect(await metric(first, 'svc_cache_hits_total')).toBe(1);
      expect(await metric(first, 'svc_shared_cache_misses_total')).toBe(1);
      const deadline = Date.now() + 5_000;
      while (redis.cli('GET', 'svc:n:bounced.example') !== '2,1' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(redis.cli('GET', 'svc:n:bounced.example')).toBe('2,1');

      expect((await getJson(`${second.url}/domains/bounced.example`)).body).toEqual(answer);
      expect(await metric(second, 'svc_shared_cache_hits_total')).toBe(1);
      expect(await metric(second, 'svc_shared_cache_misses_total')).toBe(0);
      // An answer is taken from Redis, not the store: one the store has never seen is served as kept.
      redis.cli('SET', 'svc:n:kept.example', '7,1');
      expect((await getJson(`${second.url}/domains/kept.example`)).body).toEqual({ domain: 'kept.example', status: 'not catch-all', delivered: 7, bounced: 1 });
      // Only final answers are kept: an unknown domain is read from the store every time.
      expect((await getJson(`${second.url}/domains/open.example`)).body.status).toBe('unknown');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(redis.cli('EXISTS', 'svc:n:open.example')).toBe('0');

      await redis.stop(true);
      const started = performance.now();
      expect((await getJson(`${second.url}/domains/other.example`)).body).toEqual({ domain: 'other.example', status: 'not catch-all', delivered: 0, bounced: 1 });
      expect(performance.now() - started).toBeLessThan(1_000);
      expect((await getJson(`${second.url}/readyz`)).status).toBe(200);
      expect(await metric(second, 'svc_shared_cache_errors_total')).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  });

  it('refuses a --cache that is not a Redis URL as a usage error', async () => {
    const result = await runSvc(['serve-read', '--store', store.path, '--cache', 'postgres://127.0.0.1/x']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--cache postgres:\/\/127\.0\.0\.1\/x: expected redis:\/\/HOST:PORT\[\/DB\] or redis-cluster:\/\//);
  });
});
