import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { DomainCounts } from '../core/status.js';
import type { Deltas, ReplayCheckpoint } from './counter-store.js';

// Counts are two little-endian float64s (exact up to 2^53) in 16 bytes: no serialiser on the hot path.
const VALUE_SIZE = 16;

export function decodeCounts(value: Buffer | undefined): DomainCounts | undefined {
  if (value === undefined) return undefined;
  return { delivered: value.readDoubleLE(0), bounced: value.readDoubleLE(8) };
}

function encodeCounts(delivered: number, bounced: number): Buffer {
  const value = Buffer.allocUnsafe(VALUE_SIZE);
  value.writeDoubleLE(delivered, 0);
  value.writeDoubleLE(bounced, 8);
  return value;
}

/**
 * The LMDB environment of an embedded store and its tables: `domains` (the counts), `replays`
 * (replay checkpoints) and `journal` (how far each writer's journal is applied; see
 * journal/applied.ts). LMDB takes a cross-process write lock, so every process and thread that
 * opens the directory shares them.
 */
export class LmdbTables {
  readonly root: RootDatabase;
  readonly domains: Database<Buffer, string>;
  readonly replays: Database<ReplayCheckpoint, string>;
  readonly journal: Database<unknown, string>;

  constructor(directory: string) {
    mkdirSync(directory, { recursive: true });
    // overlappingSync (lmdb-js's default off Windows) keeps the database consistent after a
    // power loss while the disk flush runs outside the write lock.
    this.root = open({ path: directory, maxDbs: 4, overlappingSync: true });
    this.domains = this.root.openDB<Buffer, string>({ name: 'domains', encoding: 'binary' });
    this.replays = this.root.openDB<ReplayCheckpoint, string>({ name: 'replays' });
    this.journal = this.root.openDB<unknown, string>({ name: 'journal' });
  }

  counts(domain: string): DomainCounts | undefined {
    return decodeCounts(this.domains.get(domain));
  }

  /** Adds the deltas of `keys[from..to)` to the stored counts. Call inside a write transaction. */
  addCounts(keys: readonly string[], from: number, to: number, deltas: Deltas): void {
    const domains = this.domains;
    for (let i = from; i < to; i++) {
      const domain = keys[i]!;
      const delta = deltas.get(domain)!;
      const current = domains.getBinaryFast(domain);
      if (current === undefined) {
        domains.put(domain, encodeCounts(delta.delivered, delta.bounced));
      } else {
        domains.put(domain, encodeCounts(current.readDoubleLE(0) + delta.delivered, current.readDoubleLE(8) + delta.bounced));
      }
    }
  }

  close(): Promise<void> {
    return this.root.close();
  }
}
