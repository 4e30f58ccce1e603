import { randomUUID } from 'node:crypto';
import { InDoubtError, StoreUnavailableError } from '../../core/errors.js';
import type { ClaimedKey, KeyClaim } from '../../core/idempotency.js';
import type { DomainCounts } from '../../core/status.js';
import type { BatchExtras, CounterStore, Deltas, ReplayCheckpoint } from '../counter-store.js';
import { isAnswer, isUnsent, replicated, runScript, type RedisCommands } from './commands.js';
import { checkClaims, claimValue, doneValue, RedisKeys } from './idempotency-keys.js';
import { BUCKETS, bucketOf, checkpointKey, counterKey, guardKey, idempotencyKey as idempotencyKeyOf } from './layout.js';
import { APPLY, READ } from './scripts.js';
import { BatchLog, type LoggedBatch } from './batch-log.js';
import { serverNotes } from './setup-notes.js';

export interface RedisStoreOptions {
  /** Fail a command that gets no answer within this time. */
  timeoutMs: number;
  /** Replicas that must have a batch's writes before it is acknowledged (WAIT); 0 for none. */
  wait: number;
  /**
   * On a cluster, a batch is applied in groups, one per hash tag (see layout.ts), each atomic
   * with its own guard; on one server, in one script.
   */
  grouped: boolean;
  /** Shown in errors: `Redis` or `Redis Cluster`. */
  name: string;
}

/** A live batch's guard outlives every retry of it (three store timeouts) many times over. */
const GUARD_MS = 10 * 60_000;
/** A replay chunk's guard: a run may be resumed days after it stopped. */
const REPLAY_GUARD_MS = 7 * 24 * 3_600_000;
/** Pause between retries of a batch whose answer was lost. */
const RETRY_MS = 100;
/** Domains per read script. */
const READ_CHUNK = 1_000;

/** A part of a batch applied by one script. */
interface Group {
  bucket: number;
  keys: string[];
  counts: string[];
}

/**
 * Counters in Redis (see layout.ts for the keys). A batch is applied exactly once by a Lua script
 * that checks and sets the batch's guard with the counts (scripts.ts): a batch whose answer was
 * lost is sent again, with its guard, until it is answered, and changes nothing the second time.
 * With one server, the batch's idempotency keys are stored in the same script as its counts.
 */
export class RedisStore implements CounterStore {
  // One batch at a time left POST on one server at 0.62 of the bare script (appendfsync always);
  // four, as the bench's ceiling sends them, 0.76 (scripts/bench-redis.mjs). Each batch is guarded
  // on its own, so their order does not matter.
  readonly commitsInFlight = 4;
  readonly #commands: RedisCommands & { close(): Promise<void> };
  readonly #options: RedisStoreOptions;
  readonly #keys: RedisKeys;
  /** Batch ids: this store's own prefix and a number. */
  readonly #writer = randomUUID();
  #seq = 0;
  #closed = false;
  /** Cluster: live batches span hash slots, and go through a log (see batch-log.ts). */
  readonly #batchLog: BatchLog | undefined;

  constructor(commands: RedisCommands & { close(): Promise<void> }, options: RedisStoreOptions) {
    this.#commands = commands;
    this.#options = options;
    this.#keys = new RedisKeys(commands, this.#writer, { wait: options.wait, timeoutMs: options.timeoutMs });
    if (options.grouped) {
      this.#batchLog = new BatchLog(commands, this.#writer, { name: options.name, deadlineMs: options.timeoutMs * 3, held: this.#keys.held, replicated: (routes) => this.#replicated(routes) });
    }
  }

  async applyBatch(deltas: Deltas, { checkpoint, keys = [] }: BatchExtras = {}): Promise<void> {
    this.#checkOpen();
    if (checkpoint) {
      // Counts first, guarded by the chunk, then the checkpoint: a chunk sent again after a crash
      // in between changes nothing and records the checkpoint.
      await this.#applyOnce(`r:${checkpoint.run}:${checkpoint.chunk}`, REPLAY_GUARD_MS, deltas, []);
      const { source, ...progress } = checkpoint;
      await this.#guard(() => this.#commands.send(['SET', checkpointKey(source), JSON.stringify(progress)], checkpointKey(source)));
      return;
    }
    checkClaims(keys);
    // The log holds its batches' keys itself, for as long as it finishes them (beyond an answer in doubt).
    if (this.#batchLog) return this.#guard(() => this.#batchLog!.apply(loggedBatch(deltas, keys, this.#writer)));
    for (const { key } of keys) this.#keys.held.add(key);
    try {
      await this.#applyOnce(`${this.#writer}:${this.#seq++}`, GUARD_MS, deltas, keys);
    } finally {
      for (const { key } of keys) this.#keys.held.delete(key);
    }
  }

  /**
   * Sends each group's script until it is answered. A batch none of whose scripts left this
   * process fails at once (503, nothing counted); once one may have reached the server, each is
   * sent again until answered, and if that takes longer than three store timeouts, the batch is
   * in doubt (503; its keys stay claimed until they lapse, so a retry with a key is only counted
   * if the batch was not).
   */
  async #applyOnce(batch: string, guardMs: number, deltas: Deltas, keys: readonly ClaimedKey[]): Promise<void> {
    const groups = this.#groups(deltas);
    // One group on one server: its keys go in the same script as the counts.
    if (keys.length > 0 && groups.length > 1) throw new Error('idempotency keys in a batch of several groups');
    const keyNames = keys.map(({ key }) => idempotencyKeyOf(key));
    const keyArgs = keys.flatMap((key) => [claimValue(this.#writer, key.claimedAt, key.fingerprint), doneValue(key), String(key.expiresAt)]);
    const deadline = Date.now() + this.#options.timeoutMs * 3;
    const pending = new Set(groups);
    let sent = false;
    for (let attempt = 0; pending.size > 0; attempt++) {
      const results = await Promise.allSettled(
        [...pending].map(async (group) => {
          await runScript(
            this.#commands,
            APPLY,
            [guardKey(group.bucket, batch), ...keyNames, ...group.keys],
            [String(guardMs), String(keys.length), ...keyArgs, ...group.counts],
          );
          pending.delete(group);
        }),
      );
      const failures = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
      if (failures.length === 0) return this.#replicated(groups.map((group) => guardKey(group.bucket, batch)));
      const answered = failures.find(isAnswer);
      if (answered && !sent) throw this.#unavailable(answered);
      if (failures.some((error) => !isUnsent(error) && !isAnswer(error))) sent = true;
      if (!sent) throw this.#unavailable(failures[0]);
      if (this.#closed || Date.now() > deadline) {
        throw new InDoubtError(`${this.#options.name}: no answer to a batch that may have been counted: ${(failures[0] as Error).message}`, { cause: failures[0] });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, RETRY_MS * 2 ** attempt)));
    }
  }

  /**
   * --redis-wait: waits until the replicas have the writes made through the nodes of `routes`
   * (keys). A write they do not get in time is counted on its master but not acknowledged: 503
   * in doubt (with a key, a retry gets the stored answer, or is counted if a failover lost both).
   */
  async #replicated(routes: string[]): Promise<void> {
    const { wait, timeoutMs, name } = this.#options;
    if (wait === 0) return;
    try {
      await Promise.all(routes.map((route) => replicated(this.#commands, wait, timeoutMs, route)));
    } catch (error) {
      throw new InDoubtError(`${name}: ${(error as Error).message}`, { cause: error });
    }
  }

  #groups(deltas: Deltas): Group[] {
    if (!this.#options.grouped) {
      const group: Group = { bucket: 0, keys: [], counts: [] };
      for (const [domain, { delivered, bounced }] of deltas) {
        group.keys.push(counterKey(domain));
        group.counts.push(String(delivered), String(bounced));
      }
      return [group];
    }
    const groups = new Array<Group | undefined>(BUCKETS);
    for (const [domain, { delivered, bounced }] of deltas) {
      const bucket = bucketOf(domain);
      const group = (groups[bucket] ??= { bucket, keys: [], counts: [] });
      group.keys.push(counterKey(domain, bucket));
      group.counts.push(String(delivered), String(bounced));
    }
    return groups.filter((group): group is Group => group !== undefined);
  }

  async claimKey(key: string, fingerprint: string, now: number): Promise<KeyClaim> {
    this.#checkOpen();
    return this.#guard(() => this.#keys.claim(key, fingerprint, now));
  }

  async releaseKey(key: string): Promise<void> {
    this.#checkOpen();
    await this.#guard(() => this.#keys.release(key));
  }

  async getCheckpoint(source: string): Promise<ReplayCheckpoint | undefined> {
    this.#checkOpen();
    const found = await this.#guard(() => this.#commands.send<string | null>(['GET', checkpointKey(source)], checkpointKey(source)));
    return found === null ? undefined : { source, ...(JSON.parse(found) as Omit<ReplayCheckpoint, 'source'>) };
  }

  async get(domain: string): Promise<DomainCounts | undefined> {
    return (await this.getMany([domain])).get(domain);
  }

  /** One script per READ_CHUNK domains of a group (a hash slot, on a cluster). */
  async getMany(domains: readonly string[]): Promise<Map<string, DomainCounts>> {
    this.#checkOpen();
    const parts: Array<{ domains: string[]; keys: string[] }> = [];
    const open = new Map<number, { domains: string[]; keys: string[] }>();
    for (const domain of domains) {
      const bucket = this.#options.grouped ? bucketOf(domain) : 0;
      let part = open.get(bucket);
      if (part === undefined || part.keys.length === READ_CHUNK) {
        part = { domains: [], keys: [] };
        open.set(bucket, part);
        parts.push(part);
      }
      part.domains.push(domain);
      part.keys.push(counterKey(domain));
    }
    const result = new Map<string, DomainCounts>();
    await this.#guard(() =>
      Promise.all(
        parts.map(async (part) => {
          const values = await runScript<Array<string | null>>(this.#commands, READ, part.keys, []);
          part.domains.forEach((domain, i) => {
            const delivered = values[2 * i];
            const bounced = values[2 * i + 1];
            if (delivered != null || bounced != null) result.set(domain, { delivered: Number(delivered ?? 0), bounced: Number(bounced ?? 0) });
          });
        }),
      ),
    );
    return result;
  }

  async ping(): Promise<void> {
    this.#checkOpen();
    await this.#guard(() => this.#commands.send(['PING']));
  }

  async setup(): Promise<string[]> {
    this.#checkOpen();
    return this.#guard(() => serverNotes(this.#commands, this.#options.grouped));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#batchLog?.close(this.#options.timeoutMs * 3);
    this.#closed = true;
    await this.#commands.close();
  }

  async #guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  #unavailable(error: unknown): StoreUnavailableError {
    if (error instanceof StoreUnavailableError) return error;
    if (this.#closed) return new StoreUnavailableError(`${this.#options.name} store is closed`, { cause: error });
    return new StoreUnavailableError(`${this.#options.name}: ${(error as Error).message}`, { cause: error });
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreUnavailableError(`${this.#options.name} store is closed`);
  }
}

function loggedBatch(deltas: Deltas, keys: readonly ClaimedKey[], claimant: string): LoggedBatch {
  const batch: LoggedBatch = { domains: [], counts: [], keys: [] };
  for (const [domain, { delivered, bounced }] of deltas) {
    batch.domains.push(domain);
    batch.counts.push(delivered, bounced);
  }
  for (const key of keys) batch.keys.push({ key: key.key, claim: claimValue(claimant, key.claimedAt, key.fingerprint), done: doneValue(key), expiresAt: key.expiresAt });
  return batch;
}
