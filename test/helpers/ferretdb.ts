import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { goToolBinary } from './go-tool.js';

/** Builds (once; cached under .cache/) the pinned FerretDB and returns the binary's path. */
export function ferretDbBinary(): Promise<string> {
  return goToolBinary('ferretdb', 'FerretDB');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export interface FerretDb {
  uri: string;
  port: number;
  /** Stops the server (SIGKILL when `abrupt`); its data stays for a restart. */
  stop(abrupt?: boolean): Promise<void>;
  /** Starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Stops it and removes its data. */
  destroy(): Promise<void>;
  /** Sends a signal: SIGSTOP leaves it accepting connections (the kernel does) but never answering. */
  signal(signal: NodeJS.Signals): void;
}

/**
 * FerretDB's storage: SQLite (the default) or the local PostgreSQL (`FERRETDB_BACKEND=postgresql`,
 * at `FERRETDB_POSTGRESQL`, default postgres://postgres@127.0.0.1:5432), closer to how MongoDB
 * behaves under concurrent writes.
 */
export type FerretDbBackend = 'sqlite' | 'postgresql';
export const ferretDbBackend = (): FerretDbBackend => (process.env.FERRETDB_BACKEND === 'postgresql' ? 'postgresql' : 'sqlite');
const POSTGRESQL = process.env.FERRETDB_POSTGRESQL ?? 'postgres://postgres@127.0.0.1:5432';

/** Runs one SQL statement on the PostgreSQL server with psql. */
async function psql(statement: string): Promise<void> {
  await promisify(execFile)('psql', [`${POSTGRESQL}/postgres`, '-v', 'ON_ERROR_STOP=1', '-q', '-c', statement]);
}

/** Starts FerretDB in a fresh temporary directory (and, on PostgreSQL, a fresh database) on a free port. */
export async function startFerretDb(binary: string, port?: number, backend = ferretDbBackend()): Promise<FerretDb> {
  const dir = mkdtempSync(join(tmpdir(), 'svc-ferretdb-'));
  const database = `svc_ferretdb_${Date.now().toString(36)}_${process.pid}`;
  if (backend === 'postgresql') await psql(`CREATE DATABASE ${database}`);
  const storage =
    backend === 'postgresql' ? ['--handler=postgresql', `--postgresql-url=${POSTGRESQL}/${database}`] : ['--handler=sqlite', `--sqlite-url=file:${dir}/`];
  port ??= await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      binary,
      [...storage, `--state-dir=${dir}`, `--listen-addr=127.0.0.1:${port}`, '--debug-addr=-', '--telemetry=disable', '--log-level=error'],
      { stdio: 'ignore' },
    );
    await waitForPort(port!, 15_000);
  };
  const stop = async (abrupt = false) => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(abrupt ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };
  await start();
  return {
    uri: `mongodb://127.0.0.1:${port}`,
    port,
    stop,
    restart: start,
    signal: (signal) => child?.kill(signal),
    destroy: async () => {
      child?.kill('SIGCONT');
      await stop();
      rmSync(dir, { recursive: true, force: true });
      if (backend === 'postgresql') await psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    },
  };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`FerretDB did not listen on port ${port} within ${timeoutMs} ms`);
}

export const hasGo = () =>
  promisify(execFile)('go', ['version']).then(
    () => true,
    () => false,
  );
