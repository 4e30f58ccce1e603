import { describe, expect, it } from 'vitest';
import { ApplyThread } from '../src/store/journal/apply-thread.js';
import { tempDir } from './helpers/svc.js';

describe('the apply thread', () => {
  it('closes cleanly whether its exit or its answer to close reaches the main thread first', async () => {
    // Node can deliver a thread's last answer and its exit in one turn; the exit handler used to
    // clear the worker before close() went on to terminate it (a TypeError: serve-http exited 1
    // on about one stop in twenty). Closing many threads at once keeps the main thread busy
    // while they exit, which makes that order common (a few in each round before the fix).
    const dirs = Array.from({ length: 16 }, () => tempDir());
    try {
      for (let round = 0; round < 4; round++) {
        const threads = dirs.map((dir) => new ApplyThread(dir.path, `${dir.path}/journal`));
        // Any job starts a thread; one for a writer that has no journal applies nothing.
        await Promise.all(threads.map((thread) => thread.run({ writer: 'nobody', owner: 'test', upTo: 0, domainsPerTransaction: 1 }).catch(() => undefined)));
        const closed = await Promise.allSettled(threads.map((thread) => thread.close()));
        expect(closed.filter((result) => result.status === 'rejected')).toEqual([]);
      }
    } finally {
      for (const dir of dirs) dir.remove();
    }
    // 64 threads opening LMDB: seconds on a loaded machine.
  }, 90_000);
});
