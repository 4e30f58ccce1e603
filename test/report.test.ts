import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers/loadtest-servers.js';
import { runSvc, startDaemon, tempDir, type Daemon } from './helpers/svc.js';

const CHROMIUM = '/usr/bin/chromium';
/** Screenshots stay after the run, for a person to look at. */
const SCREENSHOTS = new URL('../.cache/report-screenshots/', import.meta.url).pathname;

// Under CI a missing browser is a failure (.ci/run installs it); elsewhere the suite says why it skips.
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && !process.env.CI) console.warn(`report.test.ts: skipped, no ${CHROMIUM} (apt-get install chromium)`);

/** A service that refuses (503) a request when `perSecond` others came in the second before it: its capacity. */
function cappedService(perSecond: number) {
  const arrivals: number[] = [];
  return (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    req.resume();
    const now = performance.now();
    while (arrivals.length > 0 && arrivals[0]! <= now - 1000) arrivals.shift();
    let status = 204;
    if (req.url !== '/healthz') {
      if (arrivals.length >= perSecond) status = 503;
      else arrivals.push(now);
    }
    res.writeHead(status, { 'content-length': 0 }).end();
  };
}

describe.skipIf(!haveBrowser && !process.env.CI)('svc loadtest --report and --find-max', () => {
  const dir = tempDir();
  let daemon: Daemon;
  let capped: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    daemon = await startDaemon('serve-http', ['--store', join(dir.path, 'store')]);
    capped = await startServer(cappedService(300));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-background-networking'] });
  });
  afterAll(async () => {
    await browser?.close();
    await capped?.close();
    await daemon?.stop();
    dir.remove();
  });

  /** Opens a report offline and returns what its charts drew, the console's errors, and a screenshot. */
  async function open(file: string, screenshot: string) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, offline: true });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('request', (request) => !request.url().startsWith('file:') && errors.push(`network request: ${request.url()}`));
    await page.goto(pathToFileURL(file).href);
    const charts = await page.waitForFunction(() => (window as unknown as { svcCharts?: unknown[] }).svcCharts).then((handle) => handle.jsonValue());
    await page.screenshot({ path: join(SCREENSHOTS, screenshot), fullPage: true });
    await context.close();
    return { charts: charts as { id: string; title: string; series: number; points: number; rendered: boolean }[], errors };
  }

  it('draws one run: rate, latency over time, the percentile plot and the answers, with --verify results', async () => {
    const file = join(dir.path, 'run.html');
    const run = await runSvc([
      ...['loadtest', '--target', daemon.url, '--rps', '400', '--duration', '3s', '--warmup', '1s'],
      ...['--domains', '2000', '--read-ratio', '0.1', '--verify', '--report', file],
    ]);
    expect(run.code, run.stderr).toBe(0);
    const html = readFileSync(file, 'utf8');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
    expect(html).toContain('Verification (--verify)');

    const { charts, errors } = await open(file, 'run.png');
    expect(errors).toEqual([]);
    expect(charts.map((chart) => chart.id)).toEqual(['rate', 'latency', 'distribution', 'outcomes']);
    for (const chart of charts) {
      expect(chart.rendered, chart.id).toBe(true);
      // About 4 seconds of a few series, or the 51 points of the percentile plot per series.
      expect(chart.points, chart.id).toBeGreaterThanOrEqual(chart.series * 4);
    }
  });

  it('finds the highest rate that meets the gates, and draws latency against rate', async () => {
    const file = join(dir.path, 'find-max.html');
    const json = join(dir.path, 'find-max.json');
    const run = await runSvc([
      ...['loadtest', '--target', capped.url, '--find-max', '--rps', '100', '--duration', '1s'],
      ...['--max-error-rate', '0', '--report', file, '--json', json],
    ]);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(readFileSync(json, 'utf8'));
    // Capacity 300 a second: 100 and 150 and 225 pass, 338 fails twice, the bisection closes in.
    expect(result.maxRps).toBeGreaterThanOrEqual(225);
    expect(result.maxRps).toBeLessThanOrEqual(310);
    expect(result.steps.some((step: { rps: number; passed: boolean }) => step.rps > result.maxRps && !step.passed)).toBe(true);
    expect(run.stdout).toContain(`highest rate meeting every gate (p95 <= 200 ms, error rate <= 0): ${result.maxRps} requests/s`);

    const { charts, errors } = await open(file, 'find-max.png');
    expect(errors).toEqual([]);
    const search = charts.find((chart) => chart.id === 'search0')!;
    expect(search.rendered).toBe(true);
    const failed = result.steps.filter((step: { passed: boolean }) => !step.passed).length;
    expect(search.points).toBe(3 * result.steps.length + failed);
    expect(charts.map((chart) => chart.id)).toEqual(['rate', 'latency', 'distribution', 'outcomes', 'search0']);
  }, 60_000);
});
