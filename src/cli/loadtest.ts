import { writeFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_LOADTEST_OPTIONS as D, MODES, PROTOCOLS, type LoadtestOptions } from '../loadtest/options.js';
import { DISTRIBUTIONS } from '../workload/workload.js';
import { ValidationError } from '../core/errors.js';
import { ExitCode } from './exit.js';
import { ingestTokenOption, option, parseDuration, parseInteger, readTokenOption } from './options.js';

function ratio(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a number from 0 to 1');
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(Number.isFinite(n) && n > 0)) throw new InvalidArgumentError('expected a number > 0');
  return n;
}

export function loadtestCommand(): Command {
  return new Command('loadtest')
    .alias('load-test')
    .description('send events at a constant rate, measure latency without coordinated omission, optionally verify every count')
    .addOption(option('--target <url>', 'origin of the service under test (gRPC: host:port)', 'SVC_TARGET').default(D.target))
    .addOption(option('--protocol <protocol>', 'http (serve-http) or grpc (serve-grpc)', 'SVC_PROTOCOL').choices(PROTOCOLS).default(D.protocol))
    .addOption(option('--rps <n>', 'requests per second, whatever the target does (a batch is one request)', 'SVC_RPS').default(D.rps).argParser(positiveNumber))
    .addOption(option('--duration <duration>', 'measured time, e.g. 30s, 2m', 'SVC_DURATION').default(D.durationMs, '30s').argParser(parseDuration))
    .addOption(option('--warmup <duration>', 'run this long first and leave it out of the results', 'SVC_WARMUP').default(D.warmupMs, '0s').argParser(parseDuration))
    .addOption(option('--connections <n>', 'keep-alive connections', 'SVC_CONNECTIONS').default(D.connections).argParser(parseInteger(1)))
    .addOption(option('--pipelining <n>', 'requests in flight per connection', 'SVC_PIPELINING').default(D.pipelining).argParser(parseInteger(1)))
    .addOption(option('--timeout <duration>', 'fail a request that gets no answer within this time', 'SVC_TIMEOUT').default(D.timeoutMs, '10s').argParser(parseDuration))
    .addOption(
      option(
        '--mode <mode>',
        'event: one event per request (PUT, gRPC PublishOne); batch: --batch-size events per request (POST /events NDJSON, PublishOne); stream: batches on --connections Publish streams (gRPC)',
        'SVC_MODE',
      )
        .choices(MODES)
        .default(D.mode),
    )
    .addOption(option('--batch-size <n>', 'events per request in batch mode', 'SVC_BATCH_SIZE').default(D.batchSize).argParser(parseInteger(1)))
    .addOption(option('--read-ratio <r>', 'share of requests that are GET /domains/:domain reads (0 to 1)', 'SVC_READ_RATIO').default(D.readRatio).argParser(ratio))
    .addOption(option('--domains <n>', 'distinct domains', 'SVC_DOMAINS').default(D.domains).argParser(parseInteger(1)))
    .addOption(
      option('--distribution <name>', "how events pick their domain; challenge mimics the challenge's own generator", 'SVC_DISTRIBUTION')
        .choices(DISTRIBUTIONS)
        .default(D.distribution),
    )
    .addOption(option('--bounce-ratio <r>', 'share of bounces for uniform and zipf (0 to 1)', 'SVC_BOUNCE_RATIO').default(D.bounceRatio).argParser(ratio))
    .addOption(option('--seed <n>', 'the same seed sends the same events', 'SVC_SEED').default(D.seed).argParser(parseInteger(0)))
    .addOption(option('--idempotency-keys', 'send an idempotency key (the Idempotency-Key header; idempotency_key over gRPC) with every event request, so that a retried one is counted once', 'SVC_IDEMPOTENCY_KEYS'))
    .addOption(
      option('--retries <n>', 'send an event request again (same key) after no answer, 409, 429 or 5xx (gRPC: ABORTED, RESOURCE_EXHAUSTED, UNAVAILABLE…), at most n times; pauses 250 ms, doubling to 2 s', 'SVC_RETRIES')
        .default(D.retries)
        .argParser(parseInteger(0)),
    )
    .addOption(option('--verify', 'afterwards read every touched domain back and compare (needs a fresh store)', 'SVC_VERIFY'))
    .addOption(option('--verify-url <url>', 'where to read counts back (default: the target)', 'SVC_VERIFY_URL'))
    .addOption(option('--max-p95 <ms>', 'fail if the corrected p95 latency exceeds this many ms', 'SVC_MAX_P95').argParser(parseDuration))
    .addOption(option('--max-error-rate <r>', 'fail if (errors + dropped) / requests exceeds this (0 to 1)', 'SVC_MAX_ERROR_RATE').argParser(ratio))
    .addOption(ingestTokenOption('send Authorization: Bearer <token> with every event'))
    .addOption(readTokenOption('send Authorization: Bearer <token> with every read and verification'))
    .addOption(option('--json <file>', 'write the full report as JSON to this file', 'SVC_JSON_FILE'))
    .addOption(option('--report <file.html>', 'write a self-contained HTML report with charts to this file', 'SVC_REPORT_FILE'))
    .addOption(
      option('--find-max', 'step the rate up from --rps until a gate fails, then bisect: the highest rate that meets every gate (--max-p95 200 ms and --max-error-rate 0 unless given)', 'SVC_FIND_MAX'),
    )
    .addHelpText(
      'after',
      '\nProgress goes to stderr about once a second, the final table to stdout.' +
        '\nExit codes: 0 every gate met (--find-max: some rate met them); 1 a gate failed, --verify found lost or extra' +
        '\nevents or could not read a domain back, the run was interrupted, or the target is unreachable; 2 usage error.',
    )
    .action(async (options) => {
      if (options.findMax && options.verify) throw new ValidationError('--find-max cannot be combined with --verify: its steps send to the same domains again');
      const controller = new AbortController();
      const interrupt = () => controller.abort();
      process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
      try {
        process.exitCode = await (options.findMax ? findMax(options, controller.signal) : runOnce(options, controller.signal));
      } finally {
        process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
      }
    });
}

// The engine (undici, the HDR histogram) is loaded only when a load test runs: every other
// command starts faster without it.
const engine = () => import('../loadtest/index.js');

async function runOnce(options: Record<string, unknown>, signal: AbortSignal): Promise<number> {
  const { checkGates, formatProgress, formatReport, runLoadtest } = await engine();
  const report = await runLoadtest(engineOptions(options), {
    signal,
    onProgress: (progress) => process.stderr.write(formatProgress(progress) + '\n'),
  });
  const gates = checkGates(report, gatesOf(options));
  const passed = gates.every((gate) => gate.passed) && !report.aborted;
  process.stdout.write(formatReport(report, gates));
  if (options.json) await writeFile(options.json as string, JSON.stringify({ ...report, gates, passed }, null, 2) + '\n');
  if (options.report) await writeHtml(options.report as string, { title: `svc loadtest: ${report.requestedRps} requests/s`, report, gates });
  return passed ? ExitCode.Ok : ExitCode.Failure;
}

/** --find-max: one run per step, each against the same gates; the best step's run is the report. */
async function findMax(options: Record<string, unknown>, signal: AbortSignal): Promise<number> {
  const { checkGates, findMaxRate, formatReport, runLoadtest } = await engine();
  const gates = { maxP95Ms: (options.maxP95 as number | undefined) ?? 200, maxErrorRate: (options.maxErrorRate as number | undefined) ?? 0 };
  const { best, steps } = await findMaxRate(
    async (rps) => {
      const report = await runLoadtest({ ...engineOptions(options), rps }, { signal });
      const results = checkGates(report, gates);
      const passed = results.every((gate) => gate.passed) && !report.aborted;
      const { p50, p95, p99 } = report.latencyMs;
      process.stderr.write(`find-max: ${rps} requests/s → achieved ${report.achievedRps}, p95 ${p95} ms, error rate ${report.errorRate} ${passed ? 'ok' : 'FAILED'}\n`);
      // A failed step may leave the target a backlog: let it drain before the next step.
      if (!passed) await new Promise((resolve) => setTimeout(resolve, Math.min(3000, options.duration as number)));
      return { rps, achievedRps: report.achievedRps, p50Ms: p50, p95Ms: p95, p99Ms: p99, errorRate: report.errorRate, passed, report, gates: results };
    },
    { start: options.rps as number, signal },
  );
  const search = steps.map(({ report: _report, gates: _gates, ...step }) => step);
  if (best) process.stdout.write(formatReport(best.report, best.gates));
  process.stdout.write(
    best
      ? `highest rate meeting every gate (p95 <= ${gates.maxP95Ms} ms, error rate <= ${gates.maxErrorRate}): ${best.rps} requests/s, after ${steps.length} steps\n`
      : `no rate down to ${Math.round((options.rps as number) / 16)} requests/s met every gate (p95 <= ${gates.maxP95Ms} ms, error rate <= ${gates.maxErrorRate}), after ${steps.length} steps\n`,
  );
  const result = { maxRps: best?.rps ?? null, gates, steps: search, best: best ? { ...best.report, gates: best.gates } : null };
  if (options.json) await writeFile(options.json as string, JSON.stringify(result, null, 2) + '\n');
  if (options.report) {
    const title = best ? `svc loadtest --find-max: ${best.rps} requests/s` : 'svc loadtest --find-max: no rate met the gates';
    await writeHtml(options.report as string, { title, report: best?.report, gates: best?.gates, searches: [{ title: `Capacity search against ${options.target}`, steps: search }] });
  }
  return best && !signal.aborted ? ExitCode.Ok : ExitCode.Failure;
}

async function writeHtml(file: string, input: import('../loadtest/html-report.js').HtmlReportInput): Promise<void> {
  const { renderHtmlReport } = await import('../loadtest/html-report.js');
  await writeFile(file, renderHtmlReport(input));
}

function gatesOf(options: Record<string, unknown>) {
  return { maxP95Ms: options.maxP95 as number | undefined, maxErrorRate: options.maxErrorRate as number | undefined };
}

function engineOptions(o: Record<string, unknown>): Partial<LoadtestOptions> {
  return {
    target: o.target as string,
    protocol: o.protocol as LoadtestOptions['protocol'],
    rps: o.rps as number,
    durationMs: o.duration as number,
    warmupMs: o.warmup as number,
    connections: o.connections as number,
    pipelining: o.pipelining as number,
    timeoutMs: o.timeout as number,
    mode: o.mode as LoadtestOptions['mode'],
    batchSize: o.batchSize as number,
    readRatio: o.readRatio as number,
    domains: o.domains as number,
    distribution: o.distribution as LoadtestOptions['distribution'],
    bounceRatio: o.bounceRatio as number,
    seed: o.seed as number,
    verify: Boolean(o.verify),
    verifyUrl: (o.verifyUrl as string | undefined) ?? '',
    ingestToken: (o.ingestToken as string | undefined) ?? '',
    readToken: (o.readToken as string | undefined) ?? '',
    idempotencyKeys: Boolean(o.idempotencyKeys),
    retries: o.retries as number,
  };
}
