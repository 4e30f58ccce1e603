import type { DomainCounts } from '../../src/core/status.js';
import type { CounterStore, Deltas } from '../../src/store/counter-store.js';

interface PendingCommit {
  deltas: Map<string, DomainCounts>;
  resolve(): void;
  reject(error: Error): void;
}

/** A store whose commits complete only when the test says so. */
export class ControlledStore implements CounterStore {
  readonly commits: PendingCommit[] = [];
  readonly counts = new Map<string, DomainCounts>();

  applyBatch(deltas: Deltas): Promise<void> {
    const copy = new Map([...deltas].map(([domain, delta]) => [domain, { ...delta }]));
    return new Promise((resolve, reject) => {
      this.commits.push({
        deltas: copy,
        resolve: () => {
          for (const [domain, delta] of copy) {
            const current = this.counts.get(domain) ?? { delivered: 0, bounced: 0 };
            this.counts.set(domain, { delivered: current.delivered + delta.delivered, bounced: current.bounced + delta.bounced });
          }
          resolve();
        },
        reject,
      });
    });
  }

  async get(domain: string) {
    return this.counts.get(domain);
  }

  async getMany(domains: readonly string[]) {
    return new Map(domains.flatMap((d) => (this.counts.has(d) ? [[d, this.counts.get(d)!] as const] : [])));
  }

  // The engine never claims keys; the HTTP layer does (test/idempotency.test.ts, on the real stores).
  async claimKey(): Promise<never> {
    throw new Error('ControlledStore takes no idempotency keys');
  }

  async releaseKey(): Promise<void> {}

  async ping() {}

  async getCheckpoint() {
    return undefined;
  }

  async setup() {
    return [];
  }
  async close() {}
}

/** Lets setImmediate callbacks and promise continuations run. */
export const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
