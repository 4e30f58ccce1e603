import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../src/store/open-store.js';
import { bucketOf, counterKey, guardKey, idempotencyKey, logKey, WRITERS_KEY } from '../src/store/redis/layout.js';
import { eventLine, makeEvents, putEvents, tally, tallyBodies } from './helpers/http.js';
import { hasRedis, startRedisCluster, type RedisCluster } from './helpers/redis.js';
import { counterStoreContract } from './helpers/store-contract.js';
import { runSvc, startDaemon, storedCounts } from './helpers/svc.js';
import { deferred } from './helpers/deferred.js';


/** POSTs each body with its key until it is answered 200, from `clients` clients at once; returns every status seen per body. */
async function postUntilDone(url: string, bodies: string[], clients: number, onProgress?: (next: number) => void, attempts = 300): Promise<number[][]> {
  const answers: number[][] = bodies.map(() => []);
  let next = 0;
  const client = async () => {
    for (let b = next++; b < bodies.length; b = next++) {
      onProgress?.(b);
      for (let attempt = 0; attempt < attempts; attempt++) {
        const status = await fetch(`${url}/events`, { method: 'POST', body: bodies[b], headers: { 'idempotency-key': `batch-${b}` } }).then(
          (res) => res.status,
          () => 0,
        );
        answers[b]!.push(status);
        if (status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return answers;
}

describe.skipIf(!hasRedis() && !process.env.CI)('Redis Cluster (3 masters)', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });
  const flush = () => cluster.nodes.forEach((node) => node.cli('FLUSHALL'));

  counterStoreContract('RedisStore on a cluster', async () => {
    flush();
    return { open: () => openStore({ store: cluster.url, storeTimeoutMs: 5000 }), destroy: async () => flush() };
  });

  it('svc setup reports the cluster state; a malformed URL is a usage error', async () => {
    const setup = await runSvc(['setup', '--store', cluster.url]);
    expect(setup.code, setup.stderr).toBe(0);
    expect(setup.stdout).toMatch(/cluster state ok: 3 masters serving slots, 3 nodes, 16384 of 16384 slots ok/);
    expect(setup.stdout).not.toMatch(/WARNING/);
    const bad = await runSvc(['status', '--store', 'redis-cluster://127.0.0.1', 'a.example']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/expected redis-cluster:\/\/HOST:PORT\[,HOST:PORT…\]/);
  });

  it('two serve-http processes on one cluster add up exactly, PUT and POST', async () => {
    flush();
    const first = await startDaemon('serve-http', ['--store', cluster.url]);
    const second = await startDaemon('serve-http', ['--store', cluster.url]);
    try {
      const a = makeEvents(800, 50, 31);
      const b = makeEvents(800, 50, 32);
      const bodies = Array.from({ length: 20 }, (_, i) => Array.from({ length: 40 }, (_, j) => eventLine(`d${(i * 13 + j) % 50}.example.com`, j % 5 === 0 ? 'bounced' : 'delivered')).join(''));
      const [sa, sb, posts] = await Promise.all([
        putEvents(first.url, a, 8),
        putEvents(second.url, b, 8),
        Promise.all(bodies.map((body, i) => fetch(`${[first, second][i % 2]!.url}/events`, { method: 'POST', body }).then((res) => res.status))),
      ]);
      expect([...sa, ...sb].every((s) => s === 204)).toBe(true);
      expect(posts.every((s) => s === 200)).toBe(true);
      const expected = tally([...a, ...b]);
      for (const [domain, counts] of tallyBodies(bodies)) {
        const sum = expected.get(domain) ?? { delivered: 0, bounced: 0 };
        expected.set(domain, { delivered: sum.delivered + counts.delivered, bounced: sum.bounced + counts.bounced });
      }
      expect(await storedCounts(cluster.url, [...expected.keys()])).toEqual(expected);
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  });

  it('counts every keyed batch exactly once when a master is killed with SIGKILL in the middle and clients retry', async () => {
    flush();
    const daemon = await startDaemon('serve-http', ['--store', cluster.url, '--store-timeout', '500ms']);
    try {
      // Each body spans every master: its domains fall into many hash-tag groups.
      const bodies = Array.from({ length: 300 }, (_, b) => Array.from({ length: 50 }, (_, i) => eventLine(`k${(b * 7 + i) % 200}.example`, i % 9 === 0 ? 'bounced' : 'delivered')).join(''));
      const { promise: middle, resolve: reached } = deferred();
      const load = postUntilDone(daemon.url, bodies, 8, (b) => b === 80 && reached());
      await middle;
      const victim = cluster.nodes[1]!;
      await victim.stop(true);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await victim.restart();
      const answers = await load;
      expect(answers.every((statuses) => statuses.at(-1) === 200)).toBe(true);
      // The outage was seen: some requests were refused or left in doubt, and retried.
      expect(answers.some((statuses) => statuses.length > 1)).toBe(true);
      const expected = tallyBodies(bodies);
      expect(await storedCounts(cluster.url, [...expected.keys()])).toEqual(expected);
    } finally {
      await daemon.stop('SIGKILL');
    }
  }, 90_000);

  it('counts every keyed batch once when the master of the writers\' leases is down for longer than a lease, and clients retry', async () => {
    flush();
    const daemon = await startDaemon('serve-http', ['--store', cluster.url, '--store-timeout', '500ms']);
    try {
      const bodies = Array.from({ length: 200 }, (_, b) => Array.from({ length: 50 }, (_, i) => eventLine(`w${(b * 7 + i) % 200}.example`, i % 9 === 0 ? 'bounced' : 'delivered')).join(''));
      const { promise: middle, resolve: reached } = deferred();
      const load = postUntilDone(daemon.url, bodies, 8, (b) => b === 40 && reached(), 1_000);
      await middle;
      // Its batches in flight have groups on that master too: they cannot finish while it is down,
      // and the writer cannot renew its lease; both outlast LEASE_MS (15 s).
      const victim = cluster.masterOf(WRITERS_KEY);
      await victim.stop(true);
      await new Promise((resolve) => setTimeout(resolve, 17_000));
      await victim.restart();
      const answers = await load;
      expect(answers.every((statuses) => statuses.at(-1) === 200)).toBe(true);
      const expected = tallyBodies(bodies);
      expect(await storedCounts(cluster.url, [...expected.keys()])).toEqual(expected);
    } finally {
      await daemon.stop('SIGKILL');
    }
  }, 150_000);

  it('finishes the logged batch of a writer whose lease lapsed: the rest of its groups once, its key answered', async () => {
    flush();
    const redis = (...args: string[]) => cluster.nodes[0]!.cli('-c', ...args);
    // A writer that died with one batch logged, its first group applied (with its guard) and
    // the rest not, and the batch's idempotency key still claimed.
    const dead = 'writer-that-died';
    const domains = Array.from({ length: 40 }, (_, i) => `lapsed${i}.example`);
    const done = `d|print|200|${Date.now() + 3_600_000}|{"accepted":40}`;
    const batch = {
      domains,
      counts: domains.flatMap((_, i) => [i + 1, i % 2]),
      keys: [{ key: 'lapsed-key', claim: `c|${dead}|${Date.now()}|print`, done, expiresAt: Date.now() + 3_600_000 }],
    };
    const firstBucket = bucketOf(domains[0]!);
    const applied = domains.flatMap((domain, i) => (bucketOf(domain) === firstBucket ? [[domain, i] as const] : []));
    for (const [domain, i] of applied) redis('HSET', counterKey(domain), 'd', String(i + 1), 'b', String(i % 2));
    redis('SET', guardKey(firstBucket, `${dead}:0`), '1');
    redis('SET', idempotencyKey('lapsed-key'), batch.keys[0]!.claim);
    redis('HSET', logKey(dead), '0', JSON.stringify(batch));
    redis('ZADD', WRITERS_KEY, String(Date.now() - 1), dead);

    // A live writer finishes it (its recovery runs from its first batch on).
    const store = await openStore({ store: cluster.url, storeTimeoutMs: 5000 });
    try {
      await store.applyBatch(new Map([['live.example', { delivered: 1, bounced: 0 }]]));
      // The log entry goes first, then the lease.
      const finished = () => redis('EXISTS', logKey(dead)) === '0' && redis('ZSCORE', WRITERS_KEY, dead) === '';
      const deadline = Date.now() + 20_000;
      while (!finished() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      expect(redis('EXISTS', logKey(dead)), 'the log is finished').toBe('0');
      expect(redis('ZSCORE', WRITERS_KEY, dead), 'the lease is dropped').toBe('');
      expect(redis('GET', idempotencyKey('lapsed-key'))).toBe(done);
      const counts = await store.getMany(domains);
      expect(counts).toEqual(new Map(domains.map((domain, i) => [domain, { delivered: i + 1, bounced: i % 2 }])));
    } finally {
      await store.close();
    }
  }, 40_000);

  it('finishes the logged batches of a serve-http killed with SIGKILL: keyed retries through another count once', async () => {
    flush();
    const first = await startDaemon('serve-http', ['--store', cluster.url]);
    const second = await startDaemon('serve-http', ['--store', cluster.url]);
    try {
      const bodies = Array.from({ length: 400 }, (_, b) => Array.from({ length: 40 }, (_, i) => eventLine(`s${(b * 11 + i) % 300}.example`, i % 7 === 0 ? 'bounced' : 'delivered')).join(''));
      const { promise: middle, resolve: reached } = deferred();
      // Clients switch to the second daemon once the first stops answering.
      let target = first.url;
      const answers: number[][] = bodies.map(() => []);
      let next = 0;
      const client = async () => {
        for (let b = next++; b < bodies.length; b = next++) {
          if (b === 100) reached();
          for (let attempt = 0; attempt < 400; attempt++) {
            const status = await fetch(`${target}/events`, { method: 'POST', body: bodies[b], headers: { 'idempotency-key': `batch-${b}` } }).then(
              (res) => res.status,
              () => 0,
            );
            answers[b]!.push(status);
            if (status === 200) break;
            if (status === 0) target = second.url;
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, client));
      await middle;
      await first.stop('SIGKILL');
      await load;
      expect(answers.every((statuses) => statuses.at(-1) === 200)).toBe(true);
      // The second took over the first's lease once it lapsed, finished its log and dropped it.
      const lapsedLeases = () => cluster.nodes[0]!.cli('-c', 'ZRANGEBYSCORE', WRITERS_KEY, '-inf', String(Date.now()));
      const deadline = Date.now() + 30_000;
      while (lapsedLeases() !== '' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 500));
      expect(lapsedLeases()).toBe('');
      const expected = tallyBodies(bodies);
      expect(await storedCounts(cluster.url, [...expected.keys()])).toEqual(expected);
    } finally {
      await Promise.all([first.stop('SIGKILL'), second.stop()]);
    }
  }, 120_000);
});


describe.skipIf(!hasRedis() && !process.env.CI)('Redis Cluster (3 masters, 3 replicas): failover', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('with --redis-wait 1, counts every keyed batch once when a master dies with batches in doubt and its replica takes over, clients retrying', async () => {
    const daemon = await startDaemon('serve-http', ['--store', cluster.url, '--redis-wait', '1', '--store-timeout', '1s']);
    try {
      const bodies = Array.from({ length: 300 }, (_, b) => Array.from({ length: 50 }, (_, i) => eventLine(`f${(b * 7 + i) % 200}.example`, i % 9 === 0 ? 'bounced' : 'delivered')).join(''));
      const { promise: middle, resolve: reached } = deferred();
      const load = postUntilDone(daemon.url, bodies, 8, (b) => b === 80 && reached(), 1_000);
      await middle;
      // The master of the writers' leases: its loss is also the leases' failover.
      const victim = cluster.masterOf(WRITERS_KEY);
      const [replica] = cluster.replicasOf(victim);
      // The replica stalls: the master runs batches that no replica confirms (503, in doubt);
      // some of them reach the replica's socket before the master dies, some do not.
      replica!.signal('SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await victim.stop(true);
      replica!.signal('SIGCONT');
      // Promoted after --cluster-node-timeout (2 s); it has no replica of its own, so
      // --redis-wait 1 refuses its batches until the old master is back as one.
      const serving = () => {
        try {
          return cluster.masterOf(WRITERS_KEY);
        } catch {
          // Between the failure and the promotion nobody serves the slot.
          return victim;
        }
      };
      const promoted = Date.now() + 20_000;
      while (serving() === victim && Date.now() < promoted) await new Promise((resolve) => setTimeout(resolve, 200));
      expect(serving(), 'the replica took over').toBe(replica);
      await victim.restart();
      const answers = await load;
      expect(answers.every((statuses) => statuses.at(-1) === 200)).toBe(true);
      expect(answers.some((statuses) => statuses.includes(503)), 'batches were left in doubt').toBe(true);
      const expected = tallyBodies(bodies);
      expect(await storedCounts(cluster.url, [...expected.keys()])).toEqual(expected);
    } finally {
      await daemon.stop('SIGKILL');
    }
  }, 150_000);
});
