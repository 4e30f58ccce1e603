import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, makeEvents, putEvents, tally } from './helpers/http.js';
import { runSvc, startDaemon, tempDir, type Daemon } from './helpers/svc.js';

describe('svc serve-http', () => {
  const dir = tempDir();
  let daemon: Daemon;

  beforeAll(async () => {
    daemon = await startDaemon('serve-http', ['--store', dir.path, '--max-body', '4096']);
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
    dir.remove();
  });

  it('counts many concurrent requests across many domains exactly', async () => {
    const events = makeEvents(3000, 300);
    const statuses = await putEvents(daemon.url, events, 48);
    expect(statuses.every((s) => s === 204)).toBe(true);
    const expected = tally(events);
    for (const [domain, counts] of expected) {
      const { body } = await getJson(`${daemon.url}/domains/${domain}`);
      expect(body).toMatchObject({ domain, ...counts });
    }
  });

  it('treats names that differ only in case, trailing dot or encoding as one domain', async () => {
    for (const name of ['Mixed.Example.', 'mixed.example', 'MIXED.EXAMPLE', 'mixed%2Eexample']) {
      const res = await fetch(`${daemon.url}/events/${name}/delivered`, { method: 'PUT', body: 'ignored' });
      expect(res.status).toBe(204);
    }
    const idn = await fetch(`${daemon.url}/events/${encodeURIComponent('Bücher.example')}/bounced`, { method: 'PUT' });
    expect(idn.status).toBe(204);
    expect((await getJson(`${daemon.url}/domains/mixed.example`)).body).toEqual({
      domain: 'mixed.example',
      status: 'unknown',
      delivered: 4,
      bounced: 0,
    });
    expect((await getJson(`${daemon.url}/domains/xn--bcher-kva.example`)).body.status).toBe('not catch-all');
  });

  it('counts the valid lines of a batch and explains the invalid ones', async () => {
    const body = [
      '{"domain":"batch.example","type":"delivered"}',
      '{"domain":"batch.example","type":"bounced","ts":1}',
      'garbage',
      '{"domain":"bad_name.example","type":"delivered"}',
      '',
      '{"domain":"batch.example","type":"clicked"}',
    ].join('\n');
    const res = await getJson(`${daemon.url}/events`, { method: 'POST', body });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      accepted: 2,
      rejected: 3,
      errors: [
        { line: 3, reason: 'line is not valid JSON' },
        { line: 4, reason: 'domain contains an invalid character "_"' },
        { line: 6, reason: 'unknown event type "clicked"' },
      ],
    });
    expect((await getJson(`${daemon.url}/domains/batch.example`)).body).toMatchObject({ delivered: 1, bounced: 1 });
  });

  it('answers bad requests with a JSON reason and keeps serving', async () => {
    const cases: Array<[string, string, number, Record<string, string>?]> = [
      ['PUT', '/events/example.com/opened', 400],
      ['PUT', '/events/a..b/delivered', 400],
      ['PUT', '/events/%E0%A4%A/delivered', 400],
      ['PUT', '/events/a%00b.com/delivered', 400],
      ['PUT', `/events/${'a'.repeat(300)}/delivered`, 400],
      ['GET', '/domains/-bad-.com', 400],
      ['GET', '/nowhere', 404],
      ['GET', '/events/example.com/delivered', 405, { allow: 'PUT' }],
      ['DELETE', '/domains/example.com', 405, { allow: 'GET' }],
      ['GET', '/events', 405, { allow: 'POST' }],
    ];
    for (const [method, path, status, headers] of cases) {
      const res = await getJson(`${daemon.url}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(status);
      expect(typeof res.body.error, `${method} ${path}`).toBe('string');
      for (const [name, value] of Object.entries(headers ?? {})) expect(res.headers.get(name)).toBe(value);
    }
    const empty = await getJson(`${daemon.url}/events`, { method: 'POST', body: '\n\n' });
    expect(empty).toMatchObject({ status: 400, body: { error: 'body holds no events', accepted: 0, rejected: 0, errors: [] } });
    const allBad = await getJson(`${daemon.url}/events`, { method: 'POST', body: 'x\ny\n' });
    expect(allBad).toMatchObject({ status: 400, body: { accepted: 0, rejected: 2 } });
    const tooLarge = await getJson(`${daemon.url}/events`, { method: 'POST', body: 'x'.repeat(5000) });
    expect(tooLarge.status).toBe(413);
    expect((await getJson(`${daemon.url}/healthz`)).status).toBe(200);
  });

  it('reports health and readiness', async () => {
    expect(await getJson(`${daemon.url}/healthz`)).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await getJson(`${daemon.url}/readyz`)).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('is read by serve-read and svc status while it runs', async () => {
    await putEvents(daemon.url, [
      ...Array.from({ length: 1001 }, () => ({ domain: 'catchall.example', type: 'delivered' as const })),
      { domain: 'strict.example', type: 'bounced' },
    ]);
    const reader = await startDaemon('serve-read', ['--store', dir.path]);
    try {
      expect((await getJson(`${reader.url}/domains/Catchall.Example.`)).body).toEqual({
        domain: 'catchall.example',
        status: 'catch-all',
        delivered: 1001,
        bounced: 0,
      });
      expect((await getJson(`${reader.url}/domains/strict.example`)).body.status).toBe('not catch-all');
      expect((await getJson(`${reader.url}/events`, { method: 'POST', body: '' })).status).toBe(404);
    } finally {
      expect(await reader.stop()).toBe(0);
    }

    const fromStore = await runSvc(['status', '--store', dir.path, '--json', 'catchall.example', 'strict.example', 'never.example']);
    expect(fromStore.code).toBe(0);
    expect(fromStore.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { domain: 'catchall.example', status: 'catch-all', delivered: 1001, bounced: 0 },
      { domain: 'strict.example', status: 'not catch-all', delivered: 0, bounced: 1 },
      { domain: 'never.example', status: 'unknown', delivered: 0, bounced: 0 },
    ]);
    const fromUrl = await runSvc(['status', '--url', daemon.url, 'CATCHALL.example']);
    expect(fromUrl.code).toBe(0);
    expect(fromUrl.stdout).toMatch(/^catchall\.example\s+catch-all\s+delivered=1001 bounced=0$/m);
  });
});

describe('svc serve-http backpressure', () => {
  it('answers 503 with Retry-After past --max-pending, then recovers', async () => {
    const dir = tempDir();
    // A batch waits 2 s before its commit: all 20 requests arrive within it, however busy the machine.
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--max-pending', '5', '--flush-ms', '2s']);
    try {
      const statuses = await putEvents(daemon.url, makeEvents(20, 20), 20);
      expect(statuses.filter((s) => s === 204)).toHaveLength(5);
      expect(statuses.filter((s) => s === 503)).toHaveLength(15);
      const res = await fetch(`${daemon.url}/events/late.example/delivered`, { method: 'PUT' });
      expect(res.status).toBe(204);
      const overloaded = await Promise.all(Array.from({ length: 8 }, () => fetch(`${daemon.url}/events/x.example/delivered`, { method: 'PUT' })));
      const refused = overloaded.find((r) => r.status === 503)!;
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(await refused.json()).toEqual({ error: 'too many pending events, retry later' });
      // Every request above has its answer, so nothing waits: one batch larger than --max-pending
      // is taken then (documented), or it would be refused for ever.
      const body = makeEvents(8, 8).map((event) => JSON.stringify(event)).join('\n');
      expect(await getJson(`${daemon.url}/events`, { method: 'POST', body })).toMatchObject({ status: 200, body: { accepted: 8 } });
    } finally {
      await daemon.stop();
      dir.remove();
    }
  });
});

describe('svc serve-http --commit-interval', () => {
  it('commits at once when idle, spaces the commits that follow, and counts them all', async () => {
    const dir = tempDir();
    // An interval long enough that waiting it out is told apart from committing at once, however
    // busy the machine.
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--commit-interval', '2s']);
    const put = async (domain: string) => {
      const started = performance.now();
      const res = await fetch(`${daemon.url}/events/${domain}/delivered`, { method: 'PUT' });
      return { status: res.status, ms: performance.now() - started };
    };
    try {
      const first = await put('paced.example');
      const second = await put('paced.example');
      expect([first.status, second.status]).toEqual([204, 204]);
      // Idle: committed at once, not after the interval.
      expect(first.ms).toBeLessThan(1000);
      // The first commit's start was at most `first.ms` before the second request was sent.
      expect(second.ms).toBeGreaterThanOrEqual(2000 - first.ms - 50);
      const { body } = await getJson(`${daemon.url}/domains/paced.example`);
      expect(body).toMatchObject({ delivered: 2, bounced: 0 });
    } finally {
      await daemon.stop();
      dir.remove();
    }
  });
});
