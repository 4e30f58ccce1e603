import { describe, expect, it } from 'vitest';
import { makeEvents, putEvents, tally, type TestEvent } from './helpers/http.js';
import { runSvc, startDaemon, tempDir } from './helpers/svc.js';

async function countsInStore(store: string, domains: string[]) {
  const result = await runSvc(['status', '--store', store, '--json', ...domains]);
  expect(result.code).toBe(0);
  return new Map(
    result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
      .map((r) => [r.domain as string, { delivered: r.delivered as number, bounced: r.bounced as number }]),
  );
}

describe.each([1, 2])('serve-http with --workers %i', (workers) => {
  it('counts exactly across workers', async () => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--workers', String(workers)]);
    try {
      const events = makeEvents(3000, 200, workers);
      expect((await putEvents(daemon.url, events, 32)).every((s) => s === 204)).toBe(true);
      expect(await daemon.stop()).toBe(0);
      const expected = tally(events);
      expect(await countsInStore(dir.path, [...expected.keys()])).toEqual(expected);
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
      const acked = tally(acknowledged);
      const sent = tally(events);
      const counted = await countsInStore(dir.path, [...sent.keys()]);
      for (const [domain, sentCounts] of sent) {
        const c = counted.get(domain)!;
        const a = acked.get(domain) ?? { delivered: 0, bounced: 0 };
        expect(c.delivered, domain).toBeGreaterThanOrEqual(a.delivered);
        expect(c.bounced, domain).toBeGreaterThanOrEqual(a.bounced);
        expect(c.delivered, domain).toBeLessThanOrEqual(sentCounts.delivered);
        expect(c.bounced, domain).toBeLessThanOrEqual(sentCounts.bounced);
      }
    } finally {
      await daemon.stop('SIGKILL');
      dir.remove();
    }
  });
});
