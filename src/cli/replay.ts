import { createWriteStream, type WriteStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { openSources, replayFiles, type ReplaySummary } from '../replay/replay-files.js';
import type { InvalidBudget, Rejection } from '../replay/file-replay.js';
import { openStore } from '../store/open-store.js';
import { ExitCode } from './exit.js';
import { addStoreOptions, option, parseInteger, parseSize, storeOptionsFrom } from './options.js';
import { progressView } from './replay-progress.js';

/** Bad lines shown on stderr; --rejects keeps them all. */
const SHOWN_REJECTIONS = 5;
const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
// Every core parses (the main thread mostly waits on I/O and the store); one core gains nothing from threads.
const DEFAULT_THREADS = availableParallelism() > 1 ? Math.min(availableParallelism(), 8) : 0;

export function replayCommand(): Command {
  const command = new Command('replay')
    .description('bulk-load or replay NDJSON event logs into the store, exactly once per file content')
    .argument('<file...>', 'NDJSON files, applied in the order given; .gz is decompressed; - reads standard input');
  return addStoreOptions(command, { writes: true })
    .addOption(option('--rejects <file>', 'append every bad line, with its file, line number and reason, to this NDJSON file', 'SVC_REJECTS'))
    .addOption(
      option('--max-invalid <n|ratio>', 'fail once more than N bad lines, or a ratio of lines (0.01 or 1%), are bad', 'SVC_MAX_INVALID').argParser(
        parseBudget,
      ),
    )
    .addOption(option('--strict', 'stop at the first bad line; nothing after it is applied', 'SVC_STRICT'))
    .addOption(option('--force', 'apply a file again even if a replay of the same content has completed', 'SVC_FORCE'))
    .addOption(
      option('--chunk-size <bytes>', 'log per chunk, cut at a line end: one store write per distinct domain per chunk', 'SVC_CHUNK_SIZE')
        .default(DEFAULT_CHUNK_BYTES, '4MiB')
        .argParser(parseSize),
    )
    .addOption(
      option('--threads <n>', 'threads that parse chunks (0: the main thread)', 'SVC_THREADS')
        .default(DEFAULT_THREADS)
        .argParser(parseInteger(0)),
    )
    .addOption(option('--no-progress', 'no progress bar (at most a line every few seconds)', 'SVC_NO_PROGRESS'))
    .addOption(option('--quiet', 'print nothing but errors', 'SVC_QUIET'))
    .addOption(option('--json', 'print the summary as one JSON object on stdout', 'SVC_JSON'))
    .addHelpText(
      'after',
      `
Each file's progress is recorded in the store under a fingerprint of its content, atomically with (LMDB)
or idempotently with (MongoDB) the counts it covers: an interrupted replay finishes when the same
command runs again, and a completed one applies nothing again without --force. Standard input has
no fingerprint and is applied as it comes, without resume.

Exit codes: 0 done (skipped bad lines included), 1 store or I/O error, 2 usage error, --strict stop
or --max-invalid exceeded, 130 interrupted (run the same command again to finish).`,
    )
    .action(async (files: string[], options) => {
      const sources = openSources(files);
      const store = await openStore({ ...storeOptionsFrom(options), use: 'bulk' });
      const rejects = options.rejects ? createWriteStream(options.rejects, { flags: 'a' }) : undefined;
      const view = progressView(options.quiet ? 'none' : options.progress && process.stderr.isTTY ? 'bar' : 'lines');
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let shown = 0;
      try {
        const summary = await replayFiles(
          sources,
          store,
          {
            chunkBytes: options.chunkSize,
            threads: options.threads,
            strict: Boolean(options.strict),
            force: Boolean(options.force),
            maxInvalid: options.maxInvalid,
            signal: abort.signal,
            onRejected(rejection) {
              writeRejection(rejects, rejection);
              if (!options.quiet && shown < SHOWN_REJECTIONS) {
                process.stderr.write(`${rejection.file}:${rejection.line}: ${rejection.reason}\n`);
                shown++;
              }
            },
            onProgress: (bytes, fileEvents) => view.update(bytes, fileEvents),
          },
          {
            onFileStart: (source) => view.start(source),
            onFileEnd: () => view.stop(),
          },
        );
        report(summary, options, shown);
        process.exitCode = exitCodeOf(summary);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        view.stop();
        await new Promise<void>((resolve) => (rejects ? rejects.end(resolve) : resolve()));
        await store.close();
      }
    });
}

function parseBudget(value: string): InvalidBudget {
  const text = value.trim();
  if (text.endsWith('%')) {
    const percent = Number(text.slice(0, -1));
    if (percent >= 0 && percent <= 100) return { ratio: percent / 100 };
  } else if (/^\d+$/.test(text)) {
    return { count: Number(text) };
  } else if (Number(text) >= 0 && Number(text) < 1) {
    return { ratio: Number(text) };
  }
  throw new InvalidArgumentError('expected a count (100), a ratio (0.01) or a percentage (1%)');
}

function writeRejection(rejects: WriteStream | undefined, rejection: Rejection): void {
  rejects?.write(JSON.stringify(rejection) + '\n');
}

function report(summary: ReplaySummary, options: { json?: boolean; quiet?: boolean; rejects?: string }, shown: number): void {
  if (!options.quiet && summary.invalid > shown) {
    const keep = options.rejects ? `all of them are in ${options.rejects}` : '--rejects FILE keeps them all';
    process.stderr.write(`… and ${summary.invalid - shown} more bad lines (${keep})\n`);
  }
  if (options.json) {
    process.stdout.write(JSON.stringify(summary) + '\n');
    return;
  }
  if (options.quiet) return;
  for (const result of summary.results) {
    if (result.outcome === 'already-applied') {
      process.stdout.write(`${result.file}: already applied, nothing to do (--force applies it again)\n`);
    } else if (result.outcome === 'stopped') {
      process.stderr.write(`${result.file}: stopped at ${result.stopReason}; what came before it is applied\n`);
    } else if (result.outcome === 'interrupted') {
      process.stderr.write(`${result.file}: interrupted; run the same command again to finish\n`);
    } else if (result.resumedAfterLine > 0) {
      process.stdout.write(`${result.file}: resumed after line ${result.resumedAfterLine}\n`);
    }
  }
  const n = (value: number) => Math.round(value).toLocaleString('en-US');
  process.stdout.write(
    `replayed ${summary.files} file(s): ${n(summary.lines)} lines, ${n(summary.events)} events applied, ` +
      `${n(summary.invalid)} bad lines, ${summary.domainsExact ? '' : '~'}${n(summary.domains)} domains, ` +
      `${summary.seconds.toFixed(2)} s, ${n(summary.eventsPerSecond)} events/s\n`,
  );
}

function exitCodeOf(summary: ReplaySummary): number {
  if (summary.results.some((r) => r.outcome === 'interrupted')) return 130;
  if (summary.results.some((r) => r.outcome === 'stopped')) return ExitCode.Usage;
  return ExitCode.Ok;
}
