import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fingerprintFile } from '../src/replay/fingerprint.js';
import { openStore } from '../src/store/open-store.js';
import type { CounterStore } from '../src/store/counter-store.js';
import { generateLog, type Counts } from './helpers/logs.js';
import { dropDatabase, uniqueDatabaseUri } from './helpers/mongodb.js';
import { putEvents } from './helpers/http.js';
import { runSvc, startDaemon, storedCounts as countsInStore, SVC_BIN, tempDir } from './helpers/svc.js';

const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;
const expectedOf = (name: string) => JSON.parse(readFileSync(fixture(name), 'utf8'));

/** The stored counts as a plain object, the shape of the expected-counts files. */
async function storedCounts(store: string, domains: string[]): Promise<Counts> {
  return Object.fromEntries(await countsInStore(store, domains));
}

async function replayJson(args: string[], input?: string) {
  const result = await runSvc(['replay', '--json', ...args], { input });
  return { ...result, summary: result.stdout ? JSON.parse(result.stdout) : undefined };
}

describe('svc replay', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  let n = 0;
  const freshStore = () => join(dir.path, `store${n++}`);

  it('applies a valid log: every accepted form, counts exact, summary keys present', async () => {
    const store = freshStore();
    const expected = expectedOf('valid.expected.json');
    const { code, summary } = await replayJson([fixture('valid.ndjson'), '--store', store]);
    expect(code).toBe(0);
    expect(summary).toMatchObject(expected.summary);
    for (const key of ['lines', 'events', 'invalid', 'domains', 'seconds', 'eventsPerSecond']) expect(summary).toHaveProperty(key);
    expect(await storedCounts(store, Object.keys(expected.counts))).toEqual(expected.counts);
  });

  it('skips bad lines, counts them, reports the first few and keeps all of them with --rejects', async () => {
    const store = freshStore();
    const rejects = join(dir.path, 'rejects.ndjson');
    const expected = expectedOf('bad-lines.expected.json');
    const { code, summary, stderr } = await replayJson([fixture('bad-lines.ndjson'), '--store', store, '--rejects', rejects]);
    expect(code).toBe(0);
    expect(summary).toMatchObject(expected.summary);
    expect(await storedCounts(store, Object.keys(expected.counts))).toEqual(expected.counts);
    const kept = readFileSync(rejects, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(kept.map(({ line, reason }) => ({ line, reason }))).toEqual(expected.rejects);
    expect(kept[0]).toMatchObject({ file: fixture('bad-lines.ndjson'), text: 'not json at all' });
    expect(stderr).toContain('bad-lines.ndjson:2: line is not valid JSON');
    expect(stderr.match(/bad-lines\.ndjson:\d+:/g)).toHaveLength(5);
    expect(stderr).toContain('… and 11 more bad lines');
  });

  it('--strict stops at the first bad line and applies nothing after it', async () => {
    const store = freshStore();
    const { code, stderr } = await runSvc(['replay', fixture('bad-lines.ndjson'), '--store', store, '--strict']);
    expect(code).toBe(2);
    expect(stderr).toContain('stopped at line 2: line is not valid JSON (--strict)');
    expect(await storedCounts(store, ['good.example', 'after.example'])).toEqual({
      'good.example': { delivered: 1, bounced: 0 },
      'after.example': { delivered: 0, bounced: 0 },
    });
  });

  it('--max-invalid fails the run once the budget is spent, as a count or a ratio', async () => {
    expect((await runSvc(['replay', fixture('bad-lines.ndjson'), '--store', freshStore(), '--max-invalid', '3'])).code).toBe(2);
    expect((await runSvc(['replay', fixture('bad-lines.ndjson'), '--store', freshStore(), '--max-invalid', '50%'])).code).toBe(2);
    expect((await runSvc(['replay', fixture('bad-lines.ndjson'), '--store', freshStore(), '--max-invalid', '0.9'])).code).toBe(0);
    expect((await runSvc(['replay', fixture('valid.ndjson'), '--store', freshStore(), '--max-invalid', 'lots'])).code).toBe(2);
  });

  it('applies a completed file only once, and again with --force', async () => {
    const store = freshStore();
    await replayJson([fixture('valid.ndjson'), '--store', store]);
    const again = await runSvc(['replay', fixture('valid.ndjson'), '--store', store]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already applied, nothing to do');
    expect((await storedCounts(store, ['example.com']))['example.com']).toEqual({ delivered: 2, bounced: 1 });
    // The same content under another name is the same file.
    const copy = join(dir.path, 'copy.ndjson');
    copyFileSync(fixture('valid.ndjson'), copy);
    expect((await replayJson([copy, '--store', store])).summary.events).toBe(0);
    expect((await replayJson([copy, '--store', store, '--force'])).summary.events).toBe(9);
    expect((await storedCounts(store, ['example.com']))['example.com']).toEqual({ delivered: 4, bounced: 2 });
  });

  it('reads .gz files and standard input, several files in the order given', async () => {
    const store = freshStore();
    const gz = join(dir.path, 'valid.ndjson.gz');
    writeFileSync(gz, gzipSync(readFileSync(fixture('bad-lines.ndjson'))));
    const stdin = '{"domain":"stdin.example","type":"bounced"}\n';
    const { code, summary } = await replayJson([fixture('valid.ndjson'), gz, '-', '--store', store], stdin);
    expect(code).toBe(0);
    expect(summary).toMatchObject({ files: 3, events: 9 + 3 + 1, invalid: 16 });
    expect(summary.results.map((r: { file: string }) => r.file)).toEqual([fixture('valid.ndjson'), gz, '-']);
    expect(await storedCounts(store, ['good.example', 'stdin.example'])).toEqual({
      'good.example': { delivered: 1, bounced: 1 },
      'stdin.example': { delivered: 0, bounced: 1 },
    });
  });

  it('stops at the right line when chunks are parsed on threads (--strict, --max-invalid)', async () => {
    const log = join(dir.path, 'threads.ndjson');
    await generateLog(log, 100_000, { seed: 3 });
    const lines = readFileSync(log, 'utf8').split('\n');
    const bad = [40_001, 70_001, 90_001];
    for (const line of bad) lines[line - 1] = '{"domain":"bad..example","type":"delivered"}';
    writeFileSync(log, lines.join('\n'));
    const countsBefore = (line: number): Counts => {
      const counts: Counts = {};
      for (let i = 0; i < line - 1; i++) {
        if (bad.includes(i + 1)) continue;
        const { domain, type } = JSON.parse(lines[i]!) as { domain: string; type: 'delivered' | 'bounced' };
        const c = (counts[domain.toLowerCase()] ??= { delivered: 0, bounced: 0 });
        c[type]++;
      }
      return counts;
    };
    const threaded = ['--threads', '2', '--chunk-size', '64KiB'];
    for (const [args, stopLine] of [[['--strict'], bad[0]!], [['--max-invalid', '2'], bad[2]!]] as const) {
      const store = freshStore();
      const run = await runSvc(['replay', log, '--store', store, ...threaded, ...args]);
      expect(run.code, run.stderr).toBe(2);
      const expected = countsBefore(stopLine);
      expect(await storedCounts(store, Object.keys(expected))).toEqual(expected);
      if (args[0] === '--strict') expect(run.stderr).toContain(`stopped at line ${stopLine}:`);
    }
  });

  it('exits 1 naming a file it cannot read, before applying or creating anything', async () => {
    const store = freshStore();
    const missing = join(dir.path, 'missing.ndjson');
    const result = await runSvc(['replay', fixture('valid.ndjson'), missing, '--store', store]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`svc: cannot read ${missing}: no such file (ENOENT)\n`);
    const directory = await runSvc(['replay', dir.path, '--store', store]);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toBe(`svc: cannot read ${dir.path}: it is a directory (EISDIR)\n`);
    expect(existsSync(store)).toBe(false);
  });

  it('adds up with a live serve-http writing to the same store', async () => {
    const store = freshStore();
    const log = join(dir.path, 'live.ndjson');
    const expected = await generateLog(log, 200_000, { domains: 100, seed: 5 });
    const daemon = await startDaemon('serve-http', ['--store', store]);
    try {
      const domains = Object.keys(expected).slice(0, 20);
      const live = domains.flatMap((domain) => Array.from({ length: 10 }, () => ({ domain, type: 'delivered' as const })));
      const [replay, statuses] = await Promise.all([replayJson([log, '--store', store, '--chunk-size', '256KiB']), putEvents(daemon.url, live, 8)]);
      expect(replay.code).toBe(0);
      expect(statuses.every((s) => s === 204)).toBe(true);
      const counted = await storedCounts(store, domains);
      for (const domain of domains) {
        expect(counted[domain]).toEqual({ delivered: expected[domain]!.delivered + 10, bounced: expected[domain]!.bounced });
      }
    } finally {
      await daemon.stop();
    }
  });
});

describe('svc replay: runs that stop and start again', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  let log = '';
  let expected: Counts = {};
  let fingerprint = '';
  const store = (name: string) => join(dir.path, name);

  /** The counts of the file's first `lines` lines. */
  const countsOfFirstLines = (lines: number): Counts => {
    const counts: Counts = {};
    for (const line of readFileSync(log, 'utf8').split('\n').slice(0, lines)) {
      const { domain, type } = JSON.parse(line) as { domain: string; type: 'delivered' | 'bounced' };
      const c = (counts[domain.toLowerCase()] ??= { delivered: 0, bounced: 0 });
      c[type]++;
    }
    return counts;
  };

  /** Starts a replay and resolves once the store holds a checkpoint of at least one chunk. */
  const startedReplay = async (path: string, args: string[]) => {
    const child = spawn(process.execPath, [SVC_BIN, 'replay', '--quiet', log, '--store', path, ...args], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const observer = await openStore({ store: path });
    try {
      await expect.poll(async () => (await observer.getCheckpoint(fingerprint))?.chunk ?? 0, { timeout: 30_000, interval: 5 }).toBeGreaterThan(0);
    } finally {
      await observer.close();
    }
    return { child, exited };
  };
  const checkpointIn = async (path: string) => {
    const reader = await openStore({ store: path });
    try {
      return (await reader.getCheckpoint(fingerprint))!;
    } finally {
      await reader.close();
    }
  };

  beforeAll(async () => {
    log = join(dir.path, 'events.ndjson');
    // About 20 MB: hundreds of 64 KiB chunks, so that a signal lands long before the end.
    expected = await generateLog(log, 400_000, { domains: 5000, seed: 21 });
    fingerprint = await fingerprintFile(log, statSync(log).size);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('on %s exits 130 with what it read committed up to its checkpoint, and the same command finishes', async (signal) => {
    const path = store(`interrupted-${signal}`);
    const args = ['--chunk-size', '64KiB'];
    const { child, exited } = await startedReplay(path, args);
    child.kill(signal);
    expect(await exited).toBe(130);
    const checkpoint = await checkpointIn(path);
    expect(checkpoint.done).toBe(false);
    expect(checkpoint.lines).toBeGreaterThan(0);
    expect(checkpoint.lines).toBeLessThan(400_000);
    // Exactly the lines the checkpoint names are counted: the chunk in hand was committed with it.
    const committed = countsOfFirstLines(checkpoint.lines);
    expect(await storedCounts(path, Object.keys(expected))).toEqual(
      Object.fromEntries(Object.keys(expected).map((domain) => [domain, committed[domain] ?? { delivered: 0, bounced: 0 }])),
    );

    const finished = await replayJson([log, '--store', path, ...args]);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.summary.results[0].resumedAfterLine).toBe(checkpoint.lines);
    expect(await storedCounts(path, Object.keys(expected))).toEqual(expected);
  });

  it("resumes with the checkpoint's chunk size, whatever --chunk-size says", async () => {
    const uninterrupted = store('uninterrupted');
    expect((await replayJson([log, '--store', uninterrupted, '--chunk-size', '64KiB'])).code).toBe(0);
    const whole = await checkpointIn(uninterrupted);
    expect(whole).toMatchObject({ done: true, chunkBytes: 65_536 });

    const path = store('resumed');
    const { child, exited } = await startedReplay(path, ['--chunk-size', '64KiB']);
    child.kill('SIGKILL');
    await exited;
    const resumed = await replayJson([log, '--store', path, '--chunk-size', '1MiB']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.summary.results[0].resumedAfterLine).toBeGreaterThan(0);
    // The same chunks as one uninterrupted run: same size, same count.
    expect(await checkpointIn(path)).toMatchObject({ done: true, chunkBytes: 65_536, chunk: whole.chunk });
    expect(await storedCounts(path, Object.keys(expected))).toEqual(expected);
  });
});

describe('svc replay: what counts as the same input', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('takes an edited file as a new file', async () => {
    const path = join(dir.path, 'store');
    const file = join(dir.path, 'events.ndjson');
    writeFileSync(file, '{"domain":"edit.example","type":"delivered"}\n{"domain":"edit.example","type":"delivered"}\n');
    expect((await replayJson([file, '--store', path])).summary.events).toBe(2);
    expect((await replayJson([file, '--store', path])).summary.events).toBe(0);
    // The second line edited; same name.
    writeFileSync(file, '{"domain":"edit.example","type":"delivered"}\n{"domain":"edit.example","type":"bounced"}\n');
    const edited = await replayJson([file, '--store', path]);
    expect(edited.stdout).not.toContain('already applied');
    expect(edited.summary.events).toBe(2);
    expect(await storedCounts(path, ['edit.example'])).toEqual({ 'edit.example': { delivered: 3, bounced: 1 } });
  });

  it('applies standard input every time: it cannot be fingerprinted', async () => {
    const path = join(dir.path, 'stdin-store');
    const input = '{"domain":"stdin-twice.example","type":"delivered"}\n';
    for (let run = 0; run < 2; run++) expect((await replayJson(['-', '--store', path], input)).summary.events).toBe(1);
    expect(await storedCounts(path, ['stdin-twice.example'])).toEqual({ 'stdin-twice.example': { delivered: 2, bounced: 0 } });
  });
});

/**
 * Starts `svc replay` and kills it with SIGKILL as soon as the store holds a checkpoint past
 * `afterChunk` for the file: the kill lands part-way through, however fast or slow the machine is.
 */
async function killedReplay(args: string[], store: CounterStore, fingerprint: string, afterChunk: number): Promise<number | null> {
  const child = spawn(process.execPath, [SVC_BIN, 'replay', '--quiet', ...args], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  let running = true;
  void exited.then(() => (running = false));
  while (running) {
    const checkpoint = await store.getCheckpoint(fingerprint);
    if (checkpoint && checkpoint.chunk > afterChunk) child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 10));
  }
  return exited;
}

function exactlyOnceAfterKills(storeFor: () => Promise<{ store: string; cleanup(): Promise<void> }>, log: { events: number; domains: number; chunk: string }) {
  return async () => {
    const dir = tempDir();
    const { store, cleanup } = await storeFor();
    const observer = await openStore({ store });
    try {
      const file = join(dir.path, 'events.ndjson');
      const expected = await generateLog(file, log.events, { domains: log.domains, seed: 9 });
      const fingerprint = await fingerprintFile(file, statSync(file).size);
      const args = [file, '--store', store, '--chunk-size', log.chunk];
      // Two runs killed part-way (once the first group of 32 chunks is in, then the second), then one to the end.
      const first = await killedReplay(args, observer, fingerprint, 0);
      const second = await killedReplay(args, observer, fingerprint, 32);
      const last = await replayJson(args);
      expect(last.code, last.stderr).toBe(0);
      const resumed = last.summary.results[0].resumedAfterLine;
      // The kills landed part-way: the last run did not start from the beginning.
      expect({ first, second, resumedPartWay: resumed > 0 && resumed < log.events }).toEqual({ first: null, second: null, resumedPartWay: true });
      expect(await storedCounts(store, Object.keys(expected))).toEqual(expected);
    } finally {
      await observer.close();
      await cleanup();
      dir.remove();
    }
  };
}

describe('svc replay after kill -9', () => {
  it(
    'embedded store: finishes on the next run with the counts of one uninterrupted run',
    exactlyOnceAfterKills(
      async () => {
        const dir = tempDir();
        return { store: dir.path, cleanup: async () => dir.remove() };
      },
      { events: 400_000, domains: 3000, chunk: '128KiB' },
    ),
    120_000,
  );

  it('embedded store: a kill -9 inside a group of chunks resumes after the last part committed', async () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, 'events.ndjson');
      const store = join(dir.path, 'store');
      // 30,000 domains, three events each, in four chunks of one group: applied in three parts of 10,000.
      const expected: Counts = {};
      const lines: string[] = [];
      for (let pass = 0; pass < 3; pass++) {
        for (let i = 0; i < 30_000; i++) {
          const domain = `g${i}.example`;
          const type = (i + pass) % 7 === 0 ? 'bounced' : 'delivered';
          lines.push(JSON.stringify({ domain, type }));
          expected[domain] ??= { delivered: 0, bounced: 0 };
          expected[domain]![type]++;
        }
      }
      writeFileSync(file, lines.join('\n') + '\n');
      const args = [file, '--store', store, '--chunk-size', '1MiB'];
      const crashed = await runSvc(['replay', ...args], { env: { SVC_CRASH_AT: 'apply-transaction:2' } });
      expect(crashed.code).toBeNull();
      const partly = await openStore({ store, use: 'bulk' });
      try {
        const fingerprint = await fingerprintFile(file, statSync(file).size);
        const checkpoint = await partly.getCheckpoint(fingerprint);
        expect(checkpoint).toMatchObject({ chunk: 0, done: false, partial: { chunk: expect.any(Number), cursor: expect.any(String) } });
        const domains = Object.keys(expected);
        expect((await partly.getMany(domains)).size).toBe(10_000);
      } finally {
        await partly.close();
      }
      const resumed = await replayJson(args);
      expect(resumed.code, resumed.stderr).toBe(0);
      const reader = await openStore({ store, use: 'read' });
      try {
        const found = await reader.getMany(Object.keys(expected));
        expect(Object.fromEntries(found)).toEqual(expected);
      } finally {
        await reader.close();
      }
    } finally {
      dir.remove();
    }
  });

  const serverUri = inject('mongodbUri');
  it.skipIf(!serverUri)('MongoDB: no document keeps a replay_<run> marker once the run is done', async () => {
    const dir = tempDir();
    const store = uniqueDatabaseUri(serverUri);
    const client = new MongoClient(store);
    try {
      const file = join(dir.path, 'events.ndjson');
      const expected = await generateLog(file, 20_000, { domains: 30, seed: 4 });
      const replay = await replayJson([file, '--store', store, '--chunk-size', '64KiB']);
      expect(replay.code, replay.stderr).toBe(0);
      const documents = await client.db().collection('domains').find({}).toArray();
      expect(documents).toHaveLength(Object.keys(expected).length);
      for (const document of documents) expect(Object.keys(document).sort()).toEqual(['_id', 'bounced', 'delivered']);
    } finally {
      await client.close();
      await dropDatabase(store);
      dir.remove();
    }
  }, 60_000);

  it.skipIf(!serverUri)(
    'MongoDB: finishes on the next run with the counts of one uninterrupted run',
    exactlyOnceAfterKills(
      async () => {
        const store = uniqueDatabaseUri(serverUri);
        return { store, cleanup: () => dropDatabase(store) };
      },
      { events: 40_000, domains: 40, chunk: '12KiB' },
    ),
    180_000,
  );
});

