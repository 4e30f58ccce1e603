import { randomUUID } from 'node:crypto';
import { InDoubtError, StoreUnavailableError } from '../../core/errors.js';
import { log } from '../../log.js';
import { isAnswer, isUnsent, runScript, type RedisCommands } from './commands.js';
import { bucketOf, counterKey, guardKey, idempotencyKey, logKey, WRITERS_KEY } from './layout.js';
import { CLAIM_LAPSE_MS } from './idempotency-keys.js';
import { APPLY, DROP_LEASE, RENEW_LEASES, STORE_KEY, TAKE_LEASE } from './scripts.js';

/** A writer silent this long is taken for dead, and its logged batches finished by another. */
export const LEASE_MS = 15_000;
/** Guards outlive their batch's log; they are deleted once it is, and expire in case that fails. */
const GUARD_MS = 7 * 24 * 3_600_000;

/** A batch as logged: domains, their deltas (delivered, bounced, …), and its keys. */
export interface LoggedBatch {
  domains: string[];
  counts: number[];
  keys: Array<{ key: string; claim: string; done: string; expiresAt: number }>;
}

/**
 * Batches on a Redis Cluster, whose scripts cannot span hash slots: a batch is applied in
 * groups, one per hash tag (see layout.ts), each atomic with its own guard. What makes the whole
 * batch count once, even if its writer dies between groups, is a log, as on MongoDB:
 *
 * 1. every writer holds a lease in `svc:writers`, renewed every 3 s;
 * 2. a batch is logged whole in its writer's log (`svc:l:{…}<writer>`, a hash) before anything of it
 *    is applied;
 * 3. each group is applied by the APPLY script with the guard `svc:g:{…}<writer>:<n>`, so a group
 *    sent again (a lost answer, a recovery) changes nothing;
 * 4. its idempotency keys get their answers, the log entry is deleted, then the guards.
 *
 * Every step is retried until done; a writer whose lease lapsed has its log finished by another.
 */
export class BatchLog {
  readonly #commands: RedisCommands;
  /** This process's id as a writer: a new one if its lease was ever taken by another process. */
  #writer: string;
  /** The expiry this writer last set on its lease; undefined until it holds one. */
  #leaseExpiry: number | undefined;
  readonly #name: string;
  readonly #deadlineMs: number;
  /** Keys of batches being applied here: their claims are not stale (see RedisKeys). */
  readonly #held: Set<string>;
  /** --redis-wait: waits for the replicas of the nodes of these keys (see RedisStore). */
  readonly #replicated: (routes: string[]) => Promise<void>;
  #seq = 0;
  #registered: Promise<void> | undefined;
  #lastRenewal = 0;
  #renewing: Promise<void> | undefined;
  #timers: NodeJS.Timeout[] = [];
  /** Dead writers whose logs this process is finishing, with the lease expiry it set. */
  readonly #recovering = new Map<string, number>();
  readonly #completing = new Set<Promise<unknown>>();
  #closed = false;

  constructor(
    commands: RedisCommands,
    writer: string,
    { name, deadlineMs, held, replicated }: { name: string; deadlineMs: number; held: Set<string>; replicated: (routes: string[]) => Promise<void> },
  ) {
    this.#replicated = replicated;
    this.#commands = commands;
    this.#writer = writer;
    this.#name = name;
    this.#deadlineMs = deadlineMs;
    this.#held = held;
  }

  /**
   * Logs and applies a live batch. Fails at once (503, nothing counted) if its log could not be
   * sent; once it may be logged, it is finished whatever happens, and the request is answered
   * 503 in doubt if that takes longer than the deadline (it is still counted once).
   */
  async apply(batch: LoggedBatch): Promise<void> {
    await this.#register();
    if (!this.#fresh()) throw new StoreUnavailableError(`${this.#name}: this writer's lease could not be renewed in time; retry`);
    const writer = this.#writer;
    const seq = this.#seq++;
    const payload = JSON.stringify(batch);
    const logged = this.#commands.send(['HSET', logKey(writer), String(seq), payload], logKey(writer)).then(
      () => true,
      (error: unknown) => {
        if (isUnsent(error) || isAnswer(error)) throw error;
        return false; // Perhaps logged: finished below, the log sent again first.
      },
    );
    const held = batch.keys.map(({ key }) => key);
    for (const key of held) this.#held.add(key);
    try {
      await logged;
    } catch (error) {
      for (const key of held) this.#held.delete(key);
      throw error;
    }
    const done = this.#finish(writer, seq, batch, logged);
    this.#completing.add(done);
    const release = () => held.forEach((key) => this.#held.delete(key));
    done.then(release, () => {
      // Left to whoever took the lease: until the claims lapse, a retry must not take them as
      // this process's own stale claims (it would count again what is partly counted).
      setTimeout(release, CLAIM_LAPSE_MS).unref();
    });
    void done.finally(() => this.#completing.delete(done)).catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new InDoubtError(`${this.#name}: the batch is logged but not yet applied; it will be counted once, in the background`)), this.#deadlineMs);
    });
    await Promise.race([done, deadline]).finally(() => clearTimeout(timer));
  }

  /** Steps 3 and 4 (and 2 again when its answer was lost), each retried until done. */
  async #finish(writer: string, seq: number, batch: LoggedBatch, logged: Promise<boolean> = Promise.resolve(true)): Promise<void> {
    const id = `${writer}:${seq}`;
    if (!(await logged)) {
      const payload = JSON.stringify(batch);
      await this.#untilDone(writer, () => this.#commands.send(['HSET', logKey(writer), String(seq), payload], logKey(writer)));
    }
    const groups = new Map<number, { keys: string[]; counts: string[] }>();
    batch.domains.forEach((domain, i) => {
      const bucket = bucketOf(domain);
      let group = groups.get(bucket);
      if (!group) groups.set(bucket, (group = { keys: [], counts: [] }));
      group.keys.push(counterKey(domain, bucket));
      group.counts.push(String(batch.counts[2 * i]), String(batch.counts[2 * i + 1]));
    });
    // With --redis-wait, a step is done once the replicas have it: a master that fails over before
    // they do loses the step, guard included, and the step sent again counts (once).
    await Promise.all(
      [...groups].map(([bucket, group]) =>
        this.#untilDone(writer, async () => {
          await runScript(this.#commands, APPLY, [guardKey(bucket, id), ...group.keys], [String(GUARD_MS), '0', ...group.counts]);
          await this.#replicated([guardKey(bucket, id)]);
        }),
      ),
    );
    const stored = await Promise.all(
      batch.keys.map(({ key, claim, done, expiresAt }) =>
        this.#untilDone(writer, async () => {
          const result = await runScript<number>(this.#commands, STORE_KEY, [idempotencyKey(key)], [claim, done, String(expiresAt)]);
          await this.#replicated([idempotencyKey(key)]);
          return result;
        }),
      ),
    );
    const lost = stored.filter((result) => result !== 1).length;
    if (lost > 0) log('warn', 'idempotency keys of a batch finished late were taken by their repeats', { keys: lost });
    await this.#untilDone(writer, () => this.#commands.send(['HDEL', logKey(writer), String(seq)], logKey(writer)));
    for (const bucket of groups.keys()) void this.#commands.send(['DEL', guardKey(bucket, id)], guardKey(bucket, id)).catch(() => {});
  }

  /**
   * Retries `step` until it succeeds, for as long as this process holds the lease on `writer`'s
   * log. While the lease is not fresh (Redis unreachable, or this process stalled), it waits: a
   * step is only sent while no other process can take the lease, so two never finish one batch.
   */
  async #untilDone<T>(writer: string, step: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      // The batch is logged: whoever finishes it, it counts once. Until then, it is in doubt.
      if (this.#closed) throw new InDoubtError(`${this.#name}: the store closed while a logged batch was being applied; the next writer finishes it`);
      if (writer !== this.#writer && !this.#recovering.has(writer)) {
        throw new InDoubtError(`${this.#name}: another process took over this batch's log (this one could not renew its lease in time) and finishes it`);
      }
      if (this.#fresh()) {
        try {
          return await step();
        } catch {
          // Sent again once Redis answers (the step changes nothing the second time).
        }
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 50 * 2 ** attempt)));
    }
  }

  #fresh(): boolean {
    return Date.now() - this.#lastRenewal < (LEASE_MS * 2) / 3;
  }

  /** Takes this writer's lease at its first batch; from then on renews it and finishes dead writers' logs. */
  #register(): Promise<void> {
    this.#registered ??= this.#renew()
      .then(() => {
        this.#timers = [setInterval(() => void this.#renew().catch(() => {}), LEASE_MS / 5), setInterval(() => void this.#recoverDead().catch(warnRecoveryFailed), LEASE_MS / 3)];
        for (const timer of this.#timers) timer.unref();
      })
      .catch((error: unknown) => {
        this.#registered = undefined;
        throw error;
      });
    return this.#registered;
  }

  /**
   * Extends this writer's lease, and those of the dead writers it is finishing, each only if it
   * still holds the expiry this process set (RENEW_LEASES): a lease that lapsed may have been
   * taken by another process meanwhile. A recovery whose lease was taken stops; if this writer's
   * own was taken, its logged batches are the taker's to finish, and it goes on under a new id.
   */
  #renew(): Promise<void> {
    // One at a time: two in flight would both expect the same expiry, and the second, finding the
    // first's, would take the lease for taken.
    this.#renewing ??= this.#renewOnce().finally(() => (this.#renewing = undefined));
    return this.#renewing;
  }

  async #renewOnce(): Promise<void> {
    const now = Date.now();
    const expiry = now + LEASE_MS;
    const writers = [this.#writer, ...this.#recovering.keys()];
    const held = [this.#leaseExpiry, ...this.#recovering.values()];
    const args = writers.flatMap((writer, i) => [writer, held[i] === undefined ? '' : String(held[i])]);
    const renewed = await runScript<number[]>(this.#commands, RENEW_LEASES, [WRITERS_KEY], [String(expiry), ...args]);
    writers.forEach((writer, i) => {
      if (i === 0) {
        if (writer !== this.#writer) return; // Replaced while this renewal was in flight.
        if (renewed[i] === 1) {
          this.#leaseExpiry = expiry;
          this.#lastRenewal = now;
        } else {
          this.#startOver();
        }
      } else if (this.#recovering.has(writer)) {
        if (renewed[i] === 1) this.#recovering.set(writer, expiry);
        else this.#recovering.delete(writer);
      }
    });
  }

  /** Another process took this writer's lease: batches from now on go to a new log, under a new lease. */
  #startOver(): void {
    log('warn', "this writer's lease lapsed and another process took over its batch log; going on under a new lease", { writer: this.#writer });
    this.#writer = randomUUID();
    this.#seq = 0;
    this.#leaseExpiry = undefined;
    this.#lastRenewal = 0;
    // Registers the new id once the renewal that found the lease taken is over.
    setImmediate(() => void this.#renew().catch(() => {}));
  }

  /** Finishes, one writer at a time, the logs of writers whose lease lapsed. */
  async #recoverDead(): Promise<void> {
    const now = Date.now();
    const reply = await this.#commands.send<unknown[]>(['ZRANGEBYSCORE', WRITERS_KEY, '-inf', String(now), 'WITHSCORES', 'LIMIT', '0', '10'], WRITERS_KEY);
    for (const [writer, seen] of scoredMembers(reply)) {
      if (writer === this.#writer || this.#recovering.has(writer)) continue;
      const expiry = Date.now() + LEASE_MS;
      if ((await runScript<number>(this.#commands, TAKE_LEASE, [WRITERS_KEY], [writer, seen, String(expiry)])) !== 1) continue;
      this.#recovering.set(writer, expiry);
      try {
        const entries = await this.#commands.send<Record<string, string> | string[]>(['HGETALL', logKey(writer)], logKey(writer));
        const logged = (Array.isArray(entries) ? pairs(entries) : Object.entries(entries)).map(([seq, payload]) => [Number(seq), JSON.parse(payload) as LoggedBatch] as const);
        logged.sort((a, b) => a[0] - b[0]);
        for (const [seq, batch] of logged) await this.#finish(writer, seq, batch);
        if (logged.length > 0) log('info', 'finished the logged batches of a writer that died', { batches: logged.length });
        // A renewal in flight may have moved the lease's expiry: drop it with the expiry that
        // renewal set, and let no later one extend it.
        await this.#renewing?.catch(() => {});
        const expiry = this.#recovering.get(writer);
        this.#recovering.delete(writer);
        if (expiry !== undefined) await runScript(this.#commands, DROP_LEASE, [WRITERS_KEY], [writer, String(expiry)]);
      } finally {
        this.#recovering.delete(writer);
      }
    }
  }

  /** Lets batches being finished finish, for at most `ms`, then stops; the lease is left to lapse if any remain. */
  async close(ms: number): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.race([Promise.allSettled(this.#completing), new Promise((resolve) => setTimeout(resolve, ms).unref())]);
    const clean = this.#completing.size === 0;
    this.#closed = true;
    // Nothing left logged: nobody needs to look at this writer's log again.
    if (clean && this.#registered) await this.#commands.send(['ZREM', WRITERS_KEY, this.#writer], WRITERS_KEY).catch(() => {});
  }
}

/**
 * A sorted set's members with their scores, as node-redis 6 gives them (`[[member, score]]`, the
 * score a number) or as a flat RESP2 array (`[member, score, …]`, strings).
 */
function scoredMembers(reply: unknown[]): Array<[string, string]> {
  if (reply.every(Array.isArray)) return (reply as Array<[string, string | number]>).map(([member, score]) => [member, String(score)]);
  return pairs(reply.map(String));
}

let lastRecoveryWarning = 0;

/** A recovery that fails is tried again on the next round; said at most once a minute. */
function warnRecoveryFailed(error: unknown): void {
  if (Date.now() - lastRecoveryWarning < 60_000) return;
  lastRecoveryWarning = Date.now();
  log('warn', 'could not finish the logged batches of a writer that died; trying again', { error: (error as Error).message });
}

function pairs(flat: string[]): Array<[string, string]> {
  const result: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) result.push([flat[i]!, flat[i + 1]!]);
  return result;
}

