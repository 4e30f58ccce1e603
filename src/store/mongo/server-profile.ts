import type { Db } from 'mongodb';
import type { Answered } from './deadline.js';

/** Lanes on MongoDB: commands of different domains in flight at once. */
const MONGODB_LANES = 4;
/**
 * Operations per bulkWrite: well under the driver's own split at 100,000 operations and 16 MiB
 * (an upsert of a 253-character domain is under 400 bytes, so a chunk stays under 4 MiB).
 */
const OPERATIONS_PER_WRITE = 10_000;
/**
 * FerretDB 1.24 keeps a backend connection checked out for every update statement that matched a
 * document until the whole command ends (handler/msg_update.go defers each iterator's Close inside
 * its loop); with its pool of 100 connections, one `update` command of 100 such statements never
 * finishes, nor do several smaller ones at once that add up to it. Lanes × operations per command
 * stays at 32 per process, far from that limit even with several writers.
 */
const OPERATIONS_PER_WRITE_FERRETDB = 4;
/**
 * Lanes on FerretDB (see ServerProfile.lanes). On its PostgreSQL backend (wrk, 32 connections, PUTs
 * over 1,000 domains) 8 lanes of 4 operations took 958 requests/s, 4 of 8 862, 16 of 2 952, and one
 * batch at a time 645: 8 × 4 reaches a client that sends each request as its own `$inc` (950).
 */
const FERRETDB_LANES = 8;

/** What the connected server can do, learned once per store. */
export interface ServerProfile {
  operationsPerWrite: number;
  /**
   * FerretDB 1.24 applies `$inc` as read, modify, write without isolation, so two concurrent
   * updates of one document can lose one increment. There, a batch's domains are written in
   * lanes chosen by a hash of the domain: lanes run in parallel, each one write at a time, so a
   * domain is only ever written by one lane and never twice at once, and a single process stays
   * exact. MongoDB's `$inc` is atomic, but lanes keep each document's batches in order there too,
   * which the batches' guards need (see BatchLog).
   */
  lanes: number;
  /** TTL indexes remove expired keys; without them (FerretDB 1.24) serve-http removes them itself. */
  ttl: boolean;
  /** FerretDB: see GuardedWrites.writeGuarded. */
  ferretdb: boolean;
}

/** Asks the server what it is: FerretDB needs lanes and small commands. */
export async function detectProfile(db: Db, answered: Answered, operationsPerWrite: number | undefined): Promise<ServerProfile> {
  const buildInfo = await answered(db.admin().command({ buildInfo: 1 }));
  const ferretdb = buildInfo.ferretdbVersion !== undefined;
  return {
    operationsPerWrite: operationsPerWrite ?? (ferretdb ? OPERATIONS_PER_WRITE_FERRETDB : OPERATIONS_PER_WRITE),
    lanes: ferretdb ? FERRETDB_LANES : MONGODB_LANES,
    ttl: !ferretdb,
    ferretdb,
  };
}
