import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import { LmdbStore } from '../../src/store/lmdb/lmdb-store.js';
import type { Tally } from './http.js';

export const SVC_BIN = fileURLToPath(new URL('../../bin/svc.js', import.meta.url));

/** Every domain's counts as `svc status --store` reads them from the store. */
export async function storedCounts(store: string, domains: string[]): Promise<Tally> {
  const result = await runSvc(['status', '--store', store, '--json', ...domains]);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stderr).toBe('');
  const counts: Tally = new Map();
  for (const line of result.stdout.trim().split('\n')) {
    const report = JSON.parse(line);
    counts.set(report.domain, { delivered: report.delivered, bounced: report.bounced });
  }
  return counts;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `svc <args>` to completion; with `timeoutMs`, a command still running then is killed
 * (SIGKILL, code null) rather than left behind, for commands that must exit at once.
 */
export function runSvc(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SVC_BIN, ...args], { env: { ...process.env, ...options.env } });
    if (options.timeoutMs !== undefined) {
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      child.on('exit', () => clearTimeout(timer));
    }
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

export interface Daemon {
  url: string;
  process: ChildProcess;
  /** Everything the daemon printed so far. */
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** With `group: true` only: sends a signal to every process of the daemon (its workers too). */
  killGroup(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `svc <command> --port 0 …` and resolves once it logs that it is listening. `group: true`
 * starts it in a process group of its own, for `killGroup`.
 */
export function startDaemon(
  command: 'serve-http' | 'serve-read' | 'serve-grpc',
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
  { group = false } = {},
): Promise<Daemon> {
  const child = spawn(process.execPath, [SVC_BIN, command, '--port', '0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: group,
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      // How it ended, for the output a failing test prints.
      output += `[${command} exited: code ${code}, signal ${signal}]\n`;
      resolve(code);
    }),
  );
  child.stderr!.on('data', (chunk) => (output += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start:\n${output}`)), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code}:\n${output}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output += line + '\n';
      let entry: { msg?: string; url?: string };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.msg === 'listening' && entry.url) {
        clearTimeout(timer);
        resolve({
          url: entry.url,
          process: child,
          output: () => output,
          stop: (signal = 'SIGTERM') => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
          killGroup: async (signal) => {
            if (!group) throw new Error('killGroup needs startDaemon(…, { group: true })');
            process.kill(-child.pid!, signal);
            await exited;
          },
        });
      }
    });
  });
}

export interface LogLine {
  level: string;
  msg: string;
  time: string;
  pid: number;
  [field: string]: unknown;
}

/** The JSON lines a daemon logged so far. */
export function logLines(daemon: Daemon): LogLine[] {
  return daemon
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'svc-test.'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A temporary embedded store with nothing counted yet, as `svc setup` leaves one: readers need one. */
export async function emptyStore(): Promise<{ path: string; remove(): void }> {
  const dir = tempDir();
  await (await LmdbStore.open(dir.path, { use: 'bulk' })).close();
  return dir;
}
