import { createClient } from '@redis/client';
import { log } from '../../log.js';
import type { RedisCommands } from './commands.js';

/** Between reconnection attempts to a server that went away, at most. */
const RECONNECT_MAX_MS = 1_000;

/**
 * One Redis server through node-redis. Commands fail at once while the server is unreachable
 * (no offline queue: a batch must get its 503 fast, not wait for a server that may not come back),
 * and the client reconnects by itself in the background.
 */
export class ServerConnection implements RedisCommands {
  readonly #client;
  readonly #timeoutMs: number;
  #connecting: Promise<unknown> | undefined;
  /** Connected once: from then on, an outage fails commands at once (the client reconnects). */
  #connected = false;
  #lastError = 0;

  constructor(url: string, timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#client = createClient({
      url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: timeoutMs,
        reconnectStrategy: (retries) => Math.min(50 * 2 ** retries, RECONNECT_MAX_MS),
      },
    });
    this.#client.on('ready', () => (this.#connected = true));
    // Without a listener, a connection error would end the process; the commands report it.
    this.#client.on('error', (error: Error) => {
      const now = Date.now();
      if (now - this.#lastError < 10_000) return;
      this.#lastError = now;
      log('warn', 'Redis connection error', { error: error.message });
    });
  }

  /**
   * Starts connecting once; node-redis keeps reconnecting by itself from then on. Resolves once
   * connected, or after the store timeout: a command then fails at once while it is offline.
   */
  #connect(): Promise<unknown> {
    this.#connecting ??= this.#client.connect().catch(() => {
      // node-redis gave up on a first connection: try again at the next command.
      this.#connecting = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)));
    return Promise.race([this.#connecting, waited]).finally(() => clearTimeout(timer));
  }

  send<T>(args: string[]): Promise<T> {
    if (!this.#client.isReady && !this.#connected) return this.#connect().then(() => this.#sendNow<T>(args));
    return this.#sendNow<T>(args);
  }

  #sendNow<T>(args: string[]): Promise<T> {
    return this.#client.sendCommand(args, { timeout: this.#timeoutMs }) as Promise<T>;
  }

  async close(): Promise<void> {
    if (this.#client.isOpen) await this.#client.close().catch(() => this.#client.destroy());
    else if (this.#connecting) this.#client.destroy();
  }
}
