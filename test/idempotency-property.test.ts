import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DomainCounts } from '../src/core/status.js';
import { LmdbStore } from '../src/store/lmdb/lmdb-store.js';
import { tempDir } from './helpers/svc.js';

const DRIVER = fileURLToPath(new URL('./helpers/key-driver.mjs', import.meta.url));
const DOMAINS = ['a.test', 'b.test', 'c.test'];
const CRASH_POINTS = ['append', 'apply-transaction', 'apply-part', 'apply-done'];
const KEYS = 8;

type Entry = [domain: string, delivered: number, bounced: number];
/** A client's request: its key and its events, always the same for one key. */
type KeyedRequest = [key: string, entries: Entry[]];

interface Phase {
  /** Indices into the requests: a request sent again is a client's retry or a duplicate. */
  sends: number[];
  end: { crashAt: string } | 'kill' | 'close';
}

const entry = fc.tuple(fc.constantFrom(...DOMAINS), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 2 })) as fc.Arbitrary<Entry>;
const requestsArb = fc
  .array(fc.uniqueArray(entry, { selector: ([domain]) => domain, minLength: 1, maxLength: 3 }), { minLength: KEYS, maxLength: KEYS })
  // Each request also counts one delivery to a domain of its own: its count must end at exactly 1.
  .map((all) => all.map((entries, i): KeyedRequest => [`key-${i}`, [...entries, [`m${i}.test`, 1, 0]]]));
const phase: fc.Arbitrary<Phase> = fc.record({
  sends: fc.array(fc.integer({ min: 0, max: KEYS - 1 }), { minLength: 1, maxLength: 12 }),
  end: fc.oneof(
    fc.record({ crashAt: fc.tuple(fc.constantFrom(...CRASH_POINTS), fc.integer({ min: 1, max: 4 })).map(([point, n]) => `${point}:${n}`) }),
    fc.constant('kill' as const),
    fc.constant('close' as const),
  ),
});

function runClient(directory: string, requests: KeyedRequest[], end: string, crashAt?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DRIVER, directory, JSON.stringify(requests), end], {
      env: { ...process.env, SVC_CRASH_AT: crashAt ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') return reject(new Error(`key driver exited with ${code}: ${stderr}`));
      resolve();
    });
  });
}

describe('idempotency keys on the embedded store, against a model (fast-check)', () => {
  it(
    'whatever crashes, kills and duplicates come between, every request retried with its key until answered counts exactly once',
    async () => {
      await fc.assert(
        fc.asyncProperty(requestsArb, fc.array(phase, { minLength: 1, maxLength: 3 }), async (requests, phases) => {
          const dir = tempDir('svc-keys-prop-');
          try {
            for (const { sends, end } of phases) {
              const crashAt = typeof end === 'object' ? end.crashAt : undefined;
              await runClient(dir.path, sends.map((i) => requests[i]!), typeof end === 'object' ? 'close' : end, crashAt);
            }
            // The clients retry every request they sent until it is answered: a last process does,
            // then applies every dead process's journal, so that LMDB holds everything.
            const sent = [...new Set(phases.flatMap(({ sends }) => sends))].map((i) => requests[i]!);
            await runClient(dir.path, sent, 'drain');

            const model = new Map<string, DomainCounts>();
            for (const [, entries] of sent) {
              for (const [domain, delivered, bounced] of entries) {
                const counts = model.get(domain) ?? { delivered: 0, bounced: 0 };
                model.set(domain, { delivered: counts.delivered + delivered, bounced: counts.bounced + bounced });
              }
            }
            const domains = [...DOMAINS, ...requests.map((_, i) => `m${i}.test`)];
            const bulk = await LmdbStore.open(dir.path, { use: 'bulk' });
            try {
              const stored = await bulk.getMany(domains);
              for (const domain of domains) {
                expect(stored.get(domain) ?? { delivered: 0, bounced: 0 }, domain).toEqual(model.get(domain) ?? { delivered: 0, bounced: 0 });
              }
            } finally {
              await bulk.close();
            }
          } finally {
            dir.remove();
          }
        }),
        { numRuns: 10 },
      );
    },
    240_000,
  );
});
