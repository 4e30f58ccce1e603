import type { ClaimedKey, KeyClaim } from '../../core/idempotency.js';
import { StoreUnavailableError } from '../../core/errors.js';
import { NotReplicatedError, replicated, runScript, type RedisCommands } from './commands.js';
import { idempotencyKey } from './layout.js';
import { COMPARE_AND_SET, DELETE_IF_PREFIX } from './scripts.js';

/**
 * A claim older than this was left by a process that died before its batch landed: Redis removes
 * it (a claim is set to expire then), and the key is free again. A batch whose claims are past
 * half of it is failed before it is sent (see checkClaims); a later one fails in its script.
 */
export const CLAIM_LAPSE_MS = 60_000;

/** `c|<claimant>|<claimedAt>|<fingerprint>`: held by a request of `claimant` since `claimedAt`. */
export function claimValue(claimant: string, claimedAt: number, fingerprint: string): string {
  return `c|${claimant}|${claimedAt}|${fingerprint}`;
}

/** `d|<fingerprint>|<status>|<expiresAt>|<body>`: used, with the answer its request got. */
export function doneValue({ fingerprint, status, expiresAt, body }: ClaimedKey): string {
  return `d|${fingerprint}|${status}|${expiresAt}|${body}`;
}

/** Fails a batch whose claims are old enough to lapse before it is written (see CLAIM_LAPSE_MS). */
export function checkClaims(keys: readonly ClaimedKey[]): void {
  const now = Date.now();
  if (keys.some((key) => key.claimedAt + CLAIM_LAPSE_MS / 2 < now)) {
    throw new Error('the batch waited too long: its idempotency keys may have lapsed');
  }
}

/** Idempotency keys in Redis: claimed by SET NX, done once their batch's script ran (see APPLY). */
export class RedisKeys {
  readonly #commands: RedisCommands;
  readonly #wait: number;
  readonly #timeoutMs: number;
  /** Who holds this process's claims. */
  readonly claimant: string;
  /** Keys of batches being applied by this process: their claims are not stale. */
  readonly held = new Set<string>();

  constructor(commands: RedisCommands, claimant: string, { wait = 0, timeoutMs = 5_000 } = {}) {
    this.#commands = commands;
    this.claimant = claimant;
    this.#wait = wait;
    this.#timeoutMs = timeoutMs;
  }

  async claim(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    const name = idempotencyKey(key);
    const claim = claimValue(this.claimant, now, fingerprint);
    for (let attempt = 0; attempt < 3; attempt++) {
      const set = await this.#commands.send<string | null>(['SET', name, claim, 'NX', 'PX', String(CLAIM_LAPSE_MS)], name);
      if (set !== null) return this.#durable(name);
      const found = await this.#commands.send<string | null>(['GET', name], name);
      if (found === null) continue; // Expired since: claim again.
      const [kind, a, b, c] = found.split('|', 4);
      if (kind === 'd') {
        // The body is everything after the fourth separator (it may hold separators itself).
        const body = found.slice(`d|${a}|${b}|${c}|`.length);
        return { state: 'done', record: { key, fingerprint: a!, status: Number(b), expiresAt: Number(c), body } };
      }
      // This process's own claim with no batch holding it: its request failed before it committed
      // (the claim's answer was lost with the connection). The HTTP layer asks only for keys
      // none of its requests holds, so it is free.
      const stale = a === this.claimant && !this.held.has(key);
      if (!stale) return { state: 'in-flight', fingerprint: found.slice(`c|${a}|${b}|`.length) };
      const taken = await runScript<number>(this.#commands, COMPARE_AND_SET, [name], [found, claim, String(CLAIM_LAPSE_MS)]);
      if (taken === 1) return this.#durable(name);
    }
    throw new Error(`the idempotency key ${JSON.stringify(key)} kept changing while it was claimed`);
  }

  /**
   * --redis-wait: a claim counts once the replicas have it. One lost in a failover would let a
   * repeat claim the key again while the first request's batch is being counted.
   */
  async #durable(name: string): Promise<KeyClaim> {
    try {
      await replicated(this.#commands, this.#wait, this.#timeoutMs, name);
    } catch (error) {
      if (error instanceof NotReplicatedError) throw new StoreUnavailableError(`Redis: the idempotency key's claim ${(error as Error).message}`);
      throw error;
    }
    return { state: 'claimed' };
  }

  async release(key: string): Promise<void> {
    await runScript(this.#commands, DELETE_IF_PREFIX, [idempotencyKey(key)], [`c|${this.claimant}|`]);
  }
}
