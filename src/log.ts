/**
 * One JSON object per line on stdout: start, stop, store state changes and errors, never per
 * request. Kept tiny on purpose; fields never include tokens or request bodies.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold = ORDER.info;

export function setLogLevel(level: LogLevel): void {
  threshold = ORDER[level];
}

export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (ORDER[level] < threshold) return;
  process.stdout.write(JSON.stringify({ level, time: new Date().toISOString(), pid: process.pid, msg, ...fields }) + '\n');
}
