import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, startFerretDb, type FerretDb } from './helpers/ferretdb.js';
import { getJson, makeEvents, putEvents } from './helpers/http.js';
import { histogram, parsePrometheus, sampleValue, type Exposition } from './helpers/prometheus.js';
import { logLines, runSvc, startDaemon, tempDir, type Daemon } from './helpers/svc.js';

const ferretdbBinary = inject('ferretdbBinary');

async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

/** GET /metrics over a connection of its own: with --workers, connections go to the workers in turn. */
function scrapeOnNewConnection(url: string): Promise<Exposition> {
  return new Promise((resolve, reject) => {
    get(`${url}/metrics`, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET /metrics: ${res.statusCode} ${text}`));
        else resolve(parsePrometheus(text));
      });
    }).on('error', reject);
  });
}

/** How much each series moved between two scrapes (a series absent before counts from 0). */
function differ(before: Exposition, after: Exposition) {
  return (name: string, labels: Record<string, string> = {}) => (sampleValue(after, name, labels) ?? NaN) - (sampleValue(before, name, labels) ?? 0);
}

const put = (url: string, path: string) => fetch(`${url}${path}`, { method: 'PUT' }).then((res) => res.status);

describe('GET /metrics on serve-http', () => {
  const dir = tempDir();
  let daemon: Daemon;

  beforeAll(async () => {
    daemon = await startDaemon('serve-http', ['--store', dir.path]);
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
    dir.remove();
  });

  it('counts accepted and rejected events, batches, commits and requests, in Prometheus text format', async () => {
    const before = await scrape(daemon.url);

    for (const path of ['/events/m1.example/delivered', '/events/m2.example/delivered', '/events/M1.Example./delivered', '/events/m2.example/bounced']) {
      expect(await put(daemon.url, path)).toBe(204);
    }
    expect(await put(daemon.url, '/events/bad_name.example/delivered')).toBe(400);
    expect(await put(daemon.url, '/events/%E0%A4%A/delivered')).toBe(400);
    expect(await put(daemon.url, '/events/m1.example/opened')).toBe(400);
    const body = [
      '{"domain":"m3.example","type":"delivered"}',
      '{"domain":"m3.example","type":"bounced"}',
      'garbage',
      `{"domain":"${'a'.repeat(5000)}.example","type":"delivered"}`,
      '{"domain":"m3.example","type":"clicked"}',
      '{"domain":"-m3.example","type":"delivered"}',
    ].join('\n');
    const posted = await getJson(`${daemon.url}/events`, { method: 'POST', body });
    expect(posted.body).toMatchObject({ accepted: 2, rejected: 4 });
    expect((await fetch(`${daemon.url}/nowhere/at/all`)).status).toBe(404);
    expect((await getJson(`${daemon.url}/domains/m1.example`)).body).toMatchObject({ delivered: 2 });

    const after = await scrape(daemon.url);
    const moved = differ(before, after);

    expect(moved('svc_events_accepted_total', { type: 'delivered' })).toBe(4);
    expect(moved('svc_events_accepted_total', { type: 'bounced' })).toBe(2);
    expect(moved('svc_events_rejected_total', { reason: 'invalid_domain' })).toBe(3);
    expect(moved('svc_events_rejected_total', { reason: 'invalid_type' })).toBe(2);
    expect(moved('svc_events_rejected_total', { reason: 'invalid_json' })).toBe(1);
    expect(moved('svc_events_rejected_total', { reason: 'line_too_long' })).toBe(1);
    expect(moved('svc_events_rejected_total', { reason: 'overloaded' })).toBe(0);
    expect(moved('svc_events_rejected_total', { reason: 'store_unavailable' })).toBe(0);

    // Every accepted event went through exactly one committed batch.
    const batches = histogram(after, 'svc_batch_events');
    expect(batches.sum - histogram(before, 'svc_batch_events').sum).toBe(6);
    const commits = histogram(after, 'svc_commit_duration_seconds', { result: 'committed' });
    expect(commits.count - histogram(before, 'svc_commit_duration_seconds', { result: 'committed' }).count).toBe(5);
    expect(commits.count).toBe(batches.count);
    expect(histogram(after, 'svc_batch_domains').count).toBe(batches.count);
    expect(histogram(after, 'svc_commit_duration_seconds', { result: 'failed' }).count).toBe(0);
    expect(sampleValue(after, 'svc_pending_events')).toBe(0);
    expect(sampleValue(after, 'svc_batches_in_flight')).toBe(0);
    expect(sampleValue(after, 'svc_store_up')).toBe(1);
    expect(sampleValue(after, 'svc_store_errors_total', { operation: 'write' })).toBe(0);

    const requests = (route: string, method: string, status: string) =>
      moved('svc_http_request_duration_seconds_count', { route, method, status });
    expect(requests('/events/:domain/:type', 'PUT', '204')).toBe(4);
    expect(requests('/events/:domain/:type', 'PUT', '400')).toBe(3);
    expect(requests('/events', 'POST', '200')).toBe(1);
    expect(requests('unmatched', 'GET', '404')).toBe(1);
    expect(requests('/domains/:domain', 'GET', '200')).toBe(1);
    const durations = histogram(after, 'svc_http_request_duration_seconds', { route: '/events/:domain/:type', method: 'PUT', status: '204' });
    expect(durations.sum).toBeGreaterThan(0);
    // Route labels are patterns, never the paths clients sent.
    const routes = new Set(after.samples.flatMap((s) => (s.labels.route === undefined ? [] : [s.labels.route])));
    expect([...routes].sort()).toEqual(['/domains/:domain', '/events', '/events/:domain/:type', '/metrics', 'unmatched']);

    expect(after.types.get('svc_events_accepted_total')).toBe('counter');
    expect(after.types.get('svc_http_request_duration_seconds')).toBe('histogram');
    expect(after.types.get('svc_pending_events')).toBe('gauge');
    expect(after.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(after.types.has('nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('answers only GET (it stays open with tokens set: see auth.test.ts)', async () => {
    const res = await fetch(`${daemon.url}/metrics`, { method: 'POST' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });
});

describe('serve-http under back-pressure', () => {
  it('shows the pending events, then counts the 503 as overloaded', async () => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--flush-ms', '1500', '--max-pending', '2']);
    try {
      const waiting = [put(daemon.url, '/events/p1.example/delivered'), put(daemon.url, '/events/p2.example/bounced')];
      let during = await scrape(daemon.url);
      for (let i = 0; i < 20 && sampleValue(during, 'svc_pending_events') !== 2; i++) during = await scrape(daemon.url);
      expect(sampleValue(during, 'svc_pending_events')).toBe(2);
      expect(await put(daemon.url, '/events/p3.example/delivered')).toBe(503);
      expect(await Promise.all(waiting)).toEqual([204, 204]);

      const after = await scrape(daemon.url);
      expect(sampleValue(after, 'svc_events_rejected_total', { reason: 'overloaded' })).toBe(1);
      expect(sampleValue(after, 'svc_pending_events')).toBe(0);
      expect(sampleValue(after, 'svc_events_accepted_total', { type: 'delivered' })).toBe(1);
      expect(sampleValue(after, 'svc_events_accepted_total', { type: 'bounced' })).toBe(1);
      // --flush-ms gathered both events into one batch of two domains.
      expect(histogram(after, 'svc_batch_events')).toEqual({ count: 1, sum: 2 });
      expect(histogram(after, 'svc_batch_domains')).toEqual({ count: 1, sum: 2 });
      expect(sampleValue(after, 'svc_http_request_duration_seconds_count', { route: '/events/:domain/:type', method: 'PUT', status: '503' })).toBe(1);
    } finally {
      expect(await daemon.stop()).toBe(0);
      dir.remove();
    }
  });
});

describe('serve-read --cache-size', () => {
  it('bounds the cache, the least recently read out first; 0 disables it', async () => {
    const dir = tempDir();
    const writer = await startDaemon('serve-http', ['--store', dir.path]);
    const bounded = await startDaemon('serve-read', ['--store', dir.path, '--cache-size', '2']);
    const uncached = await startDaemon('serve-read', ['--store', dir.path, '--cache-size', '0']);
    const bounces = (reader: Daemon, domain: string) => getJson(`${reader.url}/domains/${domain}`).then((res) => res.body.bounced as number);
    const delivered = (reader: Daemon, domain: string) => getJson(`${reader.url}/domains/${domain}`).then((res) => res.body.delivered as number);
    // A domain never cached (its status stays unknown) shows when a reader has seen every earlier write.
    const caughtUp = async (probes: number) => {
      expect(await put(writer.url, '/events/probe.example/delivered')).toBe(204);
      for (const reader of [bounded, uncached]) await expect.poll(() => delivered(reader, 'probe.example'), { timeout: 5000 }).toBe(probes);
    };
    try {
      const domains = ['c1.example', 'c2.example', 'c3.example'];
      for (const domain of domains) expect(await put(writer.url, `/events/${domain}/bounced`)).toBe(204);
      await caughtUp(1);
      // Settled answers, read in this order: c1 falls out of a cache of two.
      for (const reader of [bounded, uncached]) for (const domain of domains) expect(await bounces(reader, domain)).toBe(1);

      for (const domain of domains) expect(await put(writer.url, `/events/${domain}/bounced`)).toBe(204);
      await caughtUp(2);
      // c1 comes from the store (and pushes c2 out), c3 from the cache with the counts of its first read.
      expect([await bounces(bounded, 'c1.example'), await bounces(bounded, 'c3.example'), await bounces(bounded, 'c2.example')]).toEqual([2, 1, 2]);
      expect(sampleValue(await scrape(bounded.url), 'svc_cache_entries')).toBe(2);
      for (const domain of domains) expect(await bounces(uncached, domain)).toBe(2);
      expect(sampleValue(await scrape(uncached.url), 'svc_cache_entries') ?? 0).toBe(0);
    } finally {
      await Promise.all([writer.stop(), bounded.stop(), uncached.stop()]);
      dir.remove();
    }
  });
});

describe('GET /metrics on serve-read', () => {
  it('counts cache hits and misses', async () => {
    const dir = tempDir();
    const writer = await startDaemon('serve-http', ['--store', dir.path]);
    try {
      expect(await put(writer.url, '/events/settled.example/bounced')).toBe(204);
      expect(await put(writer.url, '/events/open.example/delivered')).toBe(204);
    } finally {
      await writer.stop();
    }
    const reader = await startDaemon('serve-read', ['--store', dir.path]);
    try {
      for (let i = 0; i < 3; i++) expect((await getJson(`${reader.url}/domains/settled.example`)).body.status).toBe('not catch-all');
      for (let i = 0; i < 2; i++) expect((await getJson(`${reader.url}/domains/open.example`)).body.status).toBe('unknown');

      const metrics = await scrape(reader.url);
      // The first read of the settled domain and both reads of the open one went to the store.
      expect(sampleValue(metrics, 'svc_cache_hits_total')).toBe(2);
      expect(sampleValue(metrics, 'svc_cache_misses_total')).toBe(3);
      expect(sampleValue(metrics, 'svc_cache_entries')).toBe(1);
      expect(sampleValue(metrics, 'svc_http_request_duration_seconds_count', { route: '/domains/:domain', method: 'GET', status: '200' })).toBe(5);
      expect(sampleValue(metrics, 'svc_store_up')).toBe(1);
      expect(metrics.types.has('svc_events_accepted_total')).toBe(false);
    } finally {
      expect(await reader.stop()).toBe(0);
      dir.remove();
    }
  });
});

describe('GET /metrics with --workers 2', () => {
  it('answers with the whole cluster on whichever worker takes the scrape', async () => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--workers', '2']);
    try {
      const events = makeEvents(400, 40, 3);
      // 16 connections, handed to the two workers in turn: each worker counts about half.
      expect((await putEvents(daemon.url, events, 16)).every((s) => s === 204)).toBe(true);
      const bounced = events.filter((e) => e.type === 'bounced').length;

      for (let scrapes = 0; scrapes < 4; scrapes++) {
        const metrics = await scrapeOnNewConnection(daemon.url);
        expect(sampleValue(metrics, 'svc_events_accepted_total', { type: 'delivered' })).toBe(events.length - bounced);
        expect(sampleValue(metrics, 'svc_events_accepted_total', { type: 'bounced' })).toBe(bounced);
        expect(histogram(metrics, 'svc_batch_events').sum).toBe(events.length);
        expect(sampleValue(metrics, 'svc_http_request_duration_seconds_count', { route: '/events/:domain/:type', method: 'PUT', status: '204' })).toBe(
          events.length,
        );
        // Every earlier scrape is counted, whichever worker took it.
        expect(sampleValue(metrics, 'svc_http_request_duration_seconds_count', { route: '/metrics', method: 'GET', status: '200' }) ?? 0).toBe(scrapes);
        expect(sampleValue(metrics, 'svc_store_up')).toBe(1);
        expect(sampleValue(metrics, 'svc_pending_events')).toBe(0);
      }
    } finally {
      expect(await daemon.stop()).toBe(0);
      dir.remove();
    }
  });
});

describe('logs', () => {
  it('are JSON lines with a level name and an ISO time: start and stop at info', async () => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path]);
    expect(await put(daemon.url, '/events/log.example/delivered')).toBe(204);
    expect(await daemon.stop()).toBe(0);
    dir.remove();
    const lines = logLines(daemon);
    expect(lines.map((line) => [line.level, line.msg])).toEqual([
      ['info', 'listening'],
      ['info', 'stopping'],
      ['info', 'stopped'],
    ]);
    expect(lines[0]).toMatchObject({ daemon: 'serve-http', url: daemon.url, pid: daemon.process.pid });
    for (const line of lines) expect(new Date(line.time).toISOString()).toBe(line.time);
  });

  it('--log-level warn and SVC_LOG_LEVEL=error keep only the listening line of a clean run', async () => {
    const dir = tempDir();
    const byOption = await startDaemon('serve-http', ['--store', dir.path, '--log-level', 'warn']);
    const byEnvironment = await startDaemon('serve-read', ['--store', dir.path], { SVC_LOG_LEVEL: 'error' });
    expect(await put(byOption.url, '/events/quiet.example/delivered')).toBe(204);
    expect(await byOption.stop()).toBe(0);
    expect(await byEnvironment.stop()).toBe(0);
    dir.remove();
    for (const daemon of [byOption, byEnvironment]) {
      expect(logLines(daemon).map((line) => line.msg)).toEqual(['listening']);
    }
  });

  it('refuses an unknown level', async () => {
    const result = await runSvc(['serve-http', '--log-level', 'verbose', '--port', '0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/debug, info, warn, error/);
  });
});

describe.skipIf(!ferretdbBinary)('store outage (FerretDB down, then started)', () => {
  it('logs one line when the store becomes unreachable and one when it is back, and counts the failures', async () => {
    // The daemon starts first, so the store is down from its first write: no connection is cut
    // in the middle of a command, and each failure is a prompt "connection refused".
    const port = await freePort();
    const daemon = await startDaemon('serve-http', ['--store', `mongodb://127.0.0.1:${port}/svc`, '--store-timeout', '1s']);
    let server: FerretDb | undefined;
    try {
      for (let i = 0; i < 3; i++) expect(await put(daemon.url, `/events/during${i}.example/delivered`)).toBe(503);

      const down = await scrape(daemon.url);
      expect(sampleValue(down, 'svc_store_up')).toBe(0);
      expect(sampleValue(down, 'svc_store_errors_total', { operation: 'write' })).toBe(3);
      expect(sampleValue(down, 'svc_events_rejected_total', { reason: 'store_unavailable' })).toBe(3);
      expect(histogram(down, 'svc_commit_duration_seconds', { result: 'failed' }).count).toBe(3);
      expect(sampleValue(down, 'svc_events_accepted_total', { type: 'delivered' })).toBe(0);
      const unreachable = logLines(daemon).filter((line) => line.msg === 'store unreachable');
      expect(unreachable).toHaveLength(1);
      expect(unreachable[0]!.level).toBe('warn');

      server = await startFerretDb(ferretdbBinary, port);
      const deadline = Date.now() + 20_000;
      while ((await put(daemon.url, '/events/after.example/delivered')) !== 204) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const up = await scrape(daemon.url);
      expect(sampleValue(up, 'svc_store_up')).toBe(1);
      expect(sampleValue(up, 'svc_events_accepted_total', { type: 'delivered' })).toBe(1);
      expect(logLines(daemon).filter((line) => line.msg === 'store reachable again')).toMatchObject([{ level: 'info' }]);
      expect(logLines(daemon).filter((line) => line.msg === 'store unreachable')).toHaveLength(1);
    } finally {
      // SIGKILL: with the store down, a graceful stop would wait for it and hide why the test failed.
      await daemon.stop('SIGKILL');
      await server?.destroy();
    }
  });
});
