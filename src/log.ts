import { createRequire } from 'node:module';
import type { Logger, LoggerOptions } from 'pino';

/**
 * One JSON object per line on stdout (pino): start, stop, store state changes and errors, never
 * per request. Fields never include tokens or request bodies.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

let level: LogLevel = 'info';
let loggers: { logger: Logger; announcer: Logger } | undefined;

// pino is loaded at the first line logged, not at import: only the daemons log, and loading it
// would cost every other command (`svc status`…) a tenth of a second at start.
function create(): { logger: Logger; announcer: Logger } {
  const { pino } = createRequire(import.meta.url)('pino') as typeof import('pino');
  // Synchronous: a daemon logs "stopped" and exits at once, and the line must not be lost.
  const destination = pino.destination({ dest: 1, sync: true });
  const options: LoggerOptions = {
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names rather than pino's numbers: the lines are read by people as much as by machines.
    formatters: { level: (label) => ({ level: label }) },
  };
  return {
    logger: pino({ ...options, level }, destination),
    // Whatever the level, the line that says where a daemon listens is printed: supervisors and
    // scripts (the tests among them) wait for it.
    announcer: pino({ ...options, level: 'info' }, destination),
  };
}

export function setLogLevel(next: LogLevel): void {
  level = next;
  if (loggers) loggers.logger.level = next;
}

export function log(at: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  loggers ??= create();
  loggers.logger[at](fields, msg);
}

/** Logs at info level even when --log-level is higher. */
export function announce(msg: string, fields: Record<string, unknown> = {}): void {
  loggers ??= create();
  loggers.announcer.info(fields, msg);
}
