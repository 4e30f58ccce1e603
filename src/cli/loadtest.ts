import { writeFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_LOADTEST_OPTIONS as D, MODES, type LoadtestOptions } from '../loadtest/options.js';
import { DISTRIBUTIONS } from '../workload/workload.js';
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
    .addOption(option('--target <url>', 'origin of the service under test', 'SVC_TARGET').default(D.target))
    .addOption(option('--rps <n>', 'requests per second, whatever the target does (a batch is one request)', 'SVC_RPS').default(D.rps).argParser(positiveNumber))
    .addOption(option('--duration <duration>', 'measured time, e.g. 30s, 2m', 'SVC_DURATION').default(D.durationMs, '30s').argParser(parseDuration))
    .addOption(option('--warmup <duration>', 'run this long first and leave it out of the results', 'SVC_WARMUP').default(D.warmupMs, '0s').argParser(parseDuration))
    .addOption(option('--connections <n>', 'keep-alive connections', 'SVC_CONNECTIONS').default(D.connections).argParser(parseInteger(1)))
    .addOption(option('--pipelining <n>', 'requests in flight per connection', 'SVC_PIPELINING').default(D.pipelining).argParser(parseInteger(1)))
    .addOption(option('--timeout <duration>', 'fail a request that gets no answer within this time', 'SVC_TIMEOUT').default(D.timeoutMs, '10s').argParser(parseDuration))
    .addOption(
      option('--mode <mode>', 'event: PUT /events/:domain/:type per event; batch: POST /events with --batch-size NDJSON lines', 'SVC_MODE')
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
    .addOption(option('--verify', 'afterwards read every touched domain back and compare (needs a fresh store)', 'SVC_VERIFY'))
    .addOption(option('--verify-url <url>', 'where to read counts back (default: the target)', 'SVC_VERIFY_URL'))
    .addOption(option('--max-p95 <ms>', 'fail if the corrected p95 latency exceeds this many ms', 'SVC_MAX_P95').argParser(parseDuration))
    .addOption(option('--max-error-rate <r>', 'fail if (errors + dropped) / requests exceeds this (0 to 1)', 'SVC_MAX_ERROR_RATE').argParser(ratio))
    .addOption(ingestTokenOption('send Authorization: Bearer <token> with every event'))
    .addOption(readTokenOption('send Authorization: Bearer <token> with every read and verification'))
    .addOption(option('--json <file>', 'write the full report as JSON to this file', 'SVC_JSON_FILE'))
    .addHelpText(
      'after',
      '\nProgress goes to stderr about once a second, the final table to stdout.' +
        '\nExit codes: 0 every gate met; 1 a gate failed, --verify found lost events or could not read a domain back,' +
        '\nthe run was interrupted, or the target is unreachable; 2 usage error.',
    )
    .action(async (options) => {
      // The engine (undici, the HDR histogram) is loaded only when a load test runs: every other
      // command starts faster without it.
      const { checkGates, formatProgress, formatReport, runLoadtest } = await import('../loadtest/index.js');
      const controller = new AbortController();
      const interrupt = () => controller.abort();
      process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
      let report;
      try {
        report = await runLoadtest(engineOptions(options), {
          signal: controller.signal,
          onProgress: (progress) => process.stderr.write(formatProgress(progress) + '\n'),
        });
      } finally {
        process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
      }
      const gates = checkGates(report, { maxP95Ms: options.maxP95, maxErrorRate: options.maxErrorRate });
      const passed = gates.every((gate) => gate.passed) && !report.aborted;
      process.stdout.write(formatReport(report, gates));
      if (options.json) await writeFile(options.json, JSON.stringify({ ...report, gates, passed }, null, 2) + '\n');
      process.exitCode = passed ? ExitCode.Ok : ExitCode.Failure;
    });
}

function engineOptions(o: Record<string, unknown>): Partial<LoadtestOptions> {
  return {
    target: o.target as string,
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
  };
}
