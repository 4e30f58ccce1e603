import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './helpers/ferretdb.js';
import { eventLine, expectNothingAcknowledgedLost, getJson, makeEvents, putEvents, tally, tallyBodies, until } from './helpers/http.js';
import { hasRedis, startRedis, type RedisServer } from './helpers/redis.js';
import { runSvc, startDaemon, storedCounts } from './helpers/svc.js';
import { deferred } from './helpers/deferred.js';
import { parsePrometheus, sampleValue } from './helpers/prometheus.js';

const put = (url: string, domain: string) =>
  fetch(`${url}/events/${domain}/delivered`, { method: 'PUT' }).then(
    (res) => res.status,
    () => 0,
  );

describe.skipIf(!hasRedis() && !process.env.CI)('svc on Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('serve-http counts exactly into Redis; serve-read and svc status read it back; setup checks the server', async () => {
    const store = `${server.url}/1`;
    const setup = await runSvc(['setup', '--store', store]);
    expect(setup.code, setup.stderr).toBe(0);
    expect(setup.stdout).toMatch(/AOF on \(appendfsync always\): a crash of Redis loses nothing acknowledged; a power loss nothing acknowledged\n/);
    expect(setup.stdout).not.toMatch(/WARNING/);
    const writer = await startDaemon('serve-http', ['--store', store]);
    try {
      const events = makeEvents(600, 40, 3);
      expect((await putEvents(writer.url, events, 16)).every((s) => s === 204)).toBe(true);
      const post = await fetch(`${writer.url}/events`, { method: 'POST', body: eventLine('batch.example', 'bounced').repeat(3) });
      expect(post.status).toBe(200);
      const expected = tally([...events, ...Array.from({ length: 3 }, () => ({ domain: 'batch.example', type: 'bounced' as const }))]);
      expect(await storedCounts(store, [...expected.keys()])).toEqual(expected);

      const reader = await startDaemon('serve-read', ['--store', store]);
      try {
        const [domain, counts] = [...expected][0]!;
        expect((await getJson(`${reader.url}/domains/${domain.toUpperCase()}`)).body).toMatchObject({ domain, ...counts });
        expect((await getJson(`${reader.url}/readyz`)).status).toBe(200);
      } finally {
        await reader.stop();
      }
    } finally {
      await writer.stop();
    }
  });

  it('svc replay applies a file once: run again, it counts nothing more', async () => {
    const store = `${server.url}/3`;
    const fixture = new URL('../fixtures/valid.ndjson', import.meta.url).pathname;
    const expected = JSON.parse(readFileSync(new URL('../fixtures/valid.expected.json', import.meta.url), 'utf8'));
    const first = await runSvc(['replay', '--json', fixture, '--store', store]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject(expected.summary);
    const again = await runSvc(['replay', '--json', fixture, '--store', store]);
    expect(again.code, again.stderr).toBe(0);
    expect(Object.fromEntries(await storedCounts(store, Object.keys(expected.counts)))).toEqual(expected.counts);
  });

  it('svc setup warns clearly when AOF is off, and says what appendfsync everysec can lose', async () => {
    const bare = await startRedis({ extra: ['--appendonly', 'no'] });
    try {
      const setup = await runSvc(['setup', '--store', bare.url]);
      expect(setup.code).toBe(0);
      expect(setup.stdout).toMatch(/WARNING: AOF is off/);
      // Redis's default fsync policy: what a crash can cost is said, with the setting that costs nothing.
      bare.cli('CONFIG', 'SET', 'appendonly', 'yes');
      bare.cli('CONFIG', 'SET', 'appendfsync', 'everysec');
      const everysec = await runSvc(['setup', '--store', bare.url]);
      expect(everysec.stdout).toMatch(/AOF on \(appendfsync everysec\): a crash of Redis loses up to ~2 s of acknowledged writes when the disk is slow .*; appendfsync always loses nothing acknowledged/);
    } finally {
      await bare.destroy();
    }
  });

  it('refuses a malformed Redis URL as a usage error', async () => {
    const result = await runSvc(['status', '--store', 'redis://127.0.0.1:6379/db', 'a.example']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/expected redis:\/\/HOST:PORT\[\/DB\]/);
  });

  it('loses nothing acknowledged when serve-http is killed with SIGKILL under load', async () => {
    const store = `${server.url}/2`;
    const first = await startDaemon('serve-http', ['--store', store]);
    const events = makeEvents(4000, 60, 11);
    const { promise: middle, resolve: reached } = deferred();
    const load = putEvents(first.url, events, 32, { onAnswered: (answered) => answered === 400 && reached() });
    await middle;
    await first.stop('SIGKILL');
    const statuses = await load;
    const acknowledged = events.filter((_, i) => statuses[i] === 204);
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(acknowledged.length).toBeLessThan(events.length);
    const sent = tally(events);
    expectNothingAcknowledgedLost(await storedCounts(store, [...sent.keys()]), tally(acknowledged), sent);
  });

  it('commits four batches at once on Redis, one with --max-in-flight 1, and counts each once', async () => {
    const stalled = await startRedis();
    // Long enough for the batches held while Redis is stopped not to fail.
    const timeout = ['--store-timeout', '30s'];
    const byDefault = await startDaemon('serve-http', ['--store', `${stalled.url}/0`, ...timeout]);
    const one = await startDaemon('serve-http', ['--store', `${stalled.url}/1`, '--max-in-flight', '1', ...timeout]);
    const inFlight = async (url: string) => sampleValue(parsePrometheus(await (await fetch(`${url}/metrics`)).text()), 'svc_batches_in_flight');
    try {
      stalled.signal('SIGSTOP');
      const answers: Promise<number>[] = [];
      for (const [daemon, limit] of [[byDefault, 4], [one, 1]] as const) {
        // One request at a time, each in a batch of its own once the previous one is committing.
        for (let k = 1; k <= limit + 2; k++) {
          answers.push(fetch(`${daemon.url}/events`, { method: 'POST', body: eventLine(`f${k}.example`, 'delivered') }).then((res) => res.status));
          if (k <= limit) expect(await until(() => inFlight(daemon.url), (n) => n === k, 10_000)).toBe(k);
        }
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(await inFlight(daemon.url)).toBe(limit);
      }
      stalled.signal('SIGCONT');
      expect(new Set(await Promise.all(answers))).toEqual(new Set([200]));
      const firsts = (n: number) => new Map(Array.from({ length: n }, (_, k) => [`f${k + 1}.example`, { delivered: 1, bounced: 0 }]));
      expect(await storedCounts(`${stalled.url}/0`, [...firsts(6).keys()])).toEqual(firsts(6));
      expect(await storedCounts(`${stalled.url}/1`, [...firsts(3).keys()])).toEqual(firsts(3));
    } finally {
      await Promise.all([byDefault.stop('SIGKILL'), one.stop('SIGKILL')]);
      await stalled.destroy();
    }
  }, 60_000);
});

describe.skipIf(!hasRedis() && !process.env.CI)('svc when Redis goes away (redis-server killed with SIGKILL and restarted)', () => {
  it('starts while Redis is down, answers /readyz 503, and becomes ready once it is up', async () => {
    const port = await freePort();
    const daemon = await startDaemon('serve-http', ['--store', `redis://127.0.0.1:${port}`, '--store-timeout', '1s']);
    let server: RedisServer | undefined;
    try {
      expect((await getJson(`${daemon.url}/readyz`)).status).toBe(503);
      const refused = await getJson(`${daemon.url}/events/early.example/delivered`, { method: 'PUT' });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      server = await startRedis({ port });
      expect((await until(() => getJson(`${daemon.url}/readyz`), (r) => r.status === 200, 20_000)).status).toBe(200);
      expect(await put(daemon.url, 'late.example')).toBe(204);
    } finally {
      await daemon.stop();
      await server?.destroy();
    }
  });

  it('under load, answers 503 fast while Redis is down and counts every acknowledged event once it is back', async () => {
    const server = await startRedis();
    const daemon = await startDaemon('serve-http', ['--store', server.url, '--store-timeout', '1s']);
    try {
      const events = makeEvents(3000, 30, 21);
      const { promise: middle, resolve: reached } = deferred();
      const load = putEvents(daemon.url, events, 16, { onAnswered: (answered) => answered === 300 && reached() });
      await middle;
      await server.stop(true);
      const started = performance.now();
      const refused = await getJson(`${daemon.url}/events/down.example/delivered`, { method: 'PUT' });
      expect(refused).toMatchObject({ status: 503, body: { error: expect.stringMatching(/^Redis: /) } });
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(performance.now() - started).toBeLessThan(4_000);
      expect((await getJson(`${daemon.url}/readyz`)).status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await server.restart();
      const statuses = await load;
      expect((await until(() => getJson(`${daemon.url}/readyz`), (r) => r.status === 200, 20_000)).status).toBe(200);
      expect(await put(daemon.url, 'after.example')).toBe(204);
      const acknowledged = events.filter((_, i) => statuses[i] === 204);
      // The load's requests were refused while Redis was down, or, in a batch already sent when it
      // was killed, held until it was back (sent again with its guard): which depends on the moment.
      expect(statuses.every((s) => s === 204 || s === 503)).toBe(true);
      const sent = tally(events);
      expectNothingAcknowledgedLost(await storedCounts(server.url, [...sent.keys()]), tally(acknowledged), sent);
    } finally {
      await daemon.stop();
      await server.destroy();
    }
  }, 60_000);

  it('counts every batch exactly once when Redis is killed in the middle of keyed batches and clients retry with their keys', async () => {
    const server = await startRedis();
    const daemon = await startDaemon('serve-http', ['--store', server.url, '--store-timeout', '500ms']);
    try {
      const bodies = Array.from({ length: 300 }, (_, b) => Array.from({ length: 50 }, (_, i) => eventLine(`k${(b * 7 + i) % 120}.example`, i % 9 === 0 ? 'bounced' : 'delivered')).join(''));
      const answers: number[][] = bodies.map(() => []);
      let next = 0;
      const client = async () => {
        for (let b = next++; b < bodies.length; b = next++) {
          for (let attempt = 0; attempt < 200; attempt++) {
            const answer = await fetch(`${daemon.url}/events`, { method: 'POST', body: bodies[b], headers: { 'idempotency-key': `batch-${b}` } }).then(
              (res) => res.status,
              () => 0,
            );
            answers[b]!.push(answer);
            if (answer === 200) break;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      };
      const clients = Promise.all(Array.from({ length: 8 }, client));
      await until(async () => next, (n) => n > 60, 10_000);
      await server.stop(true);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await server.restart();
      await clients;
      expect(answers.every((statuses) => statuses.at(-1) === 200)).toBe(true);
      expect(answers.some((statuses) => statuses.length > 1)).toBe(true);
      const expected = tallyBodies(bodies);
      expect(await storedCounts(server.url, [...expected.keys()])).toEqual(expected);
    } finally {
      await daemon.stop('SIGKILL');
      await server.destroy();
    }
  }, 60_000);
});

describe.skipIf(!hasRedis() && !process.env.CI)('svc on Redis with a replica and --redis-wait', () => {
  it('acknowledges only once the replica has the write: 503 in doubt while it lags, 204 again once it is back', async () => {
    const master = await startRedis();
    const replica = await startRedis({ extra: ['--replicaof', '127.0.0.1', String(master.port)] });
    // 2 s: on a machine this loaded (two CPU hogs, fsync always), a healthy replica took over 500 ms to confirm.
    const daemon = await startDaemon('serve-http', ['--store', master.url, '--redis-wait', '1', '--store-timeout', '2s']);
    try {
      await until(async () => replica.cli('INFO', 'replication'), (info) => /master_link_status:up/.test(info), 10_000);
      expect(await put(daemon.url, 'waited.example')).toBe(204);
      expect(replica.cli('HGETALL', replica.cli('KEYS', 'svc:c:*waited.example'))).toMatch(/^d\s+1$/);
      replica.signal('SIGSTOP');
      const refused = await getJson(`${daemon.url}/events/waited.example/delivered`, { method: 'PUT' });
      expect(refused).toMatchObject({ status: 503, body: { error: expect.stringMatching(/reached 0 of the 1 replicas --redis-wait asks for/) } });
      replica.signal('SIGCONT');
      expect(await until(() => put(daemon.url, 'waited.example'), (s) => s === 204, 10_000)).toBe(204);
      // The write answered 503 was counted on the master all the same (in doubt): 3, not 2.
      expect((await storedCounts(master.url, ['waited.example'])).get('waited.example')).toEqual({ delivered: 3, bounced: 0 });
    } finally {
      await daemon.stop();
      await Promise.all([replica.destroy(), master.destroy()]);
    }
  });
});
