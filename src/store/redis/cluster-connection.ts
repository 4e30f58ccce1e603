import { createCluster } from '@redis/client';
import { log } from '../../log.js';
import { isAnswer, type RedisCommands } from './commands.js';

const RECONNECT_MAX_MS = 1_000;
/** Reconnection attempts to one node (about 2 s) before the client gives up on it. */
const NODE_RETRIES = 5;
/** At most this often (or twice the timeout), a client that lost a node is replaced by one that asks the cluster afresh. */
const REBUILD_MS = 1_000;

type Cluster = ReturnType<typeof createCluster>;

/**
 * A Redis Cluster through node-redis, from its seed nodes: commands go to the master of their
 * key's slot (MOVED and ASK are followed), fail at once while that master is unreachable (no
 * offline queue). When a node is lost (a master killed, then failed over to its replica), the
 * whole client is replaced by a new one that reads the slot map from the seeds again, at most
 * once a second until commands go through: node-redis 6.3 kept sending the lost master's slots
 * to its closed connection, or waited for ever for it to come back, after a failover.
 */
export class ClusterConnection implements RedisCommands {
  readonly #seeds: string[];
  readonly #timeoutMs: number;
  #cluster: Cluster;
  #builtAt = Date.now();
  #connecting: Promise<unknown> | undefined;
  #connected = false;
  #lastError = 0;
  #closed = false;

  constructor(seeds: string[], timeoutMs: number) {
    this.#seeds = seeds;
    this.#timeoutMs = timeoutMs;
    this.#cluster = this.#create();
  }

  #create(): Cluster {
    const cluster: Cluster = createCluster({
      rootNodes: this.#seeds.map((seed) => ({ url: `redis://${seed}` })),
      defaults: {
        disableOfflineQueue: true,
        socket: {
          connectTimeout: this.#timeoutMs,
          reconnectStrategy: (retries: number) => (retries < NODE_RETRIES ? Math.min(50 * 2 ** retries, RECONNECT_MAX_MS) : new Error('node unreachable')),
        },
      },
      // Nodes are connected to when a command needs them: a slot map that still names a dead
      // master does not fail the whole connection.
      minimizeConnections: true,
    });
    cluster.on('error', (error: Error) => {
      const now = Date.now();
      if (now - this.#lastError < 10_000) return;
      this.#lastError = now;
      log('warn', 'Redis Cluster connection error', { error: error.message });
    });
    return cluster;
  }

  /** Connects once (the slot map from the seeds), waiting at most the store timeout; again later if it failed. */
  #connect(): Promise<unknown> {
    const cluster = this.#cluster;
    this.#connecting ??= cluster.connect().then(
      () => {
        if (cluster === this.#cluster) this.#connected = true;
      },
      () => {
        if (cluster === this.#cluster) this.#connecting = undefined;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)));
    return Promise.race([this.#connecting, waited]).finally(() => clearTimeout(timer));
  }

  send<T>(args: string[], key?: string): Promise<T> {
    const cluster = this.#cluster;
    const sent = this.#connected ? this.#sendNow<T>(cluster, args, key) : this.#connect().then(() => this.#sendNow<T>(this.#cluster, args, key));
    return sent.catch((error: unknown) => {
      // Any failure but an answer from a server: a node may be lost.
      if (!isAnswer(error)) this.#rebuild(cluster);
      throw error;
    });
  }

  /** The command, failed after the timeout even where the client itself would wait (for a slot map). */
  #sendNow<T>(cluster: Cluster, args: string[], key: string | undefined): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs + 100);
    });
    const command = cluster.sendCommand(key, false, args, { timeout: this.#timeoutMs }) as Promise<T>;
    return Promise.race([command, deadline]).finally(() => clearTimeout(timer));
  }

  /** Replaces a client that lost a node; the old one is closed once its commands in flight are answered. */
  #rebuild(failed: Cluster): void {
    if (this.#closed || failed !== this.#cluster || Date.now() - this.#builtAt < Math.max(REBUILD_MS, 2 * this.#timeoutMs)) return;
    this.#cluster = this.#create();
    this.#builtAt = Date.now();
    this.#connected = false;
    this.#connecting = undefined;
    const destroy = setTimeout(() => failed.destroy(), this.#timeoutMs * 3);
    destroy.unref();
    void failed.close().then(() => clearTimeout(destroy), () => {});
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#connected) await this.#cluster.close().catch(() => this.#cluster.destroy());
    else this.#cluster.destroy();
  }
}
