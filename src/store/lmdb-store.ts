import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { StoreUnavailableError } from '../core/errors.js';
import type { DomainCounts } from '../core/status.js';
import type { CounterStore, Deltas, ReplayCheckpoint } from './counter-store.js';

export interface LmdbStoreOptions {
  /** Acknowledge a batch only once it is flushed to disk (survives power loss), not merely committed. */
  fsync?: boolean;
}

// Counts are two little-endian float64s (exact up to 2^53) in 16 bytes: no serialiser on the hot path.
const VALUE_SIZE = 16;

function decode(value: Buffer | undefined): DomainCounts | undefined {
  if (value === undefined) return undefined;
  return { delivered: value.readDoubleLE(0), bounced: value.readDoubleLE(8) };
}

function encode(delivered: number, bounced: number): Buffer {
  const value = Buffer.allocUnsafe(VALUE_SIZE);
  value.writeDoubleLE(delivered, 0);
  value.writeDoubleLE(bounced, 8);
  return value;
}

/**
 * The embedded store: one LMDB environment in a directory. LMDB takes a cross-process write lock,
 * so several processes (serve-http workers, serve-read, `svc status`) can share the directory.
 * One batch is one write transaction.
 */
export class LmdbStore implements CounterStore {
  readonly #root: RootDatabase;
  readonly #domains: Database<Buffer, string>;
  readonly #replays: Database<ReplayCheckpoint, string>;
  readonly #fsync: boolean;
  readonly #directory: string;
  #closed = false;

  constructor(directory: string, options: LmdbStoreOptions = {}) {
    mkdirSync(directory, { recursive: true });
    this.#directory = directory;
    this.#fsync = options.fsync ?? false;
    // overlappingSync (lmdb-js's default off Windows) keeps the database consistent after a
    // power loss while the disk flush runs outside the write lock.
    this.#root = open({ path: directory, maxDbs: 4, overlappingSync: true });
    this.#domains = this.#root.openDB<Buffer, string>({ name: 'domains', encoding: 'binary' });
    this.#replays = this.#root.openDB<ReplayCheckpoint, string>({ name: 'replays' });
  }

  async applyBatch(deltas: Deltas, checkpoint?: ReplayCheckpoint): Promise<void> {
    this.#checkOpen();
    const domains = this.#domains;
    try {
      await domains.transaction(() => {
        // The chunk and its checkpoint are one transaction: a chunk already recorded is not applied again.
        if (checkpoint) {
          const recorded = this.#replays.get(checkpoint.source);
          if (recorded && recorded.run === checkpoint.run && recorded.chunk >= checkpoint.chunk) return;
          this.#replays.put(checkpoint.source, checkpoint);
        }
        for (const [domain, delta] of deltas) {
          const current = domains.get(domain);
          if (current === undefined) {
            domains.put(domain, encode(delta.delivered, delta.bounced));
          } else {
            domains.put(
              domain,
              encode(current.readDoubleLE(0) + delta.delivered, current.readDoubleLE(8) + delta.bounced),
            );
          }
        }
      });
      if (this.#fsync) await this.#root.flushed;
    } catch (error) {
      throw new StoreUnavailableError('embedded store write failed', { cause: error });
    }
  }

  async getCheckpoint(source: string): Promise<ReplayCheckpoint | undefined> {
    this.#checkOpen();
    return this.#replays.get(source);
  }

  async get(domain: string): Promise<DomainCounts | undefined> {
    this.#checkOpen();
    return decode(this.#domains.get(domain));
  }

  async getMany(domains: readonly string[]): Promise<Map<string, DomainCounts>> {
    this.#checkOpen();
    const result = new Map<string, DomainCounts>();
    for (const domain of domains) {
      const counts = decode(this.#domains.get(domain));
      if (counts) result.set(domain, counts);
    }
    return result;
  }

  async setup(): Promise<string[]> {
    this.#checkOpen();
    return [`embedded store ready in ${this.#directory}; there is nothing to shard`];
  }

  async ping(): Promise<void> {
    this.#checkOpen();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#root.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('embedded store is closed');
  }
}
