import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ferretdb.js';

/** Debian's redis-server (`.ci/run` installs it); tests start their own, never the machine's on 6379. */
export const REDIS_SERVER = 'redis-server';

export function hasRedis(): boolean {
  return spawnSync(REDIS_SERVER, ['--version']).status === 0;
}

export interface RedisServer {
  url: string;
  port: number;
  /** Sends a command with redis-cli and returns its output. */
  cli(...args: string[]): string;
  /** Stops the server (SIGKILL when `abrupt`); its AOF stays for a restart. */
  stop(abrupt?: boolean): Promise<void>;
  restart(): Promise<void>;
  signal(signal: NodeJS.Signals): void;
  destroy(): Promise<void>;
}

function cli(port: number, args: string[]): string {
  const result = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  return result.stdout.trim();
}

async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (cli(port, ['PING']) !== 'PONG') {
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A redis-server of its own on a free port, with AOF on (appendfsync everysec) in a temporary
 * directory. `extra` adds configuration (`--cluster-enabled yes`, …).
 */
export async function startRedis({ port, extra = [] }: { port?: number; extra?: string[] } = {}): Promise<RedisServer> {
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'svc-redis.'));
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--loglevel', 'warning', ...extra],
      { stdio: 'ignore' },
    );
    await waitForPing(port!, 15_000);
  };
  const stop = async (abrupt = false) => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(abrupt ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    cli: (...args) => cli(port!, args),
    stop,
    restart: start,
    signal: (signal) => child?.kill(signal),
    destroy: async () => {
      child?.kill('SIGCONT');
      await stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
