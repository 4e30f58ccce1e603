import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoadtest, type LoadtestReport } from '../src/loadtest/index.js';
import { OverloadedError, ShuttingDownError, StoreUnavailableError } from '../src/core/errors.js';
import { findMaxRate } from '../src/loadtest/find-max.js';
import { Pacer } from '../src/loadtest/pacer.js';
import { challengeCounts, challengePlan, CHALLENGE } from '../src/workload/challenge.js';
import { domainName } from '../src/workload/domain-names.js';
import { createWorkload, takeEvents, type Distribution } from '../src/workload/workload.js';
import { answer, fakeService, startServer, type TestServer } from './helpers/loadtest-servers.js';
import { runSvc, startDaemon, tempDir, type Daemon } from './helpers/svc.js';

const DISTRIBUTIONS: Distribution[] = ['uniform', 'zipf', 'challenge'];

describe('workload', () => {
  it('gives the same event sequence for the same seed, and another for another seed', () => {
    for (const distribution of DISTRIBUTIONS) {
      const events = (seed: number) => takeEvents(createWorkload({ distribution, seed }), 2000);
      expect(events(42)).toEqual(events(42));
      expect(events(42)).not.toEqual(events(43));
    }
  });

  it('leaves the events unchanged when reads are drawn in between', () => {
    for (const distribution of DISTRIBUTIONS) {
      const plain = createWorkload({ distribution, seed: 5 });
      const mixed = createWorkload({ distribution, seed: 5 });
      const a = Array.from({ length: 500 }, () => plain.next());
      const b = Array.from({ length: 500 }, () => (mixed.sampleDomain(), mixed.next()));
      expect(b).toEqual(a);
    }
  });

  it('names domains from their index: 14 mixed-case letters under net/com/org/io/gov, never twice', () => {
    const names = Array.from({ length: 50_000 }, (_, i) => domainName(9, i));
    for (const name of names) expect(name).toMatch(/^[A-Za-z]{14}\.(net|com|org|io|gov)$/);
    expect(new Set(names.map((name) => name.toLowerCase())).size).toBe(names.length);
    expect(names.some((name) => /[a-z]/.test(name) && /[A-Z]/.test(name))).toBe(true);
    expect(domainName(9, 123)).toBe(names[123]);
    expect(domainName(10, 123)).not.toBe(names[123]);
  });

  it('shapes challenge traffic like the challenge: counts below 2,500, bounce spacing, every 25th domain without bounces, interleaved', () => {
    const seed = 3;
    const domains = 300;
    const workload = createWorkload({ distribution: 'challenge', domains, seed, repeat: false });
    const tally = new Map<number, { delivered: number; bounced: number; order: ('delivered' | 'bounced')[] }>();
    const firstDomains = new Set<number>();
    let total = 0;
    for (let event = workload.next(); event; event = workload.next()) {
      if (total++ < 1000) firstDomains.add(event.index);
      const t = tally.get(event.index) ?? { delivered: 0, bounced: 0, order: [] };
      t[event.type]++;
      t.order.push(event.type);
      tally.set(event.index, t);
    }
    expect(tally.size).toBe(domains);
    for (const [index, t] of tally) {
      const { count, bounceEvery } = challengePlan(seed, index);
      expect(count).toBeGreaterThan(0);
      expect(count).toBeLessThan(CHALLENGE.maxEvents);
      expect(t.delivered + t.bounced).toBe(count);
      expect({ delivered: t.delivered, bounced: t.bounced }).toEqual(challengeCounts(seed, index));
      if (index % 25 === 0) expect(t.bounced).toBe(0);
      else if (count >= 3) {
        expect(bounceEvery).toBe(Math.floor(0.35 * count));
        const misplaced = t.order.filter((type, i) => type !== (i % bounceEvery === 0 ? 'bounced' : 'delivered'));
        expect(misplaced).toEqual([]);
      }
    }
    // Interleaved: the first thousand events already come from hundreds of domains.
    expect(firstDomains.size).toBeGreaterThan(200);
  });

  it('samples zipf over 10,000,000 domains in constant memory, with the expected head', () => {
    const workload = createWorkload({ distribution: 'zipf', domains: 10_000_000, seed: 1 });
    let top = 0;
    const samples = 200_000;
    for (let i = 0; i < samples; i++) if (workload.next()!.index === 0) top++;
    // P(rank 1) = 1 / H(n) for s = 1, and H(10^7) ≈ ln(10^7) + 0.5772.
    const expected = 1 / (Math.log(10_000_000) + 0.5772);
    expect(top / samples).toBeGreaterThan(expected * 0.9);
    expect(top / samples).toBeLessThan(expected * 1.1);
  });
});

describe('pacer', () => {
  it('queues due requests while every slot is busy, drops them once the queue is full, and keeps the due order', async () => {
    const sent: { due: number; queued: boolean }[] = [];
    const dropped: number[] = [];
    let inFlight = 0;
    let blocked = true;
    // A request every 5 ms, nothing completing for the first 150 ms: wide enough that a timer
    // firing tens of milliseconds late on a loaded machine changes nothing asserted below.
    const interval = 5;
    const startMs = performance.now() + 2;
    const sender = {
      ready: () => inFlight < 2,
      send: (due: number, queued: boolean) => {
        sent.push({ due, queued });
        inFlight++;
        // Nothing completes for the first 150 ms; afterwards every request completes at once.
        const complete = () => {
          inFlight--;
          pacer.release();
        };
        if (blocked) setTimeout(complete, startMs + 150 - performance.now());
        else queueMicrotask(complete);
      },
      drop: (due: number) => dropped.push(due),
    };
    const pacer = new Pacer(sender, { startMs, intervalMs: interval, total: 60, maxQueue: 5, drainMs: 100 });
    setTimeout(() => (blocked = false), 125);
    await pacer.run();
    expect(sent.length + dropped.length).toBe(60);
    // Two sent on time; the next five waited (the oldest: a full queue drops newcomers); the rest of the stall was dropped.
    expect(sent.slice(0, 7)).toEqual(Array.from({ length: 7 }, (_, i) => ({ due: startMs + i * interval, queued: i >= 2 })));
    expect(dropped[0]).toBe(startMs + 7 * interval);
    expect(dropped.length).toBeGreaterThan(15);
    const dues = sent.map((s) => s.due);
    expect(dues).toEqual([...dues].sort((a, b) => a - b));
    expect(sent.at(-1)!.due).toBe(startMs + 59 * interval);
  });
});

describe('capacity search (findMaxRate)', () => {
  const capacity = (limit: number) => {
    const tried: number[] = [];
    const step = async (rps: number) => (tried.push(rps), { rps, passed: rps <= limit });
    return { step, tried };
  };

  it('steps up ×1.5, tries a failed rate twice, then bisects to within 5 %', async () => {
    const { step, tried } = capacity(1000);
    const { best, steps } = await findMaxRate(step, { start: 100 });
    expect(tried.slice(0, 8)).toEqual([100, 150, 225, 338, 506, 759, 1139, 1139]);
    expect(best!.rps).toBeGreaterThan(950);
    expect(best!.rps).toBeLessThanOrEqual(1000);
    expect(steps).toHaveLength(tried.length);
  });

  it('comes down from a start that is too high, and gives up at a sixteenth of it', async () => {
    const high = capacity(1000);
    expect((await findMaxRate(high.step, { start: 5000 })).best!.rps).toBeGreaterThan(900);
    expect(high.tried.slice(0, 7)).toEqual([5000, 5000, 2500, 2500, 1250, 1250, 625]);
    const none = capacity(10);
    const result = await findMaxRate(none.step, { start: 5000 });
    expect(result.best).toBeUndefined();
    expect(Math.min(...none.tried)).toBe(313);
  });
});

describe('loadtest measurement', () => {
  it('sends at the requested rate, spread evenly over the run', async () => {
    const arrivals: number[] = [];
    let probedAt = 0;
    const server = await startServer((req, res) => {
      if (req.url !== '/healthz') arrivals.push(performance.now());
      else probedAt = performance.now();
      answer(204)(req, res);
    });
    try {
      const report = await runLoadtest({ target: server.url, rps: 500, durationMs: 3000, connections: 8 });
      expect(report.scheduled).toBe(1500);
      expect(report.sent).toBe(1500);
      expect(report.achievedRps).toBeLessThan(500 * 1.03);
      // When every request left on time the rate is the one asked for. On a starved machine (the
      // server shares this process) requests leave late and the report counts them, which is
      // the honest answer then.
      if (report.late === 0) expect(report.achievedRps).toBeGreaterThan(500 * 0.97);
      // A pacer that sent everything in a burst would pass the counts above: look at when requests
      // arrived. None may come before its time (the i-th i × 2 ms after the schedule starts, which
      // is after the probe); on a busy machine many come late, the machine's doing, not the pacer's.
      expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(2800);
      const early = arrivals.filter((at, i) => at - probedAt < i * 2);
      expect(early).toEqual([]);
      expect(report.ok).toBe(1500);
      expect(report.statusCodes).toEqual({ 204: 1500 });
      expect(report.dropped).toBe(0);
      expect(report.errorRate).toBe(0);
      expect(server.requests()).toBe(1500 + 1); // and the probe
    } finally {
      await server.close();
    }
  });

  it('shows a one-second stall in the corrected p95/p99, not in the uncorrected figures', async () => {
    let stallFrom = 0;
    const server = await startServer((req, res) => {
      req.resume();
      const now = Date.now();
      if (req.url === '/healthz') stallFrom = now + 1000;
      const send = () => res.writeHead(204).end();
      // Every request that arrives during the stall is answered when it ends.
      if (now >= stallFrom && now < stallFrom + 1000) setTimeout(send, stallFrom + 1000 - now);
      else send();
    });
    try {
      const report = await runLoadtest({ target: server.url, rps: 200, durationMs: 3000, connections: 8 });
      expect(report.ok).toBe(600);
      expect(report.latencyMs.p95).toBeGreaterThan(600);
      expect(report.latencyMs.p99).toBeGreaterThan(850);
      expect(report.latencyMs.max).toBeGreaterThan(900);
      expect(report.latencyMs.max).toBeLessThan(1500);
      // Only the 8 requests in flight when the stall began saw it from their actual send.
      expect(report.uncorrectedLatencyMs.p95).toBeLessThan(100);
      expect(report.queued).toBeGreaterThan(150);
      expect(report.late).toBeGreaterThan(150);
      expect(report.warnings.join()).toMatch(/waited for a free connection slot/);
    } finally {
      await server.close();
    }
  });

  it('excludes the warm-up from the results', async () => {
    const server = await startServer(answer(204));
    try {
      const report = await runLoadtest({ target: server.url, rps: 400, warmupMs: 500, durationMs: 1000 });
      expect(report.sent).toBe(400);
      expect(server.requests()).toBe(600 + 1);
    } finally {
      await server.close();
    }
  });

  it('treats a 503 "overloaded" or "shutting down" as not counted, and a store 503 or a 500 as perhaps counted', async () => {
    // The messages serve-http sends, taken from the errors it throws.
    const answers = [
      [503, new OverloadedError().message],
      [503, new ShuttingDownError().message],
      [503, new StoreUnavailableError().message],
      [500, 'internal error'],
    ] as const;
    let n = 0;
    const server = await startServer((req, res) => {
      req.resume();
      if (req.method === 'GET') {
        const body = JSON.stringify({ domain: 'x', status: 'unknown', delivered: 0, bounced: 0 });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        return;
      }
      const [status, error] = answers[n++ % answers.length]!;
      res.writeHead(status, { 'retry-after': '1', 'content-type': 'application/json' }).end(JSON.stringify({ error }));
    });
    try {
      const report = await runLoadtest({ target: server.url, rps: 200, durationMs: 500, verify: true, domains: 50 });
      expect(report.errors).toBe(100);
      expect(report.errorRate).toBe(1);
      expect(report.statusCodes).toEqual({ 503: 75, 500: 25 });
      // Half the requests (the store 503 and the 500) may have been counted.
      expect(report.verify).toMatchObject({ acknowledged: 0, indefinite: 50, counted: 0, lost: 0, extra: 0, unreadable: 0 });
    } finally {
      await server.close();
    }
  });

  it('times out requests that get no answer and counts their events as indefinite', async () => {
    let n = 0;
    const service = fakeService({ factor: 1 });
    // Every other event is never answered (nor counted).
    const server = await startServer((req, res) => (req.method === 'PUT' && n++ % 2 === 1 ? req.resume() : service(req, res)));
    try {
      const started = performance.now();
      const report = await runLoadtest({ target: server.url, rps: 100, durationMs: 500, timeoutMs: 300, connections: 64, verify: true });
      // Not a speed test: only a generator that waited for the answers for ever would miss this.
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(report.errorsByKind).toEqual({ status: 0, timeout: 25 });
      expect(report.verify).toMatchObject({ acknowledged: 25, indefinite: 25, counted: 25, lost: 0, extra: 0 });
    } finally {
      await server.close();
    }
  });

  it('reports events counted twice as extra', async () => {
    const server = await startServer(fakeService({ factor: 2 }));
    try {
      const report = await runLoadtest({ target: server.url, rps: 200, durationMs: 500, verify: true, domains: 20 });
      expect(report.verify!.lost).toBe(0);
      expect(report.verify!.extra).toBe(100);
      expect(report.verify!.mismatches.length).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });
});

describe('svc loadtest (CLI)', () => {
  const dir = tempDir('svc-loadtest-');
  let daemon: Daemon;
  const servers: TestServer[] = [];
  const serve = async (handler: Parameters<typeof startServer>[0]) => {
    const server = await startServer(handler);
    servers.push(server);
    return server;
  };
  const loadtest = async (args: string[]) => {
    const file = join(dir.path, `report-${Math.random().toString(36).slice(2)}.json`);
    const result = await runSvc(['loadtest', '--json', file, ...args]);
    const report = result.code === 2 ? undefined : (JSON.parse(readFileSync(file, 'utf8')) as LoadtestReport & { gates: { gate: string; passed: boolean }[] });
    return { ...result, report };
  };

  beforeAll(async () => {
    daemon = await startDaemon('serve-http', ['--store', join(dir.path, 'store')]);
  });
  afterAll(async () => {
    await daemon?.stop();
    await Promise.all(servers.map((server) => server.close()));
    dir.remove();
  });

  it('fails --verify (exit 1) against a service that acknowledges events but never counts them', async () => {
    const server = await serve(fakeService({ factor: 0 }));
    const { code, stdout, report } = await loadtest(['--target', server.url, '--rps', '200', '--duration', '1s', '--verify', '--domains', '100']);
    expect(code).toBe(1);
    expect(report!.verify!.acknowledged).toBe(200);
    expect(report!.verify!.lost).toBe(200);
    expect(report!.gates).toContainEqual(expect.objectContaining({ gate: 'verify-lost', passed: false }));
    expect(stdout).toMatch(/verify-lost 0: 200 FAILED/);
  });

  it('fails --verify (exit 1) against a service that counts events twice', async () => {
    const server = await serve(fakeService({ factor: 2 }));
    const { code, stdout, report } = await loadtest(['--target', server.url, '--rps', '200', '--duration', '1s', '--verify', '--domains', '100']);
    expect(code).toBe(1);
    expect(report!.verify).toMatchObject({ acknowledged: 200, lost: 0, extra: 200 });
    expect(report!.gates).toContainEqual(expect.objectContaining({ gate: 'verify-extra', passed: false }));
    expect(stdout).toMatch(/verify-extra 0: 200 FAILED/);
  });

  it('verifies every count against the real serve-http: nothing lost, nothing extra', async () => {
    const events = await loadtest(['--target', daemon.url, '--rps', '300', '--duration', '1500ms', '--connections', '32', '--domains', '2000', '--verify']);
    expect(events.stderr).toMatch(/sent/);
    expect(events.code).toBe(0);
    expect(events.report!.ok).toBe(450);
    expect(events.report!.verify).toMatchObject({ acknowledged: 450, lost: 0, extra: 0, unreadable: 0 });

    // Another seed touches other domains, so the store is still fresh for them.
    const batches = await loadtest([
      ...['--target', daemon.url, '--rps', '50', '--duration', '1s', '--mode', 'batch', '--batch-size', '40'],
      ...['--distribution', 'challenge', '--read-ratio', '0.2', '--seed', '2', '--verify'],
    ]);
    expect(batches.code).toBe(0);
    expect(batches.report!.verify!.acknowledged).toBe(batches.report!.events.acknowledged);
    expect(batches.report!.verify).toMatchObject({ lost: 0, extra: 0, unreadable: 0 });
    expect(batches.report!.reads).toBeGreaterThan(0);
  });

  it('pipelines requests (--pipelining) and verifies against another daemon (--verify-url)', async () => {
    const reader = await startDaemon('serve-read', ['--store', join(dir.path, 'store'), '--cache-size', '0']);
    try {
      const run = await loadtest([
        ...['--target', daemon.url, '--verify-url', reader.url, '--rps', '400', '--duration', '1s'],
        ...['--connections', '2', '--pipelining', '4', '--domains', '300', '--seed', '31', '--verify'],
      ]);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(run.report).toMatchObject({ pipelining: 4, connections: 2, ok: 400 });
      expect(run.report!.verify).toMatchObject({ url: reader.url, acknowledged: 400, lost: 0, extra: 0, unreadable: 0 });
      // Every domain was read back from serve-read, none from serve-http.
      const reads = await fetch(`${reader.url}/metrics`).then((res) => res.text());
      const served = Number(/^svc_http_request_duration_seconds_count\{[^}]*route="\/domains\/:domain"[^}]*status="200"[^}]*\} (\d+)$/m.exec(reads)?.[1]);
      expect(served).toBeGreaterThanOrEqual(run.report!.verify!.domains);
    } finally {
      await reader.stop();
    }
  });

  it('exits 1 when the p95 gate is violated, 0 when it is met', async () => {
    const server = await serve(answer(204, 30));
    const slow = await loadtest(['--target', server.url, '--rps', '100', '--duration', '1s', '--max-p95', '10']);
    expect(slow.code).toBe(1);
    expect(slow.report!.latencyMs.p95).toBeGreaterThan(25);
    expect(slow.report!.gates).toEqual([expect.objectContaining({ gate: 'max-p95', passed: false })]);
    const met = await loadtest(['--target', server.url, '--rps', '100', '--duration', '1s', '--max-p95', '2s']);
    expect(met.code).toBe(0);
  });

  it('exits 1 when the error-rate gate is violated', async () => {
    let n = 0;
    const server = await serve((req, res) => answer(n++ % 2 === 0 ? 204 : 500)(req, res));
    const { code, report, stdout } = await loadtest(['--target', server.url, '--rps', '100', '--duration', '1s', '--max-error-rate', '0.1']);
    expect(code).toBe(1);
    expect(report!.errorRate).toBeGreaterThan(0.4);
    expect(report!.statusCodes[500]).toBeGreaterThan(40);
    expect(stdout).toMatch(/max-error-rate 0.1: .* FAILED/);
  });

  it('exits 1 when the target is unreachable and 2 on a usage error', async () => {
    const server = await startServer(answer(204));
    const closed = server.url;
    await server.close();
    const unreachable = await runSvc(['loadtest', '--target', closed, '--duration', '1s']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach/);
    for (const args of [['--rps', '0'], ['--mode', 'stream'], ['--target', 'ftp://example.com'], ['--read-ratio', '2']]) {
      const usage = await runSvc(['load-test', ...args]);
      expect(usage.code, args.join(' ')).toBe(2);
    }
  });
});
