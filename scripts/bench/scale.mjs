// The ingestion figures of `npm run bench` at the challenge's scale: throughput under wrk next to
// a bare node:http server in the same run, latency at fixed rates under `svc loadtest`, the lag
// of what serve-read sees, and the restart after a kill -9. Each helper starts what it measures
// and stops it again.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { loadStep } from './load.mjs';
import { startDaemon } from './processes.mjs';
import { runWrk } from './wrk.mjs';

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * svc and its ceiling under the same wrk load, in alternating runs (A-B-A-B…), so that the
 * machine's drift hits both alike; the ratio is the median of the rounds' ratios. Each run has its
 * own process, so that nothing svc does in the background (applying its journal) falls into the
 * ceiling's run; svc's runs last `svcSeconds`, long enough to hold apply jobs of their own.
 */
export async function versus(name, { svcArgs, ceilingArgs, rounds, seconds, svcSeconds = seconds, connections, load, log }) {
  const runs = { svc: [], ceiling: [] };
  let peakRssAnon = 0;
  let peakRss = 0;
  for (let round = 0; round < rounds; round++) {
    for (const [side, args, length] of [['ceiling', ceilingArgs, seconds], ['svc', svcArgs, svcSeconds]]) {
      const daemon = await startDaemon(args.map(String));
      try {
        const cpuBefore = daemon.cpuSeconds();
        const run = await runWrk(daemon.url, { seconds: length, connections, load });
        run.cpuMicrosPerRequest = ((daemon.cpuSeconds() - cpuBefore) * 1e6) / run.requests;
        runs[side].push(run);
        if (side === 'svc') {
          peakRssAnon = Math.max(peakRssAnon, daemon.peakRssAnon());
          peakRss = Math.max(peakRss, daemon.peakRss());
        }
        log(`${name} ${side}: ${Math.round(run.okRps)}/s, p50 ${run.p50Ms.toFixed(2)} ms, p95 ${run.p95Ms.toFixed(1)} ms, non-2xx ${run.non2xx}, ${Math.round(run.cpuMicrosPerRequest)} µs CPU/request`);
      } finally {
        await daemon.stop();
      }
    }
  }
  const summary = (list) => ({
    okRps: median(list.map((r) => r.okRps)),
    p50Ms: median(list.map((r) => r.p50Ms)),
    p95Ms: median(list.map((r) => r.p95Ms)),
    cpuMicrosPerRequest: median(list.map((r) => r.cpuMicrosPerRequest)),
    non2xx: list.reduce((sum, r) => sum + r.non2xx, 0),
  });
  const ratio = median(runs.svc.map((run, i) => run.okRps / runs.ceiling[i].okRps));
  return { runs, ratio, svc: { ...summary(runs.svc), peakRssAnon, peakRss }, ceiling: summary(runs.ceiling) };
}

/** One daemon under one wrk load (several runs; the median). */
export async function alone(name, { args, rounds, seconds, connections, load, log }) {
  const daemon = await startDaemon(args.map(String));
  try {
    const runs = [];
    for (let round = 0; round < rounds; round++) {
      const run = await runWrk(daemon.url, { seconds, connections, load });
      runs.push(run);
      log(`${name}: ${Math.round(run.okRps)}/s, p50 ${run.p50Ms.toFixed(3)} ms, p95 ${run.p95Ms.toFixed(1)} ms, non-2xx ${run.non2xx}`);
    }
    return { runs, okRps: median(runs.map((r) => r.okRps)), p50Ms: median(runs.map((r) => r.p50Ms)), p95Ms: median(runs.map((r) => r.p95Ms)), peakRssAnon: daemon.peakRssAnon() };
  } finally {
    await daemon.stop();
  }
}

/**
 * POST batches for `seconds`: at first the journal takes in more than LMDB applies, until its
 * bound is reached and serve-http refuses what would pass it (503). The events acknowledged in
 * the last `steadySeconds` are what the store sustains.
 */
export async function sustainedBatches(name, { args, seconds, steadySeconds, connections, load, batch, log }) {
  const daemon = await startDaemon(args.map(String));
  try {
    const running = runWrk(daemon.url, { seconds, connections, load });
    await sleep((seconds - steadySeconds) * 1000);
    const before = await scrape(daemon.url);
    const started = performance.now();
    const run = await running;
    const after = await scrape(daemon.url);
    const elapsed = (performance.now() - started) / 1000;
    const accepted = metric(after, 'svc_events_accepted_total') - metric(before, 'svc_events_accepted_total');
    const applied = metric(after, 'svc_journal_applied_events_total') - metric(before, 'svc_journal_applied_events_total');
    const result = { ...run, eventsPerSecond: accepted / elapsed, appliedPerSecond: applied / elapsed, steadySeconds: elapsed, peakRssAnon: daemon.peakRssAnon(), batch };
    log(`${name}: ${Math.round(result.eventsPerSecond)} events/s acknowledged and ${Math.round(result.appliedPerSecond)} applied to LMDB over the last ${elapsed.toFixed(0)} s; ${run.non2xx} requests refused (503) in all`);
    return result;
  } finally {
    await daemon.stop();
  }
}

/**
 * Status reads on serve-read at a fixed rate (open model) while serve-http ingests batches at a
 * fixed rate, both with `svc loadtest`; meanwhile probes measure how long an acknowledged event
 * takes to show on serve-read, and serve-read's own lag histogram is read.
 */
export async function readsWhileIngesting({ writerArgs, readerArgs, ingestEventsPerSecond, batch, readRps, domains, seconds, warmup, log }) {
  const writer = await startDaemon(writerArgs.map(String));
  const reader = await startDaemon(readerArgs.map(String));
  try {
    const common = { seconds, warmup };
    const [ingest, read, probes] = await Promise.all([
      loadStep(writer, Math.round(ingestEventsPerSecond / batch), { ...common, args: ['--mode', 'batch', '--batch-size', batch, '--domains', domains, '--connections', 32].map(String) }),
      loadStep(reader, readRps, { ...common, args: ['--read-ratio', 1, '--domains', domains, '--connections', 64].map(String) }),
      probeLag(writer.url, reader.url, { count: 200, everyMs: ((seconds + warmup) * 1000) / 250 }),
    ]);
    const readerMetrics = await scrape(reader.url);
    const lagMetric = histogramQuantile(readerMetrics, 'svc_journal_read_lag_seconds', 0.99);
    // serve-read's own view: from routing to the end of the answer, without the client's side.
    const serverP99 = histogramQuantile(readerMetrics, 'svc_http_request_duration_seconds', 0.99, 'route="/domains/:domain"');
    const result = {
      ingestEventsPerSecond,
      ingest,
      readRps,
      read,
      probes,
      lagMetricP99Ms: lagMetric === undefined ? undefined : lagMetric * 1000,
      serverP99Ms: serverP99 === undefined ? undefined : serverP99 * 1000,
      writerPeakRssAnon: writer.peakRssAnon(),
    };
    log(`reads at ${readRps}/s while ingesting ${ingestEventsPerSecond} events/s: read p99 ${read.p99Ms.toFixed(1)} ms (p95 ${read.p95Ms.toFixed(1)}; server-side p99 ≤ ${result.serverP99Ms} ms), ingest p95 ${ingest.p95Ms.toFixed(1)} ms; ack → visible on serve-read p50 ${probes.p50Ms.toFixed(1)} ms, p99 ${probes.p99Ms.toFixed(1)} ms (metric p99 ≤ ${result.lagMetricP99Ms} ms)`);
    return result;
  } finally {
    await writer.stop();
    await reader.stop();
  }
}

/** PUTs a fresh domain on the writer, then reads it on the reader every millisecond until it shows. */
async function probeLag(writerUrl, readerUrl, { count, everyMs }) {
  const lags = [];
  const tag = Date.now().toString(36);
  for (let i = 0; i < count; i++) {
    const domain = `probe-${tag}-${i}.example`;
    const put = await request(`${writerUrl}/events/${domain}/delivered`, { method: 'PUT' });
    await put.body.dump();
    if (put.statusCode !== 204) continue;
    const acknowledged = performance.now();
    for (;;) {
      const get = await request(`${readerUrl}/domains/${domain}`);
      const body = await get.body.json();
      if (body.delivered === 1) break;
      if (performance.now() - acknowledged > 10_000) break;
      await sleep(1);
    }
    lags.push(performance.now() - acknowledged);
    await sleep(everyMs);
  }
  const sorted = lags.sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { count: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted.at(-1) };
}

/**
 * kill -9 of serve-http in the middle of a wrk load, then a restart on the same store: the time
 * from the new process's start to its first 200 on /readyz, and the journal it found.
 */
export async function restartAfterKill({ args, load, loadSeconds, connections, journalDir, log }) {
  const first = await startDaemon(args.map(String));
  const loading = runWrk(first.url, { seconds: loadSeconds, connections, load }).catch(() => undefined);
  await sleep(((loadSeconds * 2) / 3) * 1000);
  await first.stop('SIGKILL');
  await loading;
  const journalBytes = await duBytes(journalDir);
  const started = performance.now();
  const second = await startDaemon(args.map(String));
  const listeningMs = performance.now() - started;
  for (;;) {
    const ready = await request(`${second.url}/readyz`).then(async (res) => (await res.body.dump(), res.statusCode), () => 0);
    if (ready === 200) break;
    await sleep(20);
  }
  const readyMs = performance.now() - started;
  log(`restart after kill -9 under load: listening after ${Math.round(listeningMs)} ms, ready after ${Math.round(readyMs)} ms, with ${(journalBytes / 2 ** 20).toFixed(0)} MiB of journal left`);
  await second.stop();
  return { listeningMs, readyMs, journalBytes };
}

async function duBytes(path) {
  const child = spawn('du', ['-sb', path]);
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  await new Promise((resolve) => child.on('close', resolve));
  return Number(out.split('\t')[0]) || 0;
}

async function scrape(url) {
  const res = await request(`${url}/metrics`);
  return res.body.text();
}

/** The sum of a metric's series (every label set). */
function metric(text, name) {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/** The upper bound of the bucket holding quantile `q` of a Prometheus histogram (of the series matching `labels`). */
function histogramQuantile(text, name, q, labels = '') {
  const buckets = text
    .split('\n')
    .filter((l) => l.startsWith(`${name}_bucket`) && l.includes(labels))
    .map((l) => ({ le: Number(/le="([^"]+)"/.exec(l)[1].replace('+Inf', 'Infinity')), count: Number(l.split(' ').pop()) }));
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return undefined;
  return buckets.find((b) => b.count >= q * total)?.le;
}
