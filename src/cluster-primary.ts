import cluster from 'node:cluster';
import { announce, log } from './log.js';

export interface PrimaryOptions {
  name: string;
  workers: number;
  shutdownTimeoutMs: number;
  /** The address announced once every worker listens, from the port they share. */
  url(port: number): string;
  /** More fields of the `listening` line (the metrics URL of serve-grpc). */
  announced?: Record<string, unknown>;
}

/**
 * The node:cluster primary of a daemon run with --workers: forks the workers, which share the
 * listening socket; announces `listening` once each of them listens; starts another when one dies;
 * on SIGTERM or SIGINT stops them all and exits 0 once they have (1 if one failed).
 */
export function runPrimary(options: PrimaryOptions): void {
  let stopping = false;
  // A worker may listen on several addresses (a host name with IPv4 and IPv6): workers are counted once.
  const listening = new Set<number>();
  let started = false;
  let failed = false;
  // Workers accept from the shared socket themselves. With the default round robin the primary
  // accepts and hands each connection to a worker, and a connection handed to a worker as it
  // is killed stays open in the primary, unread and unanswered, until the client gives up.
  // Measured with wrk -c128 keep-alive: about the same requests/s (docs/operations.md › Workers).
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // A replacement due after the daemon began to stop is not started.
  const fork = () => {
    if (!stopping) cluster.fork();
  };
  for (let i = 0; i < options.workers; i++) fork();
  const exit = () => {
    log('info', 'stopped', { daemon: options.name });
    process.exit(failed ? 1 : 0);
  };

  cluster.on('listening', (worker, address) => {
    listening.add(worker.id);
    if (!started && listening.size === options.workers) {
      started = true;
      announce('listening', { daemon: options.name, url: options.url(address.port), workers: options.workers, ...options.announced });
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      if (started) {
        log('error', 'worker died, starting another', { daemon: options.name, worker: worker.process.pid, code, signal });
        setTimeout(fork, 1000).unref();
        return;
      }
      // A worker that dies before the daemon ever listened (port taken, store unusable) would die again.
      log('error', 'worker failed to start', { daemon: options.name, worker: worker.process.pid, code, signal });
      stop('startup failure');
    }
    // A worker still starting (a replacement) when our SIGTERM came had no handler for it yet:
    // it had taken no event, so that is a clean stop too.
    if (code !== 0 && signal !== 'SIGTERM') failed = true;
    if (Object.keys(cluster.workers ?? {}).length === 0) exit();
  });

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { daemon: options.name, signal });
    // Every worker dead, their replacements not started yet: no exit is left to wait for.
    if (Object.keys(cluster.workers ?? {}).length === 0) exit();
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    // A worker that cannot finish within its own deadline is not waited for for ever.
    setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    }, options.shutdownTimeoutMs + 5_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * In a cluster worker: when the primary dies (kill -9), node:cluster makes its workers exit at
 * once, possibly in the middle of an LMDB write, which then never lets the process go. Shut down
 * as on SIGTERM instead.
 */
export function stopWhenPrimaryGone(stop: (reason: string) => Promise<void>): void {
  if (!cluster.isWorker) return;
  const worker = cluster.worker!;
  worker.once('disconnect', () => {
    worker.exitedAfterDisconnect = true;
    void stop('primary gone');
  });
}
