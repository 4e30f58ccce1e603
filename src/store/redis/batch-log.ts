import { InDoubtError, StoreUnavailableError } from '../../core/errors.js';
import { log } from '../../log.js';
import { isAnswer, isUnsent, runScript, type RedisCommands } from './commands.js';
import { bucketOf, counterKey, guardKey, idempotencyKey, logKey, WRITERS_KEY } from './layout.js';
import { APPLY, DROP_LEASE, STORE_KEY, TAKE_LEASE } from './scripts.js';

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
  readonly #writer: string;
  readonly #name: string;
  readonly #deadlineMs: number;
  /** Keys of batches being applied here: their claims are not stale (see RedisKeys). */
  readonly #held: Set<string>;
  /** --redis-wait: waits for the replicas of the nodes of these keys (see RedisStore). */
  readonly #replicated: (routes: string[]) => Promise<void>;
  #seq = 0;
  #registered: Promise<void> | undefined;
  #lastRenewal = 0;
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
    const seq = this.#seq++;
    const payload = JSON.stringify(batch);
    const logged = this.#commands.send(['HSET', logKey(this.#writer), String(seq), payload], logKey(this.#writer)).then(
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
    const done = this.#finish(this.#writer, seq, batch, logged);
    this.#completing.add(done);
    void done.finally(() => {
      this.#completing.delete(done);
      for (const key of held) this.#held.delete(key);
    }).catch(() => {});
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

  /** Retries `step` until it succeeds, unless the store is closed or the lease on `writer` lapsed. */
  async #untilDone<T>(writer: string, step: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await step();
      } catch (error) {
        if (this.#closed || !this.#fresh() || (writer !== this.#writer && !this.#recovering.has(writer))) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 50 * 2 ** attempt)));
      }
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

  async #renew(): Promise<void> {
    const now = Date.now();
    const expiry = now + LEASE_MS;
    const args = ['ZADD', WRITERS_KEY, String(expiry), this.#writer];
    for (const writer of this.#recovering.keys()) {
      args.push(String(expiry), writer);
      this.#recovering.set(writer, expiry);
    }
    await this.#commands.send(args, WRITERS_KEY);
    this.#lastRenewal = now;
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
        await runScript(this.#commands, DROP_LEASE, [WRITERS_KEY], [writer, String(this.#recovering.get(writer))]);
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

