import { Long, type Collection } from 'mongodb';
import type { Deltas, ReplayCheckpoint } from '../counter-store.js';
import type { CheckpointDocument, DomainDocument, Operation } from './documents.js';
import type { GuardedWrites } from './guarded-writes.js';
import type { ServerProfile } from './server-profile.js';

/** While a replay run is in progress, the documents it touched carry `replay_<run>: <last chunk applied>`. */
function replayMarker(run: string): string {
  return `replay_${run}`;
}

/**
 * A replay chunk, applied at most once without multi-document transactions (FerretDB and
 * standalone servers have none). Each upsert carries the chunk's number in the document's
 * `replay_<run>` field and only matches a document whose number for this run is lower, so the
 * same chunk sent again after a crash changes nothing twice: where the document already has it,
 * the filter misses and the upsert's insert fails on the duplicate `_id`, which is ignored.
 * The checkpoint is written after the counts; once the run is done its markers are removed.
 * The caller runs it in lane 0, which orders the chunks.
 */
export async function applyChunk(
  deltas: Deltas,
  checkpoint: ReplayCheckpoint,
  profile: ServerProfile,
  { domains, replays, writes }: { domains: Collection<DomainDocument>; replays: Collection<CheckpointDocument>; writes: GuardedWrites },
): Promise<void> {
  const marker = replayMarker(checkpoint.run);
  const operations: Operation[] = [];
  for (const [domain, delta] of deltas) {
    operations.push({
      updateOne: {
        filter: { _id: domain, [marker]: { $not: { $gte: checkpoint.chunk } } },
        update: {
          $inc: { delivered: Long.fromNumber(delta.delivered), bounced: Long.fromNumber(delta.bounced) },
          $set: { [marker]: checkpoint.chunk },
        },
        upsert: true,
      },
    });
  }
  // A duplicate key means "already applied" unless an insert race with another writer caused it.
  await writes.write(operations, profile, (failed) => writes.notYetApplied(failed, marker, checkpoint.chunk), 0);
  const { source, ...progress } = checkpoint;
  await replays.replaceOne({ _id: source }, progress, { upsert: true });
  if (checkpoint.done) {
    await domains.updateMany({ [marker]: { $exists: true } }, { $unset: { [marker]: '' } });
  }
}
