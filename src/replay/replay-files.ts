import type { CounterStore } from '../store/counter-store.js';
import { replayFile, type FileResult, type ReplayOptions } from './file-replay.js';
import { ParsePool } from './parse-pool.js';
import { openSource, type ReplaySource } from './source.js';

export interface ReplaySummary {
  files: number;
  lines: number;
  events: number;
  invalid: number;
  /** Distinct domains across all files (an estimate, within about 1 %, past 100,000). */
  domains: number;
  domainsExact: boolean;
  chunks: number;
  domainWrites: number;
  seconds: number;
  eventsPerSecond: number;
  results: Array<Omit<FileResult, 'domains'> & { domains: number }>;
}

export interface ReplayHooks {
  onFileStart?(source: ReplaySource, index: number): void;
  onFileEnd?(result: FileResult): void;
}

export interface ReplayFilesOptions extends Omit<ReplayOptions, 'store' | 'parsers'> {
  /** Threads that parse chunks; 0 parses on the main thread. */
  threads: number;
}

/**
 * Opens every file of a replay, or throws naming the one that cannot be read: called before the
 * store is opened, so that a missing file fails the run before anything is applied or created.
 */
export function openSources(names: string[]): ReplaySource[] {
  return names.map(openSource);
}

/** Replays the files in the order given; stops after a file that was stopped or interrupted. */
export async function replayFiles(sources: ReplaySource[], store: CounterStore, options: ReplayFilesOptions, hooks: ReplayHooks = {}): Promise<ReplaySummary> {
  const started = performance.now();
  const results: FileResult[] = [];
  // Threads take some tens of milliseconds to start: not worth it for a chunk or two.
  const small = sources.every((source) => source.size !== undefined && source.size < 2 * options.chunkBytes);
  const parsers = new ParsePool(small ? 0 : options.threads);
  try {
    for (const [index, source] of sources.entries()) {
      hooks.onFileStart?.(source, index);
      const result = await replayFile(source, { ...options, store, parsers });
      results.push(result);
      hooks.onFileEnd?.(result);
      if (result.outcome === 'stopped' || result.outcome === 'interrupted') break;
    }
  } finally {
    await parsers.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const events = sum(results, (r) => r.events);
  const allDomains = results[0]?.domains;
  for (const result of results.slice(1)) allDomains?.merge(result.domains);
  return {
    files: results.length,
    lines: sum(results, (r) => r.lines),
    events,
    invalid: sum(results, (r) => r.invalid),
    domains: allDomains?.count ?? 0,
    domainsExact: allDomains?.exact ?? true,
    chunks: sum(results, (r) => r.chunks),
    domainWrites: sum(results, (r) => r.domainWrites),
    seconds,
    eventsPerSecond: seconds > 0 ? events / seconds : 0,
    results: results.map((r) => ({ ...r, domains: r.domains.count })),
  };
}

function sum(results: FileResult[], value: (result: FileResult) => number): number {
  return results.reduce((total, result) => total + value(result), 0);
}
