import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFerretDb, type FerretDb } from './helpers/ferretdb.js';
import { rawExchange } from './helpers/raw-http.js';
import { dropDatabase, uniqueDatabaseUri } from './helpers/mongodb.js';
import { hasRedis, startRedis } from './helpers/redis.js';
import { startDaemon, storedCounts, tempDir } from './helpers/svc.js';

const serverUri = inject('mongodbUri');
const ferretdbBinary = inject('ferretdbBinary');

interface Answer {
  status: number;
  body: string;
  replayed: boolean;
}

/** Status 0: no answer (the server died). */
async function send(url: string, method: 'PUT' | 'POST', path: string, key: string | undefined, body?: string): Promise<Answer> {
  const headers: Record<string, string> = key === undefined ? {} : { 'idempotency-key': key };
  try {
    const res = await fetch(url + path, { method, headers, body });
    return { status: res.status, body: await res.text(), replayed: res.headers.get('idempotent-replayed') === 'true' };
  } catch {
    return { status: 0, body: '', replayed: false };
  }
}

const put = (url: string, domain: string, key?: string) => send(url, 'PUT', `/events/${domain}/delivered`, key);
const post = (url: string, body: string, key?: string) => send(url, 'POST', '/events', key, body);
const line = (domain: string, type: 'delivered' | 'bounced') => JSON.stringify({ domain, type }) + '\n';

/** The same behaviour on each store: a directory for the embedded one, a database on FerretDB for MongoDB. */
const stores: Array<{ name: string; store: () => Promise<{ store: string; remove(): Promise<void> }> }> = [
  {
    name: 'the embedded store',
    store: async () => {
      const dir = tempDir();
      return { store: dir.path, remove: async () => dir.remove() };
    },
  },
];
if (hasRedis()) {
  stores.push({
    name: 'Redis',
    store: async () => {
      const server = await startRedis();
      return { store: server.url, remove: () => server.destroy() };
    },
  });
}
if (serverUri) {
  stores.push({
    name: 'MongoDB (FerretDB)',
    store: async () => {
      const store = uniqueDatabaseUri(serverUri, 'svc_keys');
      return { store, remove: () => dropDatabase(store) };
    },
  });
}

describe.each(stores)('Idempotency-Key on $name', ({ store: makeStore }) => {
  it('a repeat counts nothing and gets the first answer again, marked Idempotent-Replayed', async () => {
    const { store, remove } = await makeStore();
    const daemon = await startDaemon('serve-http', ['--store', store]);
    try {
      expect(await put(daemon.url, 'once.example', 'put-1')).toEqual({ status: 204, body: '', replayed: false });
      expect(await put(daemon.url, 'once.example', 'put-1')).toEqual({ status: 204, body: '', replayed: true });
      // Another key, or none, is another request.
      expect(await put(daemon.url, 'once.example', 'put-2')).toMatchObject({ status: 204, replayed: false });
      expect(await put(daemon.url, 'once.example')).toMatchObject({ status: 204, replayed: false });

      const batch = line('batch.example', 'bounced') + line('batch.example', 'delivered') + 'not json\n';
      const first = await post(daemon.url, batch, 'post-1');
      expect(first).toMatchObject({ status: 200, replayed: false });
      expect(JSON.parse(first.body)).toMatchObject({ accepted: 2, rejected: 1 });
      expect(await post(daemon.url, batch, 'post-1')).toEqual({ ...first, replayed: true });

      expect(await daemon.stop()).toBe(0);
      expect(Object.fromEntries(await storedCounts(store, ['once.example', 'batch.example']))).toEqual({
        'once.example': { delivered: 3, bounced: 0 },
        'batch.example': { delivered: 1, bounced: 1 },
      });
    } finally {
      await daemon.stop('SIGKILL');
      await remove();
    }
  });

  it('refuses a key used for another request (422) and a malformed key (400), with a reason', async () => {
    const { store, remove } = await makeStore();
    const daemon = await startDaemon('serve-http', ['--store', store]);
    try {
      expect((await put(daemon.url, 'a.example', 'k')).status).toBe(204);
      const otherPath = await put(daemon.url, 'b.example', 'k');
      expect(otherPath.status).toBe(422);
      expect(JSON.parse(otherPath.body).error).toMatch(/another request/);
      expect((await post(daemon.url, line('a.example', 'delivered'), 'k')).status).toBe(422);
      expect((await post(daemon.url, line('c.example', 'delivered'), 'p')).status).toBe(200);
      expect((await post(daemon.url, line('c.example', 'bounced'), 'p')).status).toBe(422);

      for (const key of ['x'.repeat(256), 'naïve', 'tab\there']) {
        const answer = await put(daemon.url, 'a.example', key);
        // fetch itself refuses a header value with a byte above 0x7f in some versions: then nothing reached the server.
        if (answer.status === 0) continue;
        expect(answer.status).toBe(400);
        expect(JSON.parse(answer.body).error).toMatch(/Idempotency-Key/);
      }
      // Two keys: Node would join them into the one key "a, b"; the raw headers tell.
      const twoKeys = await rawExchange(
        daemon.url,
        'PUT /events/d.example/delivered HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\r\nidempotency-key: b\r\nConnection: close\r\n\r\n',
      );
      expect(twoKeys.status).toBe(400);
      expect(JSON.parse(twoKeys.body).error).toBe('send one Idempotency-Key header, not several');
      expect(await daemon.stop()).toBe(0);
      expect(Object.fromEntries(await storedCounts(store, ['a.example', 'b.example', 'c.example', 'd.example']))).toEqual({
        'd.example': { delivered: 0, bounced: 0 },
        'a.example': { delivered: 1, bounced: 0 },
        'b.example': { delivered: 0, bounced: 0 },
        'c.example': { delivered: 1, bounced: 0 },
      });
    } finally {
      await daemon.stop('SIGKILL');
      await remove();
    }
  });

  it('answers a repeat of a request still in flight with 409 and Retry-After, then replays its answer', async () => {
    const { store, remove } = await makeStore();
    // Every idle batch waits a second before it commits: the first request stays in flight that long.
    const daemon = await startDaemon('serve-http', ['--store', store, '--flush-ms', '1000']);
    try {
      const first = put(daemon.url, 'slow.example', 'slow');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const res = await fetch(`${daemon.url}/events/slow.example/delivered`, { method: 'PUT', headers: { 'idempotency-key': 'slow' } });
      expect(res.status).toBe(409);
      expect(res.headers.get('retry-after')).toBe('1');
      expect((await res.json()).error).toMatch(/being processed/);
      expect(await first).toMatchObject({ status: 204, replayed: false });
      expect(await put(daemon.url, 'slow.example', 'slow')).toMatchObject({ status: 204, replayed: true });
      expect(await daemon.stop()).toBe(0);
      expect((await storedCounts(store, ['slow.example'])).get('slow.example')).toEqual({ delivered: 1, bounced: 0 });
    } finally {
      await daemon.stop('SIGKILL');
      await remove();
    }
  });

  it('forgets a key after --idempotency-window: the same request is then counted again', async () => {
    const { store, remove } = await makeStore();
    const daemon = await startDaemon('serve-http', ['--store', store, '--idempotency-window', '1s']);
    try {
      expect(await put(daemon.url, 'window.example', 'w')).toMatchObject({ status: 204, replayed: false });
      expect(await put(daemon.url, 'window.example', 'w')).toMatchObject({ status: 204, replayed: true });
      await new Promise((resolve) => setTimeout(resolve, 1200));
      expect(await put(daemon.url, 'window.example', 'w')).toMatchObject({ status: 204, replayed: false });
      expect(await put(daemon.url, 'window.example', 'w')).toMatchObject({ status: 204, replayed: true });
      expect(await daemon.stop()).toBe(0);
      expect((await storedCounts(store, ['window.example'])).get('window.example')).toEqual({ delivered: 2, bounced: 0 });
    } finally {
      await daemon.stop('SIGKILL');
      await remove();
    }
  });

  it('keeps keys across a kill -9 and a restart', async () => {
    const { store, remove } = await makeStore();
    const first = await startDaemon('serve-http', ['--store', store, '--journal-lease', '1s']);
    try {
      for (let i = 0; i < 50; i++) expect((await put(first.url, `k${i % 5}.example`, `key-${i}`)).status).toBe(204);
      await first.stop('SIGKILL');
      // On the embedded store the keys are in the dead writer's journal, not yet in LMDB.
      const second = await startDaemon('serve-http', ['--store', store, '--journal-lease', '1s']);
      try {
        for (let i = 0; i < 50; i++) expect(await put(second.url, `k${i % 5}.example`, `key-${i}`)).toMatchObject({ status: 204, replayed: true });
        expect(await second.stop()).toBe(0);
      } finally {
        await second.stop('SIGKILL');
      }
      const counts = await storedCounts(store, ['k0.example', 'k4.example']);
      expect(Object.fromEntries(counts)).toEqual({ 'k0.example': { delivered: 10, bounced: 0 }, 'k4.example': { delivered: 10, bounced: 0 } });
    } finally {
      await first.stop('SIGKILL');
      await remove();
    }
  });
});

describe('Idempotency-Key on the embedded store', () => {
  it('a request answered 503 keeps no key: its retry is processed', async () => {
    const dir = tempDir();
    try {
      // A journal limit below one segment's header: every batch is refused, nothing counted.
      const full = await startDaemon('serve-http', ['--store', dir.path, '--journal-max', '1']);
      try {
        const refused = await put(full.url, 'retry.example', 'r');
        expect(refused.status).toBe(503);
        expect(await full.stop()).toBe(0);
      } finally {
        await full.stop('SIGKILL');
      }
      const daemon = await startDaemon('serve-http', ['--store', dir.path]);
      try {
        expect(await put(daemon.url, 'retry.example', 'r')).toMatchObject({ status: 204, replayed: false });
        expect(await daemon.stop()).toBe(0);
      } finally {
        await daemon.stop('SIGKILL');
      }
      expect((await storedCounts(dir.path, ['retry.example'])).get('retry.example')).toEqual({ delivered: 1, bounced: 0 });
    } finally {
      dir.remove();
    }
  });

  it('takes over at once the key of a request whose process was killed before it journaled it', async () => {
    const dir = tempDir();
    // The request is claimed, then waits two seconds for its batch: the kill comes first.
    const first = await startDaemon('serve-http', ['--store', dir.path, '--flush-ms', '2000']);
    try {
      const lost = put(first.url, 'orphan.example', 'orphan');
      await new Promise((resolve) => setTimeout(resolve, 300));
      await first.stop('SIGKILL');
      expect((await lost).status).toBe(0);
      // The default lease is 15 s; a claim of a dead process does not wait for it.
      const second = await startDaemon('serve-http', ['--store', dir.path]);
      try {
        const started = performance.now();
        expect(await put(second.url, 'orphan.example', 'orphan')).toMatchObject({ status: 204, replayed: false });
        expect(performance.now() - started).toBeLessThan(5_000);
        expect(await put(second.url, 'orphan.example', 'orphan')).toMatchObject({ status: 204, replayed: true });
        expect(await second.stop()).toBe(0);
      } finally {
        await second.stop('SIGKILL');
      }
      expect((await storedCounts(dir.path, ['orphan.example'])).get('orphan.example')).toEqual({ delivered: 1, bounced: 0 });
    } finally {
      await first.stop('SIGKILL');
      dir.remove();
    }
  });

  it('counts once when repeats of one key race each other across two workers', async () => {
    const dir = tempDir();
    const daemon = await startDaemon('serve-http', ['--store', dir.path, '--workers', '2']);
    try {
      const keys = 40;
      const copies = 8;
      const answers = await Promise.all(
        Array.from({ length: keys * copies }, (_, i) => {
          const key = `race-${i % keys}`;
          // A connection of its own each, so that the copies of a key spread over both workers.
          return fetch(`${daemon.url}/events/race.example/delivered`, { method: 'PUT', headers: { 'idempotency-key': key, connection: 'close' } }).then(
            (res) => ({ key, status: res.status, replayed: res.headers.get('idempotent-replayed') === 'true' }),
          );
        }),
      );
      for (let k = 0; k < keys; k++) {
        const ofKey = answers.filter((answer) => answer.key === `race-${k}`);
        expect(ofKey.filter((answer) => answer.status === 204 && !answer.replayed)).toHaveLength(1);
        expect(ofKey.every((answer) => answer.status === 204 || answer.status === 409)).toBe(true);
      }
      expect(await daemon.stop()).toBe(0);
      expect((await storedCounts(dir.path, ['race.example'])).get('race.example')).toEqual({ delivered: keys, bounced: 0 });
    } finally {
      await daemon.stop('SIGKILL');
      dir.remove();
    }
  });
});

describe.skipIf(!ferretdbBinary)('Idempotency-Key on MongoDB while the server is down', () => {
  let ferret: FerretDb;
  beforeAll(async () => {
    ferret = await startFerretDb(ferretdbBinary!);
  });
  afterAll(async () => {
    await ferret?.destroy();
  });

  it('counts every batch exactly once when FerretDB is killed in the middle of batches and clients retry with their keys', async () => {
    const store = `${ferret.uri}/svc_keys_killed`;
    const daemon = await startDaemon('serve-http', ['--store', store, '--store-timeout', '500ms']);
    try {
      // 40 batches of 50 distinct domains each, 4 clients at once; FerretDB upserts a few hundred
      // documents a second, so the kill lands in the middle of a batch's writes.
      const bodies = Array.from({ length: 40 }, (_, b) => Array.from({ length: 50 }, (_, i) => line(`k${(b * 7 + i) % 120}.example`, i % 9 === 0 ? 'bounced' : 'delivered')).join(''));
      const answers: number[][] = bodies.map(() => []);
      let next = 0;
      const client = async () => {
        for (let b = next++; b < bodies.length; b = next++) {
          // Retried with the same key until answered 200.
          for (let attempt = 0; attempt < 200; attempt++) {
            const answer = await post(daemon.url, bodies[b]!, `batch-${b}`);
            answers[b]!.push(answer.status);
            if (answer.status === 200) break;
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        }
      };
      const clients = Promise.all(Array.from({ length: 4 }, client));
      await new Promise((resolve) => setTimeout(resolve, 700));
      await ferret.stop(true);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await ferret.restart();
      await clients;
      expect(answers.every((statuses) => statuses.at(-1) === 200)).toBe(true);
      // The outage was seen: some requests were refused or left in doubt, and retried.
      expect(answers.some((statuses) => statuses.length > 1)).toBe(true);

      const expected = new Map<string, { delivered: number; bounced: number }>();
      for (const body of bodies) {
        for (const text of body.trim().split('\n')) {
          const { domain, type } = JSON.parse(text) as { domain: string; type: 'delivered' | 'bounced' };
          const counts = expected.get(domain) ?? { delivered: 0, bounced: 0 };
          counts[type]++;
          expected.set(domain, counts);
        }
      }
      expect(await storedCounts(store, [...expected.keys()])).toEqual(expected);
    } finally {
      await daemon.stop('SIGKILL');
      await dropDatabase(store).catch(() => {});
    }
  }, 120_000);

  it('answers 503 and keeps no key while MongoDB is unreachable; the retry afterwards is counted once', async () => {
    const store = `${ferret.uri}/svc_keys_down`;
    const daemon = await startDaemon('serve-http', ['--store', store, '--store-timeout', '500ms']);
    try {
      expect((await put(daemon.url, 'up.example', 'up')).status).toBe(204);
      await ferret.stop();
      expect((await put(daemon.url, 'down.example', 'down')).status).toBe(503);
      await ferret.restart();
      let answer: Answer = { status: 0, body: '', replayed: false };
      for (let attempt = 0; attempt < 40 && answer.status !== 204; attempt++) {
        answer = await put(daemon.url, 'down.example', 'down');
        if (answer.status !== 204) await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(answer).toMatchObject({ status: 204, replayed: false });
      expect(await put(daemon.url, 'down.example', 'down')).toMatchObject({ status: 204, replayed: true });
      expect(Object.fromEntries(await storedCounts(store, ['up.example', 'down.example']))).toEqual({
        'up.example': { delivered: 1, bounced: 0 },
        'down.example': { delivered: 1, bounced: 0 },
      });
    } finally {
      await daemon.stop('SIGKILL');
      await dropDatabase(store).catch(() => {});
    }
  });
});
