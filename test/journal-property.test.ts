import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DomainCounts } from '../src/core/status.js';
import { LmdbStore } from '../src/store/lmdb/lmdb-store.js';
import { tempDir } from './helpers/svc.js';

const DRIVER = fileURLToPath(new URL('./helpers/journal-driver.mjs', import.meta.url));
const DOMAINS = ['a.test', 'b.test', 'c.test', 'd.test', 'e.test'];
const CRASH_POINTS = ['append', 'apply-transaction', 'apply-part', 'apply-done'];
const WRITER_TIMEOUT_MS = 60_000;

type Entry = [domain: string, delivered: number, bounced: number];

interface Phase {
  batches: Entry[][];
  /** How the writer ends: a crash at a point of the journal's life, a kill -9 after its batches, or a clean close. */
  end: { crashAt: string } | 'kill' | 'close';
}

const entry = fc.tuple(fc.constantFrom(...DOMAINS), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 2 })) as fc.Arbitrary<Entry>;
const phase: fc.Arbitrary<Phase> = fc.record({
  batches: fc.array(fc.uniqueArray(entry, { selector: ([domain]) => domain, minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 }),
  end: fc.oneof(
    fc.record({ crashAt: fc.tuple(fc.constantFrom(...CRASH_POINTS), fc.integer({ min: 1, max: 4 })).map(([point, n]) => `${point}:${n}`) }),
    fc.constant('kill' as const),
    fc.constant('close' as const),
  ),
});

/** Runs one writer process; resolves with the batches it acknowledged. */
function runWriter(directory: string, batches: Entry[][], end: string, crashAt?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DRIVER, directory, JSON.stringify(batches), end], {
      env: { ...process.env, SVC_CRASH_AT: crashAt ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    // A writer that never ends fails the run with what it printed, rather than hanging the test.
    let hung = false;
    const timer = setTimeout(() => ((hung = true), child.kill('SIGKILL')), WRITER_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (hung) return reject(new Error(`journal driver (${end}, crash at ${crashAt || 'none'}) still running after ${WRITER_TIMEOUT_MS} ms: ${stdout} ${stderr}`));
      if (code !== 0 && signal !== 'SIGKILL') return reject(new Error(`journal driver exited with ${code}: ${stderr}`));
      resolve(stdout.split('\n').filter((line) => line.startsWith('ack ')).length);
    });
  });
}

/** Each batch also counts one delivery to a domain of its own, which tells whether it landed. */
const marker = (phaseIndex: number, batchIndex: number) => `m${phaseIndex}-${batchIndex}.test`;

describe('journal, against an in-memory model (fast-check)', () => {
  it(
    'after any sequence of batches, crashes, kills and restarts, LMDB holds exactly the acknowledged counts',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(phase, { minLength: 1, maxLength: 3 }), async (phases) => {
          const dir = tempDir('svc-journal-prop-');
          try {
            const model = new Map<string, DomainCounts>();
            const add = ([domain, delivered, bounced]: Entry) => {
              const counts = model.get(domain) ?? { delivered: 0, bounced: 0 };
              model.set(domain, { delivered: counts.delivered + delivered, bounced: counts.bounced + bounced });
            };
            // A batch in flight when its writer died may or may not have landed: its marker says.
            const inDoubt: Array<{ marker: string; entries: Entry[] }> = [];
            for (const [p, { batches, end }] of phases.entries()) {
              const marked = batches.map((entries, b) => [...entries, [marker(p, b), 1, 0] as Entry]);
              const crashAt = typeof end === 'object' ? end.crashAt : undefined;
              const acknowledged = await runWriter(dir.path, marked, typeof end === 'object' ? 'close' : end, crashAt);
              for (const entries of marked.slice(0, acknowledged)) entries.forEach(add);
              if (acknowledged < marked.length) inDoubt.push({ marker: marker(p, acknowledged), entries: marked[acknowledged]! });
            }
            // A last writer takes every dead one's journal over, applies it, and closes.
            await runWriter(dir.path, [], 'drain');

            const domains = [...DOMAINS, ...phases.flatMap(({ batches }, p) => batches.map((_, b) => marker(p, b)))];
            const bulk = await LmdbStore.open(dir.path, { use: 'bulk' });
            try {
              const stored = await bulk.getMany(domains);
              for (const { marker: name, entries } of inDoubt) {
                const landed = stored.get(name)?.delivered ?? 0;
                expect(landed, `${name} landed once or not at all`).toBeLessThanOrEqual(1);
                if (landed === 1) entries.forEach(add);
              }
              for (const domain of domains) {
                const expected = model.get(domain) ?? { delivered: 0, bounced: 0 };
                expect(stored.get(domain) ?? { delivered: 0, bounced: 0 }, domain).toEqual(expected);
              }
            } finally {
              await bulk.close();
            }
          } finally {
            dir.remove();
          }
        }),
        // A failure is reported at once, with its seed: shrinking a run that hung would outlast the test.
        { numRuns: 12, endOnFailure: true },
      );
    },
    180_000,
  );
});
