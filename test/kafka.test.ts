import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { partitionOf } from '../src/kafka/partitioner.js';
import { getJson, makeEvents, putEvents, tally, type Tally } from './helpers/http.js';
import { freePort } from './helpers/ferretdb.js';
import { startKafkaBroker, startMaterializer, type KafkaBroker, type Materializer } from './helpers/kafka.js';
import { runSvc, startDaemon, SVC_BIN, tempDir, type Daemon } from './helpers/svc.js';
import { grpcClients } from '../src/client/grpc-clients.js';

const brokerBinary = inject('kafkaBrokerBinary');

async function until<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Every domain's counts as serve-read answers them. */
async function readCounts(url: string, domains: Iterable<string>): Promise<Tally> {
  const counts: Tally = new Map();
  for (const domain of domains) {
    const { body } = await getJson(`${url}/domains/${domain}`);
    counts.set(domain, { delivered: body.delivered, bounced: body.bounced });
  }
  return counts;
}

const same = (a: Tally, b: Tally) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

describe('kafka:// store URLs', () => {
  it('refuses a malformed URL with exit code 2 and says what is wrong', async () => {
    for (const [store, reason] of [
      ['kafka://127.0.0.1:9092', 'PREFIX is missing'],
      ['kafka://127.0.0.1:9092/', 'PREFIX must be'],
      ['kafka://127.0.0.1/p', '"127.0.0.1" is not HOST:PORT'],
      ['kafka://127.0.0.1:99999/p', 'is not HOST:PORT'],
      ['kafka:///p', 'no broker given'],
      ['kafka://h:1/a/b', 'PREFIX must be'],
    ]) {
      const result = await runSvc(['setup', '--store', store!, '--partitions', '2']);
      expect(result.code, store).toBe(2);
      expect(result.stderr, store).toContain(reason);
    }
  });

  it('svc status on a kafka:// store names serve-read', async () => {
    const result = await runSvc(['status', '--store', 'kafka://127.0.0.1:9/p', 'example.com']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/svc serve-read --store kafka:\/\/127\.0\.0\.1:9\/p --state DIR.*svc status --url/);
  });

  it('serve-http with Kafka unreachable answers 503 within --store-timeout, and /readyz 503', async () => {
    const port = await freePort();
    const ingest = await startDaemon('serve-http', ['--store', `kafka://127.0.0.1:${port}/down`, '--store-timeout', '1s']);
    try {
      const started = performance.now();
      const res = await fetch(`${ingest.url}/events/a.example.com/delivered`, { method: 'PUT' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(performance.now() - started).toBeLessThan(5_000);
      expect((await getJson(`${ingest.url}/readyz`)).status).toBe(503);
    } finally {
      await ingest.stop();
    }
  });

  it('places a domain in the partition of Kafka\'s default partitioner keyed by the domain', () => {
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: 12 }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
    for (let i = 0; i < 500; i++) {
      const domain = `d${i * 7919}.example${i % 13}.com`;
      expect(partitionOf(domain, 12)).toBe(partitioner({ topic: 't', partitionMetadata, message: { key: domain, value: null } }));
    }
  });
});

describe.skipIf(!brokerBinary)('the Kafka pipeline on the kfake test broker', () => {
  let broker: KafkaBroker;
  const dirs: Array<{ remove(): void }> = [];
  const daemons: Array<Daemon | Materializer> = [];
  const dir = () => {
    const made = tempDir('svc-kafka.');
    dirs.push(made);
    return made.path;
  };

  beforeAll(async () => {
    broker = await startKafkaBroker(brokerBinary, { brokers: 1 });
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    await broker?.stop();
    for (const d of dirs) d.remove();
  });

  it('setup creates the two topics once and says what exists; the daemons count each event once, keyed requests once', async () => {
    const store = broker.storeUrl('one');
    const first = await runSvc(['setup', '--store', store, '--partitions', '4']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(
      'created topic one.events with 4 partitions\ncreated topic one.counts with 4 partitions (cleanup.policy=compact)\n' +
        'created topic one.replays with 1 partition (cleanup.policy=compact)\n',
    );
    const again = await runSvc(['setup', '--store', store]);
    expect(again.stdout).toBe('topic one.events exists with 4 partitions\ntopic one.counts exists with 4 partitions\ntopic one.replays exists\n');
    const other = await runSvc(['setup', '--store', store, '--partitions', '3']);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('exists with 4 partitions, not 3');

    const ingest = await startDaemon('serve-http', ['--store', store]);
    daemons.push(ingest);
    const materializer = await startMaterializer(SVC_BIN, store, dir(), ['--session-timeout', '3s', '--metrics-port', '0']);
    daemons.push(materializer);
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(reader);

    const events = makeEvents(600, 40, 3);
    const statuses = await putEvents(ingest.url, events, 8);
    expect(statuses.every((s) => s === 204)).toBe(true);
    const batch = '{"domain":"Keyed.Example.COM","type":"bounced"}\n{"domain":"d1.example.com","type":"delivered"}\n';
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${ingest.url}/events`, { method: 'POST', body: batch, headers: { 'idempotency-key': 'batch-1' } });
      expect(res.status).toBe(200);
    }
    const expected = tally([...events, { domain: 'keyed.example.com', type: 'bounced' }, { domain: 'd1.example.com', type: 'delivered' }]);
    const counted = await until(() => readCounts(reader.url, expected.keys()), (c) => same(c, expected), 20_000);
    expect(counted).toEqual(expected);
    expect((await getJson(`${reader.url}/readyz`)).status).toBe(200);
    // Its metrics: every event counted once, the two repeats of the keyed request dropped.
    const metricsUrl = JSON.parse(materializer.output().split('\n').find((line) => line.includes('"msg":"materializing"'))!).metrics;
    const metrics = await (await fetch(metricsUrl)).text();
    expect(metrics).toContain('svc_materialize_events_total{stage="count"} 602');
    expect(metrics).toMatch(/svc_materialize_records_total\{stage="count",outcome="duplicate"\} [24]\n/);

    const read = await getJson(`${ingest.url}/domains/d1.example.com`);
    expect(read.status).toBe(501);
    expect(read.body.error).toContain(`svc serve-read --store ${store} --state DIR`);
  });

  it('svc materialize on a prefix nobody set up exits 1 naming svc setup', async () => {
    const result = await runSvc(['materialize', '--store', broker.storeUrl('nothing'), '--state', dir()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('topic nothing.events does not exist: run svc setup');
  });

  it('serve-grpc produces to Kafka, a keyed batch sent twice counted once; its Status service names serve-read', async () => {
    const store = broker.storeUrl('grpc');
    expect((await runSvc(['setup', '--store', store, '--partitions', '2'])).code).toBe(0);
    daemons.push(await startMaterializer(SVC_BIN, store, dir()));
    const grpcd = await startDaemon('serve-grpc', ['--store', store]);
    daemons.push(grpcd);
    const clients = grpcClients(grpcd.url.replace(/^\w+:\/\//, ''));
    try {
      const batch = {
        events: [{ domain: 'GRPC.example.com', type: 'EVENT_TYPE_DELIVERED' }, { domain: 'grpc.example.com', type: 'EVENT_TYPE_BOUNCED' }],
        idempotency_key: 'grpc-batch-1',
      };
      // Sent twice with its key: counted once, by the materializer.
      for (let i = 0; i < 2; i++) {
        const ack = await new Promise<any>((resolve, reject) => clients.ingest.PublishOne(batch, (error: Error | null, reply: unknown) => (error ? reject(error) : resolve(reply))));
        expect(ack.accepted).toBe(2);
      }
      const refused = await new Promise<any>((resolve) => clients.status.Get({ domain: 'grpc.example.com' }, (error: unknown) => resolve(error)));
      expect(refused.code).toBe(12); // UNIMPLEMENTED
      expect(refused.details).toContain('svc serve-read --store');
    } finally {
      clients.close();
    }
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(reader);
    const report = await until(() => getJson(`${reader.url}/domains/grpc.example.com`).then((r) => r.body), (b) => b.bounced >= 1, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await getJson(`${reader.url}/domains/grpc.example.com`)).body).toMatchObject({ delivered: 1, bounced: 1 });
    expect(report.bounced).toBe(1);
  });

  it('svc loadtest --verify through serve-read finds every acknowledged event counted once', async () => {
    const store = broker.storeUrl('lt');
    expect((await runSvc(['setup', '--store', store, '--partitions', '3'])).code).toBe(0);
    const ingest = await startDaemon('serve-http', ['--store', store]);
    const materializer = await startMaterializer(SVC_BIN, store, dir());
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(ingest, materializer, reader);
    const json = join(dir(), 'report.json');
    const run = await runSvc(['loadtest', '--target', ingest.url, '--rps', '400', '--duration', '2s', '--verify', '--verify-url', reader.url, '--json', json]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { verify } = JSON.parse(readFileSync(json, 'utf8'));
    expect(verify).toMatchObject({ lost: 0, extra: 0, unreadable: 0 });
    expect(verify.acknowledged).toBeGreaterThan(500);
  });

  it('svc replay produces a file exactly once: killed mid-file and run again, then run a third time, every event counted once', async () => {
    const store = broker.storeUrl('replay');
    expect((await runSvc(['setup', '--store', store, '--partitions', '3'])).code).toBe(0);
    const file = join(dir(), 'events.ndjson');
    const lines: string[] = [];
    for (let i = 0; i < 400_000; i++) lines.push(JSON.stringify({ domain: `r${i % 1000}.example.com`, type: i % 10 === 0 ? 'bounced' : 'delivered' }));
    writeFileSync(file, lines.join('\n') + '\n');
    // Small chunks, one parsing thread: the kill lands between committed groups, not after the last.
    const args = ['replay', file, '--store', store, '--chunk-size', '64KiB', '--threads', '0'];
    const killed = spawn(process.execPath, [SVC_BIN, ...args], { stdio: 'ignore' });
    // Killed once its first group is committed (a checkpoint record and its commit marker).
    const admin = new Kafka({ brokers: broker.brokers.split(','), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await until(() => admin.fetchTopicOffsets('replay.replays').then((o) => Number(o[0]!.high)), (high) => high >= 2, 20_000);
    await admin.disconnect();
    killed.kill('SIGKILL');
    await new Promise((resolve) => killed.once('exit', resolve));
    const resumed = await runSvc(args);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/resumed after line [1-9]/);
    const third = await runSvc(args);
    expect(third.stdout).toContain('already applied');

    const materializer = await startMaterializer(SVC_BIN, store, dir());
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(materializer, reader);
    const expected: Tally = new Map(Array.from({ length: 1000 }, (_, i) => [`r${i}.example.com`, i % 10 === 0 ? { delivered: 0, bounced: 400 } : { delivered: 400, bounced: 0 }]));
    const counted = await until(() => readCounts(reader.url, expected.keys()), (c) => same(c, expected), 30_000);
    expect(counted).toEqual(expected);
  }, 60_000);

  it('materialize --source counts an existing JSON topic once, killed mid-stream: mapped by recipient and event name, the rest dead-lettered', async () => {
    const store = broker.storeUrl('src');
    expect((await runSvc(['setup', '--store', store, '--partitions', '4'])).code).toBe(0);
    const kafka = new Kafka({ brokers: broker.brokers.split(','), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: 'mail-events', numPartitions: 3 }, { topic: 'mail-dlq', numPartitions: 1 }] });
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const expected: Tally = new Map();
    const messages: Array<{ key: string; value: string }> = [];
    let bad = 0;
    for (let i = 0; i < 6000; i++) {
      const domain = `m${i % 97}.example.com`;
      const kind = i % 6;
      // Keyed by message id, as a platform's topic would be: a domain's events are in every partition.
      const key = `msg-${i}`;
      if (kind === 5) {
        bad++;
        messages.push({ key, value: i % 12 === 5 ? 'not json' : JSON.stringify({ event: 'failed', severity: 'temporary', recipient: `u${i}@${domain}` }) });
        continue;
      }
      const type = kind === 4 ? 'bounced' : 'delivered';
      const event = type === 'bounced' ? { event: 'failed', severity: 'permanent' } : { event: 'delivered' };
      messages.push({ key, value: JSON.stringify({ ...event, recipient: `User${i}@${domain.toUpperCase()}` }) });
      const counts = expected.get(domain) ?? { delivered: 0, bounced: 0 };
      counts[type]++;
      expected.set(domain, counts);
    }
    for (let i = 0; i < messages.length; i += 500) await producer.send({ topic: 'mail-events', messages: messages.slice(i, i + 500) });
    await producer.disconnect();

    const args = ['--source', 'mail-events', '--recipient-field', 'recipient', '--type-field', 'event', '--bounced', 'failed[severity=permanent]', '--dead-letter', 'mail-dlq', '--session-timeout', '2s'];
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    const first = await startMaterializer(SVC_BIN, store, dir(), args);
    daemons.push(reader, first);
    await until(() => readCounts(reader.url, ['m1.example.com']), (c) => c.get('m1.example.com')!.delivered > 0, 20_000);
    await first.stop('SIGKILL');
    const second = await startMaterializer(SVC_BIN, store, dir(), args);
    daemons.push(second);
    const counted = await until(() => readCounts(reader.url, expected.keys()), (c) => same(c, expected), 30_000);
    expect(counted).toEqual(expected);
    // Every record that did not map is in the dead-letter topic once.
    await until(() => admin.fetchTopicOffsets('mail-dlq').then((o) => Number(o[0]!.high)), (high) => high >= bad, 10_000);
    const dlq = kafka.consumer({ groupId: 'dlq-check', maxWaitTimeInMs: 100 });
    await dlq.connect();
    await dlq.subscribe({ topic: 'mail-dlq', fromBeginning: true });
    const seen: string[] = [];
    await new Promise<void>((resolve) => {
      void dlq.run({
        eachMessage: async ({ message }) => {
          seen.push(message.key!.toString());
          if (seen.length >= bad) resolve();
        },
      });
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await dlq.disconnect();
    expect(seen.length).toBe(bad);
    expect(new Set(seen).size).toBe(bad);
    await admin.disconnect();
  }, 60_000);

  it('counts the records other producers write to PREFIX.events (one event, or deltas-v1 under any spelling of a name) and skips the bad ones', async () => {
    const store = broker.storeUrl('foreign');
    expect((await runSvc(['setup', '--store', store, '--partitions', '2'])).code).toBe(0);
    const member = await startMaterializer(SVC_BIN, store, dir(), ['--session-timeout', '2s', '--metrics-port', '0']);
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(member, reader);
    const producer = new Kafka({ brokers: broker.brokers.split(','), logLevel: logLevel.NOTHING }).producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const at = (domain: string) => partitionOf(domain, 2);
    const deltas = { 'svc-format': 'deltas-v1' };
    await producer.send({
      topic: 'foreign.events',
      acks: -1,
      messages: [
        { key: 'one.example', partition: at('one.example'), value: '{"domain":"One.Example.","type":"bounced"}' },
        // Three spellings of one name in one record: one domain, their increments added.
        { partition: at('two.example'), headers: deltas, value: '{"counts":{"Two.Example":[1,0],"two.example":[2,1],"TWO.EXAMPLE.":[3,0]}}' },
        { partition: at('two.example'), headers: deltas, value: '{"counts":{"two.example":[4,0]}}' },
        // Rejected, and counting goes on: not JSON, a bad count, an invalid domain, an unknown type.
        { partition: at('two.example'), headers: deltas, value: 'not json' },
        { partition: at('two.example'), headers: deltas, value: '{"counts":{"two.example":[-1,0]}}' },
        { partition: at('two.example'), headers: deltas, value: '{"counts":{"two.example":[1,0],"bad_name.example":[1,0]}}' },
        { key: 'one.example', partition: at('one.example'), value: '{"domain":"one.example","type":"opened"}' },
        { key: 'one.example', partition: at('one.example'), value: '{"domain":"one.example","type":"delivered"}' },
      ],
    });
    await producer.disconnect();
    const expected: Tally = new Map([
      ['one.example', { delivered: 1, bounced: 1 }],
      ['two.example', { delivered: 10, bounced: 1 }],
    ]);
    expect(await until(() => readCounts(reader.url, expected.keys()), (c) => same(c, expected), 15_000)).toEqual(expected);
    const metricsUrl = JSON.parse(member.output().split('\n').find((line) => line.includes('"msg":"materializing"'))!).metrics;
    const rejected = () => fetch(metricsUrl).then((r) => r.text());
    expect(await until(rejected, (text) => text.includes('outcome="rejected"} 4\n'), 5_000)).toContain('svc_materialize_records_total{stage="count",outcome="rejected"} 4\n');
  }, 60_000);

  it('an Idempotency-Key is forgotten after its window: a later repeat counts again, and the key is deleted from the counts topic', async () => {
    const store = broker.storeUrl('window');
    expect((await runSvc(['setup', '--store', store, '--partitions', '1'])).code).toBe(0);
    const ingest = await startDaemon('serve-http', ['--store', store, '--idempotency-window', '1500ms']);
    const first = await startMaterializer(SVC_BIN, store, dir(), ['--session-timeout', '2s']);
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(ingest, first, reader);
    const put = (key: string) => fetch(`${ingest.url}/events/window.example.com/delivered`, { method: 'PUT', headers: { 'idempotency-key': key } });
    const delivered = () => getJson(`${reader.url}/domains/window.example.com`).then((r) => r.body.delivered as number);
    expect((await put('k')).status).toBe(204);
    expect((await put('k')).status).toBe(204);
    expect(await until(delivered, (n) => n === 1, 10_000)).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect((await put('k')).status).toBe(204);
    expect(await until(delivered, (n) => n === 2, 10_000)).toBe(2);
    // A member that restores the partition finds the key expired and deletes it with its next commit.
    await first.stop('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 1600));
    const second = await startMaterializer(SVC_BIN, store, dir(), ['--session-timeout', '2s']);
    daemons.push(second);
    expect((await fetch(`${ingest.url}/events/other.example.com/delivered`, { method: 'PUT' })).status).toBe(204);
    const kafka = new Kafka({ brokers: broker.brokers.split(','), logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: 'window-check', maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'window.counts', fromBeginning: true });
    const tombstone = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 20_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          if (message.key?.toString() === 'svc/key/k' && message.value === null) {
            clearTimeout(timer);
            resolve(true);
          }
        },
      });
    });
    await consumer.disconnect();
    expect(tombstone).toBe(true);
  }, 60_000);

  it('a repeat sent within the window counts once even when it is counted after the window: a materializer started late', async () => {
    const store = broker.storeUrl('late');
    expect((await runSvc(['setup', '--store', store, '--partitions', '1'])).code).toBe(0);
    const ingest = await startDaemon('serve-http', ['--store', store, '--idempotency-window', '1s']);
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(ingest, reader);
    const put = (key: string) => fetch(`${ingest.url}/events/late.example.com/delivered`, { method: 'PUT', headers: { 'idempotency-key': key } });
    expect((await put('k')).status).toBe(204);
    expect((await put('k')).status).toBe(204);
    // Counted only now, past the window of both: the repeat is still one, by when it was sent.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const member = await startMaterializer(SVC_BIN, store, dir(), ['--session-timeout', '2s']);
    daemons.push(member);
    const delivered = () => getJson(`${reader.url}/domains/late.example.com`).then((r) => r.body.delivered as number);
    expect(await until(delivered, (n) => n >= 1, 15_000)).toBe(1);
    // Sent after the window: a new request.
    expect((await put('k')).status).toBe(204);
    expect(await until(delivered, (n) => n >= 2, 10_000)).toBe(2);
    expect((await getJson(`${reader.url}/domains/late.example.com`)).body.delivered).toBe(2);
  }, 60_000);

  it('a serve-read started later restores every count from the compacted topic before it is ready (the first test\'s)', async () => {
    const store = broker.storeUrl('one');
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(reader);
    await until(() => getJson(`${reader.url}/readyz`).then((r) => r.status), (s) => s === 200, 10_000);
    expect((await getJson(`${reader.url}/domains/keyed.example.com`)).body).toEqual({
      domain: 'keyed.example.com',
      status: 'not catch-all',
      delivered: 0,
      bounced: 1,
    });
  });
});

describe.skipIf(!brokerBinary)('exactly once through kill -9 of a materializer, on three brokers', () => {
  let broker: KafkaBroker;
  const dirs: Array<{ remove(): void }> = [];
  const daemons: Array<Daemon | Materializer> = [];
  const dir = () => {
    const made = tempDir('svc-kafka.');
    dirs.push(made);
    return made.path;
  };
  beforeAll(async () => {
    broker = await startKafkaBroker(brokerBinary, { brokers: 3 });
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    await broker?.stop();
    for (const d of dirs) d.remove();
  });

  it('two members share the partitions; one killed mid-stream and another added: every acknowledged event counted once', async () => {
    const store = broker.storeUrl('three');
    expect((await runSvc(['setup', '--store', store, '--partitions', '6'])).code).toBe(0);
    const ingest = await startDaemon('serve-http', ['--store', store]);
    daemons.push(ingest);
    const member = (state = dir()) => startMaterializer(SVC_BIN, store, state, ['--session-timeout', '2s', '--transaction-timeout', '5s']);
    const a = await member();
    const b = await member();
    daemons.push(a, b);
    const reader = await startDaemon('serve-read', ['--store', store, '--state', dir(), '--cache-size', '0']);
    daemons.push(reader);

    const events = makeEvents(6000, 300, 5);
    const load = putEvents(ingest.url, events, 16);
    // Mid-stream: some events counted, most still to come.
    await until(() => readCounts(reader.url, ['d1.example.com']), (c) => c.get('d1.example.com')!.delivered > 0, 20_000);
    await a.stop('SIGKILL');
    const c = await member();
    daemons.push(c);
    const statuses = await load;
    expect(statuses.filter((s) => s !== 204)).toEqual([]);

    const expected = tally(events);
    const counted = await until(() => readCounts(reader.url, expected.keys()), (got) => same(got, expected), 40_000);
    expect(counted).toEqual(expected);
    // Nothing counted twice later either (a stale transaction, a late restore).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await readCounts(reader.url, expected.keys())).toEqual(expected);
    // The survivors took A's partitions over mid-stream: restored from the counts topic, not from zero.
    const restores = [b, c].flatMap((m) => m.output().split('\n')).filter((line) => line.includes('"msg":"partitions restored"'));
    expect(restores.some((line) => (JSON.parse(line).next as number[]).some((next) => next > 0))).toBe(true);
  }, 90_000);
});
