import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { GateResult } from './gates.js';
import { rateSeries } from './rate-chart.js';
import type { LoadtestReport } from './report.js';

/** A rate the capacity search tried, and what it measured there. */
export interface SearchStep {
  rps: number;
  achievedRps: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  errorRate: number;
  passed: boolean;
}

export interface Search {
  title: string;
  steps: SearchStep[];
}

export interface HtmlReportInput {
  title: string;
  /** The run drawn against time; for a capacity search, its highest passing step. */
  report?: LoadtestReport;
  gates?: GateResult[];
  /** Capacity searches, each drawn as latency against offered rate. */
  searches?: Search[];
}

/**
 * One self-contained HTML file: the data as JSON and uPlot (inlined from node_modules) drawing it,
 * so that it opens from disk with no network. uPlot because it is small (50 KB), fast on long
 * series, has log scales (the percentile plot needs two), and is MIT-licensed and maintained.
 */
export function renderHtmlReport(input: HtmlReportInput): string {
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const { report, gates = [], searches = [] } = input;
  const data = {
    timeline: report?.timeline ?? [],
    rate: report ? rateSeries(report.timeline, report.requestedRps) : { offered: [], achieved: [] },
    measureStartSecond: report?.measureStartSecond ?? 0,
    latencyCurve: report?.latencyCurve ?? [],
    searches: searches.map((search, index) => ({ id: `search${index}`, ...search })),
  };
  const searchCharts = searches
    .map((search, index) => `<h2>${escape(search.title)}</h2>\n<p class="note">Latency against offered rate, one point per step of the capacity search; the highest rate that met every gate is the result.</p>\n<div class="chart" id="search${index}"></div>`)
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(input.title)}</title>
<style>${uplotCss}
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2433; margin: 24px auto; max-width: 1040px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #5b6473; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #5b6473; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 8px 32px; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.chart { margin: 8px 0 4px; } .note { color: #5b6473; font-size: 13px; margin: 0 0 8px; }
.warn { background: #fff8c5; padding: 6px 10px; border-radius: 4px; }
</style>
</head>
<body>
<h1>${escape(input.title)}</h1>
${report ? `<p class="sub">${escape(report.target)} · ${escape(describeLoad(report))}</p>` : ''}
${gatesHtml(gates)}
${searchCharts}
${report ? runHtml(report) : ''}
<script>${uplotJs}</script>
<script type="application/json" id="data">${JSON.stringify(data).replace(/</g, '\\u003c')}</script>
<script>${CLIENT_SCRIPT}</script>
</body>
</html>
`;
}

function runHtml(report: LoadtestReport): string {
  return `<div class="grid">
${table('Settings', settingsRows(report))}
${table('Results (measured phase)', resultRows(report))}
</div>
${report.warnings.map((warning) => `<p class="warn">${escape(warning)}</p>`).join('\n')}
${report.verify ? table('Verification (--verify)', verifyRows(report)) : ''}
<h2>Offered and achieved rate</h2>
<p class="note">Requests per second: due by the schedule (offered) and actually sent (achieved). The measured phase starts at ${report.measureStartSecond} s. A last second that the schedule covers only in part is drawn as a rate over that part; requests sent after the schedule's end are in the results, not drawn.</p>
<div class="chart" id="rate"></div>
<h2>Latency over time</h2>
<p class="note">Milliseconds, log scale, of the answers completed each second. Corrected: from each request's due time (what a user waited). Uncorrected: from its actual send, as closed-loop tools report.</p>
<div class="chart" id="latency"></div>
<h2>Latency distribution</h2>
<p class="note">Percentile plot of the measured phase, as HdrHistogram draws it: both axes on a log scale.</p>
<div class="chart" id="distribution"></div>
<h2>Answers and errors</h2>
<p class="note">Per second: answers by status code, and requests with no answer by kind.</p>
<div class="chart" id="outcomes"></div>`;
}

/** Runs in the browser: draws every chart and lists them in window.svcCharts for tests. */
const CLIENT_SCRIPT = `
(function () {
  const data = JSON.parse(document.getElementById('data').textContent);
  const colors = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bf8700', '#0a7b83', '#d1242f', '#57606a'];
  const width = () => Math.min(1000, document.body.clientWidth);
  window.svcCharts = [];
  window.svcPlots = [];
  const positive = (v) => (v === null || v === undefined || v <= 0 ? null : v);
  // Whole seconds on time axes; rates and counts from 0, so that a flat line looks flat.
  const secondsAxis = (label) => ({ label: label, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600] });
  const fromZero = { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] };
  const lastSecond = data.timeline.length > 0 ? data.timeline[data.timeline.length - 1].second : 0;
  const timeScale = { time: false, range: () => [0, Math.max(1, lastSecond)] };
  function draw(id, title, xLabel, yLabel, x, series, options) {
    const element = document.getElementById(id);
    if (!element) return;
    const opts = Object.assign({
      title: title, width: width(), height: 300,
      scales: { x: timeScale, y: fromZero },
      axes: [secondsAxis(xLabel), { label: yLabel, size: 60 }],
      series: [{ label: xLabel }].concat(series.map((s, i) => Object.assign({ stroke: colors[i % colors.length], width: 2, spanGaps: true, points: { show: x.length < 60 } }, s.style, { label: s.label }))),
    }, options || {});
    const chart = new uPlot(opts, [x].concat(series.map((s) => s.values)), element);
    const points = series.reduce((n, s) => n + s.values.filter((v) => v !== null && v !== undefined).length, 0);
    window.svcCharts.push({ id: id, title: title, series: series.length, points: points });
    // The uPlot instances, for tests to read what was drawn (the data placed, the canvas's pixels).
    window.svcPlots.push({ id: id, plot: chart });
    return chart;
  }
  const seconds = data.timeline.map((s) => s.second);
  // Rates over the part of each second the schedule covered (see rate-chart.ts).
  draw('rate', 'Requests per second', 'seconds', 'requests/s', seconds, [
    { label: 'offered', values: data.rate.offered },
    { label: 'achieved', values: data.rate.achieved },
  ]);
  const latency = (key, field) => data.timeline.map((s) => positive(s[key] && s[key][field]));
  draw('latency', 'Latency (ms)', 'seconds', 'ms', seconds, [
    { label: 'p50', values: latency('latencyMs', 'p50') },
    { label: 'p95', values: latency('latencyMs', 'p95') },
    { label: 'p99', values: latency('latencyMs', 'p99') },
    { label: 'max', values: latency('latencyMs', 'max') },
    { label: 'p50 uncorrected', values: latency('uncorrectedLatencyMs', 'p50'), style: { dash: [6, 4] } },
    { label: 'p99 uncorrected', values: latency('uncorrectedLatencyMs', 'p99'), style: { dash: [6, 4] } },
  ], { scales: { x: timeScale, y: { distr: 3 } } });
  const curve = data.latencyCurve.filter((p) => p.correctedMs > 0);
  // x = 1 / (1 − p): 1 is the minimum, 2 the median, 10 the 90th percentile, 100 the 99th…
  const percentileTicks = [1, 10, 100, 1000, 10000, 100000];
  const percentileLabel = (v) => (!(v >= 1) ? '' : v === 1 ? 'min' : String(Math.round(100000 * (1 - 1 / v)) / 1000) + '%');
  draw('distribution', 'Latency by percentile (ms)', 'percentile', 'ms', curve.map((p) => 1 / (1 - p.percentile / 100)), [
    { label: 'corrected', values: curve.map((p) => positive(p.correctedMs)) },
    { label: 'uncorrected', values: curve.map((p) => positive(p.uncorrectedMs)), style: { dash: [6, 4] } },
  ], {
    scales: { x: { time: false, distr: 3 }, y: { distr: 3 } },
    axes: [
      { label: 'percentile', splits: (u) => percentileTicks.filter((t) => t <= u.scales.x.max * 1.0001), values: (u, ticks) => ticks.map(percentileLabel) },
      { label: 'ms', size: 60 },
    ],
  });
  const kinds = Array.from(new Set(data.timeline.flatMap((s) => Object.keys(s.outcomes)))).sort();
  draw('outcomes', 'Answers and errors per second', 'seconds', 'requests/s', seconds,
    kinds.map((kind) => ({ label: /^[0-9]+$/.test(kind) ? 'HTTP ' + kind : kind, values: data.timeline.map((s) => s.outcomes[kind] || 0) })));
  for (const search of data.searches) {
    const steps = search.steps.slice().sort((a, b) => a.rps - b.rps);
    // Explicit ranges over every point: a rate the search tried twice is two points at one x, and
    // uPlot's own range, taken over the x window it finds by bisection, can leave one of them out.
    const latencies = steps.flatMap((s) => [s.p50Ms, s.p95Ms, s.p99Ms]).filter((v) => v > 0);
    const rates = steps.map((s) => s.rps);
    const low = Math.min.apply(null, rates), high = Math.max.apply(null, rates), pad = Math.max(1, (high - low) * 0.03);
    const xRange = () => [low - pad, high + pad];
    const yRange = () => (latencies.length > 0 ? uPlot.rangeLog(Math.min.apply(null, latencies), Math.max.apply(null, latencies), 10, false) : [0.1, 1]);
    draw(search.id, search.title + ': latency (ms) against offered rate', 'offered requests/s', 'ms', rates, [
      { label: 'p50', values: steps.map((s) => positive(s.p50Ms)) },
      { label: 'p95', values: steps.map((s) => positive(s.p95Ms)) },
      { label: 'p99', values: steps.map((s) => positive(s.p99Ms)) },
      { label: 'p95 of a step that failed a gate', values: steps.map((s) => (s.passed ? null : positive(s.p95Ms))), style: { stroke: '#cf222e', paths: () => null, points: { show: true, size: 9, fill: '#cf222e' } } },
    ], { scales: { x: { time: false, range: xRange }, y: { distr: 3, range: yRange } }, axes: [{ label: 'offered requests/s' }, { label: 'ms', size: 60 }] });
  }
})();
`;

function describeLoad(report: LoadtestReport): string {
  return `${describeRequests(report)}, ${report.requestedRps} requests/s for ${report.durationSeconds} s`;
}

function describeRequests(r: LoadtestReport): string {
  if (r.protocol === 'grpc') {
    if (r.mode === 'stream') return `gRPC Publish streams, batches of ${r.batchSize}`;
    return r.mode === 'batch' ? `gRPC PublishOne, batches of ${r.batchSize}` : 'gRPC PublishOne, one event per call';
  }
  return r.mode === 'batch' ? `POST batches of ${r.batchSize}` : 'PUT, one event per request';
}

function gatesHtml(gates: GateResult[]): string {
  if (gates.length === 0) return '';
  const rows = gates.map((g) => [g.gate, String(g.limit), String(g.actual), g.passed ? '<span class="pass">passed</span>' : '<span class="fail">FAILED</span>']);
  return table('Gates', rows, ['gate', 'limit', 'actual', ''], true);
}

function settingsRows(r: LoadtestReport): string[][] {
  return [
    ['requests', describeRequests(r)],
    ['idempotency keys, retries', `${r.idempotencyKeys ? 'a key per request' : 'none'}, up to ${r.maxRetries} (${r.retries} sent again)`],
    ['requested rate', `${r.requestedRps} requests/s`],
    ['duration, warm-up', `${r.durationSeconds} s, ${r.warmupSeconds} s`],
    ['connections × pipelining', `${r.connections} × ${r.pipelining}`],
    ['reads', `${r.readRatio * 100} %`],
    ['workload', `${r.distribution} over ${r.domains.toLocaleString('en')} domains, seed ${r.seed}`],
  ].map(([k, v]) => [escape(k!), escape(v!)]);
}

function resultRows(r: LoadtestReport): string[][] {
  const ms = (v: number) => `${v} ms`;
  return [
    ['achieved rate', `${r.achievedRps} requests/s, ${r.events.perSecond} events/s`],
    ['sent, ok, errors, dropped', `${r.sent}, ${r.ok}, ${r.errors}, ${r.dropped}`],
    ['error rate', `${(r.errorRate * 100).toFixed(2)} %`],
    ['latency p50 / p95 / p99 / max', [r.latencyMs.p50, r.latencyMs.p95, r.latencyMs.p99, r.latencyMs.max].map(ms).join(' / ')],
    ['uncorrected p50 / p95 / p99', [r.uncorrectedLatencyMs.p50, r.uncorrectedLatencyMs.p95, r.uncorrectedLatencyMs.p99].map(ms).join(' / ')],
    ['status codes', Object.entries(r.statusCodes).map(([code, n]) => `${code}: ${n}`).join(', ') || 'none'],
  ].map(([k, v]) => [escape(k!), escape(v!)]);
}

function verifyRows(r: LoadtestReport): string[][] {
  const v = r.verify!;
  const flag = (n: number) => (n === 0 ? `<span class="pass">0</span>` : `<span class="fail">${n}</span>`);
  return [
    ['read back from', escape(v.url)],
    ['domains', String(v.domains)],
    ['acknowledged, indefinite, counted', `${v.acknowledged}, ${v.indefinite}, ${v.counted}`],
    ['lost', flag(v.lost)],
    ['extra', flag(v.extra)],
    ['unreadable', flag(v.unreadable)],
  ];
}

function table(title: string, rows: string[][], head?: string[], wide = false): string {
  const header = head ? `<tr>${head.map((h) => `<th>${escape(h)}</th>`).join('')}</tr>` : '';
  const body = rows.map((row) => `<tr>${row.map((cell, i) => (i === 0 && !wide ? `<th>${cell}</th>` : `<td>${cell}</td>`)).join('')}</tr>`).join('\n');
  return `<section><h2>${escape(title)}</h2><table>${header}${body}</table></section>`;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
