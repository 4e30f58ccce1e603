import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson } from './helpers/http.js';
import { logLines, runSvc, startDaemon, tempDir, type Daemon } from './helpers/svc.js';

const INGEST = 'ingest-secret-7f3a';
const READ = 'read-secret-91c2';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('bearer tokens', () => {
  const dir = tempDir();
  let ingest: Daemon;
  let reader: Daemon;

  beforeAll(async () => {
    // Tokens come from the environment, as the README recommends. Debug level: even the most
    // talkative logs must not show a token or a body.
    ingest = await startDaemon('serve-http', ['--store', dir.path, '--log-level', 'debug'], { SVC_INGEST_TOKEN: INGEST, SVC_READ_TOKEN: READ });
    reader = await startDaemon('serve-read', ['--store', dir.path, '--read-token', READ, '--log-level', 'debug']);
  });
  afterAll(async () => {
    await Promise.all([ingest?.stop(), reader?.stop()]);
    dir.remove();
  });

  it('refuses ingestion without the ingest token, with 401 and a JSON reason, and takes it with the token', async () => {
    const url = `${ingest.url}/events/example.com/delivered`;
    const missing = await getJson(url, { method: 'PUT' });
    expect(missing.status).toBe(401);
    expect(missing.body).toEqual({ error: 'a bearer token is required' });
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');
    for (const headers of [bearer('wrong'), bearer(READ), bearer(INGEST + 'x'), { authorization: INGEST }, bearer('')]) {
      const refused = await getJson(url, { method: 'PUT', headers });
      expect(refused.status, JSON.stringify(headers)).toBe(401);
      expect(refused.body).toEqual({ error: 'invalid bearer token' });
    }
    const batch = await getJson(`${ingest.url}/events`, { method: 'POST', body: '{"domain":"example.com","type":"bounced"}\n' });
    expect(batch.status).toBe(401);

    expect((await fetch(url, { method: 'PUT', headers: bearer(INGEST) })).status).toBe(204);
    // The scheme name is case-insensitive (RFC 9110, section 11.1); the token is not.
    expect((await fetch(url, { method: 'PUT', headers: { authorization: `bearer ${INGEST}` } })).status).toBe(204);
    expect((await fetch(url, { method: 'PUT', headers: { authorization: `BEARER  ${INGEST}` } })).status).toBe(204);
    expect((await fetch(url, { method: 'PUT', headers: bearer(INGEST.toUpperCase()) })).status).toBe(401);
    expect((await fetch(url, { method: 'PUT', headers: { authorization: `Basic ${INGEST}` } })).status).toBe(401);
    const accepted = await getJson(`${ingest.url}/events`, { method: 'POST', headers: bearer(INGEST), body: '{"domain":"example.com","type":"bounced"}\n' });
    expect(accepted.body).toMatchObject({ accepted: 1 });
    expect((await getJson(`${ingest.url}/domains/example.com`, { headers: bearer(READ) })).body).toMatchObject({ delivered: 3, bounced: 1 });
  });

  it('guards reads with the read token on both daemons, and leaves the health routes open', async () => {
    for (const daemon of [ingest, reader]) {
      expect((await getJson(`${daemon.url}/domains/example.com`)).status).toBe(401);
      expect((await getJson(`${daemon.url}/domains/example.com`, { headers: bearer(INGEST) })).status).toBe(401);
      // serve-read sees serve-http's journal within its read lag.
      const read = () => getJson(`${daemon.url}/domains/example.com`, { headers: bearer(READ) });
      await expect.poll(read, { timeout: 2000 }).toMatchObject({ status: 200, body: { domain: 'example.com', delivered: 3, bounced: 1 } });
      expect((await getJson(`${daemon.url}/healthz`)).status).toBe(200);
      expect((await getJson(`${daemon.url}/readyz`)).status).toBe(200);
      // Prometheus scrapes without a token even when both tokens are set.
      const metrics = await fetch(`${daemon.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('svc_http_request_duration_seconds');
    }
  });

  it('lets svc status --url and svc loadtest --verify send the tokens', async () => {
    const refused = await runSvc(['status', 'example.com', '--url', reader.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('401');
    const status = await runSvc(['status', 'example.com', '--url', reader.url, '--json'], { env: { SVC_READ_TOKEN: READ } });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ domain: 'example.com', status: 'not catch-all' });

    const report = join(dir.path, 'loadtest.json');
    const run = await runSvc(
      ['loadtest', '--target', ingest.url, '--rps', '200', '--duration', '1s', '--domains', '50', '--seed', '77', '--read-ratio', '0.2', '--verify', '--json', report],
      { env: { SVC_INGEST_TOKEN: INGEST, SVC_READ_TOKEN: READ } },
    );
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { statusCodes, sent, reads, verify } = JSON.parse(readFileSync(report, 'utf8'));
    // Every event took the ingest token (204) and every read the read token (200).
    expect(statusCodes).toEqual({ '200': reads, '204': sent - reads });
    expect(reads).toBeGreaterThan(0);
    expect(verify).toMatchObject({ lost: 0, extra: 0 });
  });

  it('never writes a token or a request body to the logs, at debug level too', async () => {
    const secretBody = '{"domain":"body-marker-5e1d.example","type":"delivered"}\n';
    await getJson(`${ingest.url}/events`, { method: 'POST', headers: bearer(INGEST), body: secretBody + 'not json at all 5e1d\n' });
    await getJson(`${ingest.url}/events`, { method: 'POST', headers: bearer('wrong-token-5e1d'), body: secretBody });
    const settings = logLines(ingest).find((line) => line.msg === 'settings');
    expect(settings).toMatchObject({ ingestToken: 'set', readToken: 'set' });
    for (const daemon of [ingest, reader]) {
      expect(daemon.output()).toContain('"level":"debug"');
      for (const secret of [INGEST, READ, 'wrong-token-5e1d', 'body-marker', 'not json at all']) expect(daemon.output()).not.toContain(secret);
    }
  });
});

describe('without tokens', () => {
  it('leaves every route open', async () => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path], { SVC_INGEST_TOKEN: '', SVC_READ_TOKEN: '' });
    try {
      expect((await fetch(`${daemon.url}/events/open.example/delivered`, { method: 'PUT' })).status).toBe(204);
      expect((await getJson(`${daemon.url}/domains/open.example`)).body).toMatchObject({ delivered: 1 });
    } finally {
      await daemon.stop();
      dir.remove();
    }
  });
});
