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
 * A redis-server of its own on a free port, with AOF on in a temporary directory, `appendfsync
 * always`: the tests kill redis-server and expect nothing acknowledged lost, which everysec does not
 * promise on a busy disk (Redis then holds its AOF write back for up to 2 s and answers meanwhile).
 * `extra` adds configuration (`--cluster-enabled yes`, …).
 */
export async function startRedis({ port, extra = [] }: { port?: number; extra?: string[] } = {}): Promise<RedisServer> {
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'svc-redis.'));
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--loglevel', 'warning', ...extra],
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

export interface RedisCluster {
  /** `redis-cluster://` followed by every node's address. */
  url: string;
  nodes: RedisServer[];
  /** The master serving a hash tag's slot, as CLUSTER NODES says now. */
  masterOf(tag: string): RedisServer;
  /** The replicas of `master`, as CLUSTER NODES says now. */
  replicasOf(master: RedisServer): RedisServer[];
  /** Waits until every running node says cluster_state:ok. */
  ready(timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A real Redis Cluster: `masters` redis-server processes with `replicas` replicas each, AOF on,
 * joined by `redis-cli --cluster create`. Each node's cluster bus port is a free port of its own.
 */
export async function startRedisCluster({ masters = 3, replicas = 0, extra = [] as string[] } = {}): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const bus = await freePort();
    // Short timeouts: a killed master is failed over within a few seconds, by a replica whatever
    // its data's age (the replicas here were in sync moments before).
    nodes.push(await startRedis({ extra: ['--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-node-timeout', '2000', '--cluster-replica-validity-factor', '0', '--cluster-config-file', `nodes-${bus}.conf`, ...extra] }));
  }
  const create = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
    { encoding: 'utf8' },
  );
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
  const cluster: RedisCluster = {
    url: `redis-cluster://${nodes.map((node) => `127.0.0.1:${node.port}`).join(',')}`,
    nodes,
    masterOf(tag) {
      // Asked of the first node that answers: the test may have killed some.
      for (const node of nodes) {
        const slot = Number(node.cli('CLUSTER', 'KEYSLOT', `{${tag}}`) || NaN);
        if (Number.isNaN(slot)) continue;
        for (const entry of node.cli('CLUSTER', 'NODES').split('\n')) {
          const [, address, flags, , , , , , ...ranges] = entry.split(' ');
          if (!flags?.includes('master') || flags.includes('fail')) continue;
          const port = Number(address!.split('@')[0]!.split(':')[1]);
          const serves = ranges.some((range) => {
            const [low, high = low] = range.split('-').map(Number);
            return slot >= low! && slot <= high!;
          });
          if (serves) return nodes.find((n) => n.port === port)!;
        }
        break;
      }
      throw new Error(`no master serves {${tag}}`);
    },
    replicasOf(master) {
      const id = master.cli('CLUSTER', 'MYID');
      return master
        .cli('CLUSTER', 'NODES')
        .split('\n')
        .map((entry) => entry.split(' '))
        .filter(([, , flags, masterId]) => flags?.includes('slave') && masterId === id)
        .map(([, address]) => nodes.find((n) => n.port === Number(address!.split('@')[0]!.split(':')[1]))!);
    },
    async ready(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (const node of nodes) {
        // A replica must be in sync with its master, or it would not take over from it.
        while (!/cluster_state:ok/.test(node.cli('CLUSTER', 'INFO')) || /role:slave/.test(node.cli('INFO', 'replication')) && !/master_link_status:up/.test(node.cli('INFO', 'replication'))) {
          if (Date.now() > deadline) throw new Error(`the cluster did not become ok within ${timeoutMs} ms`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
    destroy: async () => {
      await Promise.all(nodes.map((node) => node.destroy()));
    },
  };
  await cluster.ready();
  return cluster;
}
