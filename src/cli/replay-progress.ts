import cliProgress from 'cli-progress';
import type { ReplaySource } from '../replay/source.js';

const LINE_INTERVAL_MS = 5_000;

export interface ProgressView {
  start(source: ReplaySource): void;
  update(storedBytes: number, events: number): void;
  stop(): void;
}

/** A bar on a terminal; elsewhere a line every few seconds; nothing when quiet. */
export function progressView(mode: 'bar' | 'lines' | 'none'): ProgressView {
  if (mode === 'bar') return barView();
  if (mode === 'lines') return lineView();
  return { start() {}, update() {}, stop() {} };
}

function barView(): ProgressView {
  let bar: cliProgress.SingleBar | undefined;
  let started = 0;
  return {
    start(source) {
      started = performance.now();
      bar = new cliProgress.SingleBar(
        {
          format: `${source.name} [{bar}] {percentage}% | {done}/{size} MB | {rate} events/s | ETA {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(source.size ?? 0, 0, { done: '0', size: megabytes(source.size ?? 0), rate: 0 });
    },
    update(storedBytes, events) {
      const seconds = (performance.now() - started) / 1000;
      bar?.update(storedBytes, { done: megabytes(storedBytes), rate: Math.round(events / Math.max(seconds, 1e-3)) });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

function lineView(): ProgressView {
  let source: ReplaySource | undefined;
  let started = 0;
  let lastLine = 0;
  return {
    start(next) {
      source = next;
      started = lastLine = performance.now();
    },
    update(storedBytes, events) {
      const now = performance.now();
      if (now - lastLine < LINE_INTERVAL_MS || !source) return;
      lastLine = now;
      const of = source.size ? ` (${Math.floor((100 * storedBytes) / source.size)}% of ${megabytes(source.size)} MB)` : '';
      const rate = Math.round(events / ((now - started) / 1000));
      process.stderr.write(`replay: ${source.name}: ${megabytes(storedBytes)} MB read${of}, ${rate} events/s\n`);
    },
    stop() {},
  };
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}
