import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { expectNothingAcknowledgedLost, makeEvents, putEvents, tally, type TestEvent } from './helpers/http.js';
import { startDaemon, storedCounts, tempDir } from './helpers/svc.js';

describe.each([1, 2])('serve-http with --workers %i', (workers) => {
  it('counts exactly across workers', async () => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--workers', String(workers)]);
    try {
      const events = makeEvents(3000, 200, workers);
      expect((await putEvents(daemon.url, events, 32)).every((s) => s === 204)).toBe(true);
      expect(await daemon.stop()).toBe(0);
      const expected = tally(events);
      expect(await storedCounts(dir.path, [...expected.keys()])).toEqual(expected);
    } finally {
      await daemon.stop();
      dir.remove();
    }
  });

  it.each(['SIGTERM', 'SIGKILL'] as const)('loses nothing acknowledged when stopped with %s under load', async (signal) => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--workers', String(workers)]);
    try {
      const events = makeEvents(20_000, 500, 7 + workers);
      const load = putEvents(daemon.url, events, 64);
      await new Promise((resolve) => setTimeout(resolve, 700));
      const exitCode = await daemon.stop(signal);
      const statuses = await load;
      if (signal === 'SIGTERM') expect(exitCode).toBe(0);

      const acknowledged: TestEvent[] = events.filter((_, i) => statuses[i] === 204);
      expect(acknowledged.length).toBeGreaterThan(0);
      expect(acknowledged.length).toBeLessThan(events.length);
      const sent = tally(events);
      expectNothingAcknowledgedLost(await storedCounts(dir.path, [...sent.keys()]), tally(acknowledged), sent);
    } finally {
      await daemon.stop('SIGKILL');
      dir.remove();
    }
  });
});

describe('shutdown with a request that never completes', () => {
  it.each([1, 2])('exits 0 within --shutdown-timeout (--workers %i)', async (workers) => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--workers', String(workers), '--shutdown-timeout', '2s']);
    const { hostname, port } = new URL(daemon.url);
    // A POST whose body never arrives keeps a request in flight for ever.
    const socket = connect(Number(port), hostname);
    try {
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{"domain":');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = Date.now();
      expect(await daemon.stop('SIGTERM')).toBe(0);
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(1500);
      expect(elapsed).toBeLessThan(6000);
    } finally {
      socket.destroy();
      await daemon.stop('SIGKILL');
      dir.remove();
    }
  });
});
