import { createCluster } from '@redis/client';
import { log } from '../../log.js';
import type { RedisCommands } from './commands.js';

const RECONNECT_MAX_MS = 1_000;

/**
 * A Redis Cluster through node-redis, from its seed nodes: commands go to the master of their
 * key's slot (MOVED and ASK are followed, the slot map refreshed), fail at once while that
 * master is unreachable (no offline queue), and the client reconnects by itself.
 */
export class ClusterConnection implements RedisCommands {
  readonly #cluster;
  readonly #timeoutMs: number;
  #connecting: Promise<unknown> | undefined;
  #connected = false;
  #lastError = 0;

  constructor(seeds: string[], timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#cluster = createCluster({
      rootNodes: seeds.map((seed) => ({ url: `redis://${seed}` })),
      defaults: {
        disableOfflineQueue: true,
        socket: {
          connectTimeout: timeoutMs,
          reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, RECONNECT_MAX_MS),
        },
      },
      // A failed-over master's slots move to its replica: ask for the slot map again soon.
      topologyRefreshOnReconnectionAttemptStrategy: 500,
    });
    this.#cluster.on('error', (error: Error) => {
      const now = Date.now();
      if (now - this.#lastError < 10_000) return;
      this.#lastError = now;
      log('warn', 'Redis Cluster connection error', { error: error.message });
    });
  }

  /** Connects once (the slot map from the seeds), waiting at most the store timeout; again later if it failed. */
  #connect(): Promise<unknown> {
    this.#connecting ??= this.#cluster.connect().then(
      () => (this.#connected = true),
      () => {
        this.#connecting = undefined;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)));
    return Promise.race([this.#connecting, waited]).finally(() => clearTimeout(timer));
  }

  send<T>(args: string[], key?: string): Promise<T> {
    if (!this.#connected) return this.#connect().then(() => this.#sendNow<T>(args, key));
    return this.#sendNow<T>(args, key);
  }

  #sendNow<T>(args: string[], key: string | undefined): Promise<T> {
    return this.#cluster.sendCommand(key, false, args, { timeout: this.#timeoutMs }) as Promise<T>;
  }

  async close(): Promise<void> {
    if (this.#connected) await this.#cluster.close().catch(() => this.#cluster.destroy());
    else if (this.#connecting) this.#cluster.destroy();
  }
}
