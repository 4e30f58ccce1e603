import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants, connect } from 'node:http2';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { hasGo, startFerretDb } from './helpers/ferretdb.js';
import { grpcurl, grpcurlBinary } from './helpers/grpcurl.js';
import { parsePrometheus } from './helpers/prometheus.js';
import { logLines, runSvc, startDaemon, storedCounts, tempDir, type Daemon } from './helpers/svc.js';

// The client is built from the proto file at test time, as any generated client would be: nothing
// here knows the message layout but proto/svc/v1/ingest.proto.
const PROTO = new URL('../proto/svc/v1/ingest.proto', import.meta.url).pathname;
const definition = protoLoader.loadSync(PROTO, { keepCase: true, enums: String, longs: Number, defaults: true });
const svc = (grpc.loadPackageDefinition(definition) as any).svc.v1;
const require = createRequire(import.meta.url);

interface Ack {
  batch: number;
  accepted: number;
  rejected: number;
  rejections: { index: number; reason: string }[];
  replayed: boolean;
}
type Event = { domain: string; type: string };
const delivered = (domain: string): Event => ({ domain, type: 'EVENT_TYPE_DELIVERED' });
const bounced = (domain: string): Event => ({ domain, type: 'EVENT_TYPE_BOUNCED' });

/** `ownConnection`: not shared with other clients (grpc-js shares one per target by default). */
function clients(target: string, token?: string, ownConnection = false) {
  const credentials = grpc.credentials.createInsecure();
  const channelOptions = ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {};
  const ingest = new svc.Ingest(target, credentials, channelOptions);
  const status = new svc.Status(target, credentials, channelOptions);
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  const unary = <T>(client: any, method: string, request: unknown) =>
    new Promise<T>((resolve, reject) => client[method](request, metadata, (error: grpc.ServiceError | null, reply: T) => (error ? reject(error) : resolve(reply))));
  return {
    publishOne: (events: Event[], idempotency_key?: string) => unary<Ack>(ingest, 'PublishOne', { events, idempotency_key }),
    get: (domain: string) => unary<{ domain: string; status: string; delivered: number; bounced: number }>(status, 'Get', { domain }),
    /** Sends the batches on one Publish stream, then resolves with every ack, or rejects with the stream's status. */
    publish: (batches: (Event[] | { events: Event[]; idempotency_key: string })[]) =>
      new Promise<Ack[]>((resolve, reject) => {
        const call = ingest.Publish(metadata);
        const acks: Ack[] = [];
        call.on('data', (ack: Ack) => acks.push(ack));
        call.on('error', (error: grpc.ServiceError) => reject(Object.assign(error, { acks })));
        call.on('end', () => resolve(acks));
        for (const batch of batches) call.write(Array.isArray(batch) ? { events: batch } : batch);
        call.end();
      }),
    close: () => {
      ingest.close();
      status.close();
    },
  };
}

describe('svc serve-grpc', () => {
  const dir = tempDir();
  let daemon: Daemon;
  let client: ReturnType<typeof clients>;

  beforeAll(async () => {
    daemon = await startDaemon('serve-grpc', ['--store', dir.path, '--metrics-port', '0']);
    client = clients(daemon.url);
  });
  afterAll(async () => {
    client?.close();
    expect(await daemon?.stop()).toBe(0);
    dir.remove();
  });

  it('acks every batch of a stream once, in order, and counts exactly', async () => {
    const batches = Array.from({ length: 200 }, (_, i) => [delivered(`s${i % 7}.example`), bounced(i % 50 === 0 ? `S${i % 7}.Example.` : `t${i % 3}.example`)]);
    const acks = await client.publish(batches);
    expect(acks.map((ack) => ack.batch)).toEqual(batches.map((_, i) => i + 1));
    expect(acks.every((ack) => ack.accepted === 2 && ack.rejected === 0)).toBe(true);
    const s3 = await client.get('S3.EXAMPLE');
    // s3 gets a delivery from every i with i % 7 === 3 (29 of them) and the bounces of i = 150 (150 % 7 = 3).
    expect(s3).toEqual({ domain: 's3.example', status: 'not catch-all', delivered: 29, bounced: 1 });
    const counted = await client.get('t1.example');
    expect(counted.bounced).toBe(batches.filter((_, i) => i % 50 !== 0 && i % 3 === 1).length);
  });

  it('rejects invalid events of a batch in its ack, and a batch with no valid event with INVALID_ARGUMENT', async () => {
    const ack = await client.publishOne([delivered('ok.example'), delivered('bad..example'), { domain: 'x.example', type: 'EVENT_TYPE_UNSPECIFIED' }, bounced('ok.example')]);
    expect(ack).toMatchObject({ batch: 1, accepted: 2, rejected: 2 });
    expect(ack.rejections.map((r) => r.index)).toEqual([1, 2]);
    expect(ack.rejections[0]!.reason).toContain('empty label');
    expect(ack.rejections[1]!.reason).toContain('unknown event type');
    expect(await client.get('ok.example')).toMatchObject({ delivered: 1, bounced: 1 });

    await expect(client.publishOne([delivered('-bad.example')])).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(client.publishOne([])).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'the batch holds no events' });
    await expect(client.get('not a domain')).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    // On a stream, the batch with no valid event ends it after the acks of the batches before.
    const stream = client.publish([[delivered('before.example')], [delivered('..')], [delivered('after.example')]]);
    const error = await stream.then(() => undefined, (e) => e);
    expect(error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, acks: [expect.objectContaining({ batch: 1, accepted: 1 })] });
  });

  it('holds back a stream whose client does not read its acks, then acks every batch once it reads', async () => {
    const ingest = new svc.Ingest(daemon.url, grpc.credentials.createInsecure());
    const call = ingest.Publish(new grpc.Metadata());
    const acks: Ack[] = [];
    call.on('data', (ack: Ack) => acks.push(ack));
    call.pause();
    for (let i = 0; i < 5000; i++) call.write({ events: [delivered(`slow${i % 10}.example`)] });
    call.end();
    // Unread acks fill the transport's windows; the server then stops reading the stream.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const ended = new Promise((resolve, reject) => call.on('end', resolve).on('error', reject));
    call.resume();
    await ended;
    ingest.close();
    expect(acks.map((ack) => ack.batch)).toEqual(Array.from({ length: 5000 }, (_, i) => i + 1));
    expect(await client.get('slow3.example')).toMatchObject({ delivered: 500 });
  });

  it('answers a malformed message with an error status and keeps serving', async () => {
    const raw = new grpc.Client(daemon.url, grpc.credentials.createInsecure());
    // Field 1 (events), length-delimited, claiming 127 bytes that never come.
    const garbage = Buffer.from([0x0a, 0x7f, 0x01, 0x02]);
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest('/svc.v1.Ingest/PublishOne', (b: Buffer) => b, (b: Buffer) => b, garbage, (e) => resolve(e!)),
    );
    raw.close();
    expect([grpc.status.INTERNAL, grpc.status.INVALID_ARGUMENT]).toContain(error.code);
    expect(await client.publishOne([delivered('after-garbage.example')])).toMatchObject({ accepted: 1 });
  });

  it('answers an unknown method and a compressed message with UNIMPLEMENTED, and outlives a cancelled stream', async () => {
    const raw = new grpc.Client(daemon.url, grpc.credentials.createInsecure());
    const unknown = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest('/svc.v1.Ingest/Nope', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => resolve(e!)),
    );
    raw.close();
    expect(unknown.code).toBe(grpc.status.UNIMPLEMENTED);

    const gzip = new svc.Ingest(daemon.url, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2, 'grpc.use_local_subchannel_pool': 1 });
    const compressed = await new Promise<grpc.ServiceError | null>((resolve) => gzip.PublishOne({ events: [delivered('gzip.example')] }, (e: grpc.ServiceError | null) => resolve(e)));
    gzip.close();
    expect(compressed?.code).toBe(grpc.status.UNIMPLEMENTED);

    const ingest = new svc.Ingest(daemon.url, grpc.credentials.createInsecure());
    const call = ingest.Publish(new grpc.Metadata());
    const cancelled = new Promise((resolve) => call.on('error', resolve));
    call.on('data', () => call.cancel());
    for (let i = 0; i < 100; i++) call.write({ events: [delivered('cancel.example')] });
    expect(await cancelled).toMatchObject({ code: grpc.status.CANCELLED });
    ingest.close();
    expect(await client.publishOne([delivered('after-cancel.example')])).toMatchObject({ accepted: 1 });
  });

  it('outlives clients that reset their calls half-way, and takes a message that arrives in many pieces', async () => {
    // Raw HTTP/2: calls whose client resets them (NO_ERROR) before it has sent its whole request.
    const session = connect(`http://${daemon.url}`);
    const reset = (path: string, body: Buffer) =>
      new Promise<void>((resolve) => {
        const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
        stream.on('error', () => {}).on('close', resolve).resume();
        stream.write(body, () => setTimeout(() => stream.close(constants.NGHTTP2_NO_ERROR), 20));
      });
    await reset('/svc.v1.Ingest/PublishOne', Buffer.alloc(0));
    await reset('/grpc.health.v1.Health/Check', Buffer.from([0, 0, 0, 0, 0]));
    await reset('/svc.v1.Ingest/Publish', Buffer.alloc(0));
    session.close();
    // 40,000 events: a message of about a megabyte, in many DATA frames.
    const large = Array.from({ length: 40_000 }, (_, i) => delivered(`piece${i % 100}.example`));
    expect(await client.publishOne(large)).toMatchObject({ accepted: 40_000 });
    expect(await client.get('piece7.example')).toMatchObject({ delivered: 400 });
    // A status message is percent-encoded only where the protocol asks (here: nowhere).
    await expect(client.publishOne([delivered('a..example')])).rejects.toMatchObject({ details: expect.stringMatching(/^no valid events: /) });
  });

  it('answers the standard health service and server reflection', async () => {
    const health = protoLoader.loadSync(require.resolve('grpc-health-check/proto/health/v1/health.proto'), { keepCase: true, enums: String });
    const Health = (grpc.loadPackageDefinition(health) as any).grpc.health.v1.Health;
    const checker = new Health(daemon.url, grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise((resolve, reject) => checker.Check({ service }, (error: Error | null, reply: unknown) => (error ? reject(error) : resolve(reply))));
    expect(await check('')).toEqual({ status: 'SERVING' });
    expect(await check('svc.v1.Ingest')).toEqual({ status: 'SERVING' });
    const watch = checker.Watch({ service: 'svc.v1.Status' }).on('error', () => {});
    expect(await new Promise((resolve) => watch.once('data', resolve))).toEqual({ status: 'SERVING' });
    watch.cancel();
    checker.close();

    const reflection = protoLoader.loadSync(require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto'), { keepCase: true });
    const Reflection = (grpc.loadPackageDefinition(reflection) as any).grpc.reflection.v1alpha.ServerReflection;
    const reflector = new Reflection(daemon.url, grpc.credentials.createInsecure());
    const services = await new Promise<string[]>((resolve, reject) => {
      const call = reflector.ServerReflectionInfo();
      call.on('data', (reply: any) => {
        resolve(reply.list_services_response.service.map((s: { name: string }) => s.name));
        call.end();
      });
      call.on('error', reject);
      call.write({ list_services: '' });
    });
    reflector.close();
    expect(services).toEqual(expect.arrayContaining(['svc.v1.Ingest', 'svc.v1.Status', 'grpc.health.v1.Health']));
  });

  describe('through grpcurl and server reflection', () => {
    let binary = '';
    // The first build compiles grpcurl from the Go module proxy: a minute or two.
    beforeAll(async () => {
      if (process.env.CI || (await hasGo())) binary = await grpcurlBinary();
      else console.warn('\n*** no Go: the grpcurl tests are skipped\n');
    }, 600_000);

    it('lists and describes every service, and calls health Check and List and Ingest by name', async (context) => {
      if (!binary) return context.skip();
      // grpcurl [flags] address [verb or method] [symbol]
      const call = (command: string[], data?: unknown) => grpcurl(binary, [...(data ? ['-d', JSON.stringify(data)] : []), daemon.url, ...command]);
      const services = (await call(['list'])).trim().split('\n');
      expect(services).toEqual(expect.arrayContaining(['grpc.health.v1.Health', 'svc.v1.Ingest', 'svc.v1.Status']));
      for (const service of services) expect(await call(['describe', service])).toContain(`${service} is a service:`);
      // The map field whose descriptor grpcurl once refused, with the whole health service.
      expect(await call(['describe', 'grpc.health.v1.HealthListResponse'])).toContain('map<string, .grpc.health.v1.HealthCheckResponse> statuses = 1;');
      expect(JSON.parse(await call(['grpc.health.v1.Health/Check']))).toEqual({ status: 'SERVING' });
      expect(JSON.parse(await call(['grpc.health.v1.Health/Check'], { service: 'svc.v1.Ingest' }))).toEqual({ status: 'SERVING' });
      expect(JSON.parse(await call(['grpc.health.v1.Health/List']))).toEqual({
        statuses: { '': { status: 'SERVING' }, 'svc.v1.Ingest': { status: 'SERVING' }, 'svc.v1.Status': { status: 'SERVING' } },
      });

      const batch = { events: [delivered('grpcurl.example'), bounced('grpcurl.example'), delivered('a..example')] };
      expect(JSON.parse(await call(['svc.v1.Ingest/PublishOne'], batch))).toEqual({
        batch: '1',
        accepted: 2,
        rejected: 1,
        rejections: [{ index: 2, reason: 'domain has an empty label' }],
      });
      expect(JSON.parse(await call(['svc.v1.Status/Get'], { domain: 'GRPCURL.example' }))).toEqual({
        domain: 'grpcurl.example',
        status: 'not catch-all',
        delivered: '1',
        bounced: '1',
      });
    }, 90_000);
  });

  it('answers svc status --grpc like svc status --url', async () => {
    await client.publishOne([bounced('cli.example'), delivered('cli.example')]);
    const result = await runSvc(['status', '--grpc', daemon.url, 'CLI.example', 'never.example', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split('\n').map((line) => JSON.parse(line))).toEqual([
      { domain: 'cli.example', status: 'not catch-all', delivered: 1, bounced: 1 },
      { domain: 'never.example', status: 'unknown', delivered: 0, bounced: 0 },
    ]);
    const unreachable = await runSvc(['status', '--grpc', '127.0.0.1:9', 'a.example']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('UNAVAILABLE');
  });

  it('is driven by svc loadtest --protocol grpc, unary and streamed, with --verify', async () => {
    const report = join(dir.path, 'grpc-loadtest.json');
    const unary = await runSvc([
      ...['loadtest', '--protocol', 'grpc', '--target', daemon.url, '--rps', '300', '--duration', '1s'],
      ...['--domains', '300', '--seed', '41', '--verify', '--json', report],
    ]);
    expect(unary.code, unary.stdout + unary.stderr).toBe(0);
    const first = JSON.parse(readFileSync(report, 'utf8'));
    expect(first.statusCodes).toEqual({ '200': 300 });
    expect(first.verify).toMatchObject({ acknowledged: 300, lost: 0, extra: 0, unreadable: 0 });

    const streamed = await runSvc([
      ...['loadtest', '--protocol', 'grpc', '--target', `grpc://${daemon.url}`, '--mode', 'stream', '--batch-size', '50'],
      ...['--connections', '3', '--rps', '100', '--duration', '1s', '--domains', '3000', '--seed', '42', '--read-ratio', '0.2', '--verify', '--json', report],
    ]);
    expect(streamed.code, streamed.stdout + streamed.stderr).toBe(0);
    const second = JSON.parse(readFileSync(report, 'utf8'));
    expect(second).toMatchObject({ protocol: 'grpc', mode: 'stream', batchSize: 50, idempotencyKeys: false, maxRetries: 0 });
    expect(second.reads).toBeGreaterThan(0);
    expect(second.verify).toMatchObject({ acknowledged: second.events.acknowledged, lost: 0, extra: 0, unreadable: 0 });
    expect(second.events.acknowledged).toBe((100 - second.reads) * 50);

    for (const args of [['--mode', 'stream', '--target', 'http://127.0.0.1:1'], ['--protocol', 'grpc', '--target', 'http://127.0.0.1:8082'], ['--protocol', 'smoke']]) {
      expect((await runSvc(['loadtest', ...args])).code, args.join(' ')).toBe(2);
    }
  }, 90_000);

  it('serves /metrics on --metrics-port with the same metric names as serve-http', async () => {
    const url = logLines(daemon).find((line) => line.msg === 'listening')!.metrics as string;
    const text = await (await fetch(url)).text();
    expect(text).toMatch(/^svc_events_accepted_total\{type="delivered"\} [1-9]/m);
    expect(text).toMatch(/^svc_events_rejected_total\{reason="invalid_domain"\} [1-9]/m);
    const httpDir = tempDir();
    const http = await startDaemon('serve-http', ['--store', httpDir.path]);
    try {
      const httpText = await (await fetch(`${http.url}/metrics`)).text();
      // Every family by name and type (counter, gauge, histogram), declared by both or missing from one.
      const families = (exposition: string) => new Map([...parsePrometheus(exposition).types].sort(([a], [b]) => a.localeCompare(b)));
      const grpcFamilies = families(text);
      expect(grpcFamilies.size).toBeGreaterThan(20);
      expect(grpcFamilies).toEqual(families(httpText));
    } finally {
      await http.stop();
      httpDir.remove();
    }
  }, 60_000);
});

describe('svc serve-grpc with tokens, limits and signals', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('refuses calls without the token with UNAUTHENTICATED, and takes them with it', async () => {
    const daemon = await startDaemon('serve-grpc', ['--store', join(dir.path, 'auth')], { SVC_INGEST_TOKEN: 'in-7d1', SVC_READ_TOKEN: 'rd-2c9' });
    const anonymous = clients(daemon.url);
    const wrong = clients(daemon.url, 'rd-2c9');
    const ingest = clients(daemon.url, 'in-7d1');
    const reader = clients(daemon.url, 'rd-2c9');
    try {
      await expect(anonymous.publishOne([delivered('a.example')])).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      await expect(wrong.publish([[delivered('a.example')]])).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      await expect(ingest.get('a.example')).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      expect(await ingest.publishOne([delivered('a.example')])).toMatchObject({ accepted: 1 });
      expect(await reader.get('a.example')).toMatchObject({ delivered: 1 });
      const refused = await runSvc(['status', '--grpc', daemon.url, 'a.example']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('UNAUTHENTICATED');
      const status = await runSvc(['status', '--grpc', daemon.url, 'a.example', '--json'], { env: { SVC_READ_TOKEN: 'rd-2c9' } });
      expect(JSON.parse(status.stdout)).toMatchObject({ domain: 'a.example', delivered: 1 });
    } finally {
      for (const c of [anonymous, wrong, ingest, reader]) c.close();
      expect(await daemon.stop()).toBe(0);
    }
    expect(daemon.output()).not.toMatch(/in-7d1|rd-2c9/);
  });

  it('answers RESOURCE_EXHAUSTED past --max-pending and for a message over --max-message-bytes', async () => {
    const daemon = await startDaemon('serve-grpc', ['--store', join(dir.path, 'limits'), '--max-pending', '2', '--flush-ms', '1s', '--max-message-bytes', '2000']);
    const client = clients(daemon.url);
    try {
      const first = client.publishOne([delivered('p1.example'), delivered('p2.example')]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await expect(client.publishOne([delivered('p3.example')])).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
      expect(await first).toMatchObject({ accepted: 2 });
      const giant = Array.from({ length: 100 }, (_, i) => delivered(`giant${i}.example`));
      await expect(client.publishOne(giant)).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    } finally {
      client.close();
      expect(await daemon.stop()).toBe(0);
    }
    const counts = await storedCounts(join(dir.path, 'limits'), ['p1.example', 'p3.example', 'giant0.example']);
    expect(Object.fromEntries(counts)).toEqual({
      'p1.example': { delivered: 1, bounced: 0 },
      'p3.example': { delivered: 0, bounced: 0 },
      'giant0.example': { delivered: 0, bounced: 0 },
    });
  });

  it('loses nothing acknowledged when killed with SIGKILL in the middle of a stream', async () => {
    const store = join(dir.path, 'killed');
    const daemon = await startDaemon('serve-grpc', ['--store', store]);
    const ingest = new svc.Ingest(daemon.url, grpc.credentials.createInsecure());
    const sent = new Map<string, number>();
    const acked = new Map<string, number>();
    const batches = Array.from({ length: 3000 }, (_, i) => [delivered(`k${i % 40}.example`), delivered(`k${(i * 7) % 40}.example`)]);
    try {
      const call = ingest.Publish(new grpc.Metadata());
      const done = new Promise((resolve) => call.on('error', resolve).on('end', resolve));
      call.on('data', (ack: Ack) => {
        for (const event of batches[ack.batch - 1]!) acked.set(event.domain, (acked.get(event.domain) ?? 0) + 1);
        if (ack.batch === 500) void daemon.stop('SIGKILL');
      });
      for (const events of batches) {
        for (const event of events) sent.set(event.domain, (sent.get(event.domain) ?? 0) + 1);
        call.write({ events });
      }
      call.end();
      await done;
    } finally {
      ingest.close();
      await daemon.stop('SIGKILL');
    }
    expect(acked.size).toBeGreaterThan(0);
    const counted = await storedCounts(store, [...sent.keys()]);
    for (const [domain, total] of sent) {
      const { delivered: n } = counted.get(domain)!;
      expect(n, domain).toBeGreaterThanOrEqual(acked.get(domain) ?? 0);
      expect(n, domain).toBeLessThanOrEqual(total);
    }
  });

  it('on SIGTERM acks the batches in flight, ends open streams with UNAVAILABLE, commits and exits 0', async () => {
    const store = join(dir.path, 'drain');
    const daemon = await startDaemon('serve-grpc', ['--store', store, '--flush-ms', '1s']);
    const client = clients(daemon.url);
    try {
      const metadata = new grpc.Metadata();
      const call = new svc.Ingest(daemon.url, grpc.credentials.createInsecure()).Publish(metadata);
      const acks: Ack[] = [];
      call.on('data', (ack: Ack) => acks.push(ack));
      const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      call.write({ events: [bounced('drain.example')] });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const stopped = daemon.stop('SIGTERM');
      const status = await ended;
      expect(status).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'server is shutting down' });
      expect(acks).toEqual([expect.objectContaining({ batch: 1, accepted: 1 })]);
      expect(await stopped).toBe(0);
    } finally {
      client.close();
      await daemon.stop('SIGKILL');
    }
    expect((await storedCounts(store, ['drain.example'])).get('drain.example')).toEqual({ delivered: 0, bounced: 1 });
  });
});

describe('svc serve-grpc --workers', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('shares the port among worker processes, counts every batch once, and serves the metrics of them all', async () => {
    const daemon = await startDaemon('serve-grpc', ['--store', dir.path, '--workers', '2', '--metrics-port', '0']);
    const listening = logLines(daemon).find((line) => line.msg === 'listening')!;
    expect(listening).toMatchObject({ workers: 2, metrics: expect.stringMatching(/^http:/) });
    // Connections of their own, so that node:cluster hands them to both workers.
    const producers = Array.from({ length: 6 }, () => clients(daemon.url, undefined, true));
    try {
      const batches = Array.from({ length: 50 }, (_, i) => [delivered(`w${i % 5}.example`), bounced(`w${i % 5}.example`)]);
      const acks = await Promise.all(producers.map((client) => client.publish(batches)));
      expect(acks.flat()).toHaveLength(300);
      expect(logLines(daemon).filter((line) => line.msg === 'worker listening')).toHaveLength(2);
      // A worker reads what the other journaled within --max-read-lag.
      let counts: { delivered: number; bounced: number } | undefined;
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 100))) {
        counts = await producers[0]!.get('w3.example');
        if (counts.delivered === 60) break;
      }
      expect(counts).toMatchObject({ delivered: 60, bounced: 60 });
      const text = await (await fetch(listening.metrics as string)).text();
      const accepted = [...text.matchAll(/^svc_events_accepted_total\{type="\w+"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
      expect(accepted).toBe(600);
    } finally {
      for (const client of producers) client.close();
      expect(await daemon.stop()).toBe(0);
    }
  });
});

describe('svc serve-grpc idempotency keys', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('counts a batch sent again with its idempotency_key once, and answers it with the first Ack, across a restart', async () => {
    const store = join(dir.path, 'keys');
    // Slow commits, so that a repeat sent at once finds the first still in flight.
    let daemon = await startDaemon('serve-grpc', ['--store', store, '--flush-ms', '300ms']);
    let client = clients(daemon.url);
    try {
      const batch = [delivered('key.example'), delivered('..'), bounced('key2.example')];
      // A repeat sent while the first is being committed in the same process waits for it.
      const [first, racing] = await Promise.all([client.publishOne(batch, 'order-1'), client.publishOne(batch, 'order-1')]);
      expect(first).toMatchObject({ batch: 1, accepted: 2, rejected: 1, replayed: false });
      expect(racing).toEqual({ ...first, replayed: true });
      const again = await client.publishOne(batch, 'order-1');
      expect(again).toEqual({ ...first, replayed: true });
      // The same key with other events is the client's mistake; a bad key is an invalid argument.
      await expect(client.publishOne([delivered('key.example')], 'order-1')).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
      await expect(client.publishOne(batch, 'x'.repeat(256))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('idempotency_key') });
      await expect(client.publishOne(batch, 'caf\u00e9')).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
      // On a stream: a key used before, or just before on the same stream, is acked as replayed,
      // in its place, and not counted.
      const earlier = await client.publish([
        { events: [delivered('key.example')], idempotency_key: 'stream-1' },
        [delivered('key.example')],
        { events: [delivered('key.example')], idempotency_key: 'stream-1' },
      ]);
      expect(earlier.map((ack) => [ack.batch, ack.replayed])).toEqual([[1, false], [2, false], [3, true]]);
      const acks = await client.publish([
        { events: batch, idempotency_key: 'order-1' },
        { events: [delivered('key.example')], idempotency_key: 'stream-1' },
        { events: [delivered('key.example')], idempotency_key: 'stream-2' },
      ]);
      expect(acks.map((ack) => [ack.batch, ack.replayed])).toEqual([[1, true], [2, true], [3, false]]);
      expect(await client.get('key.example')).toMatchObject({ delivered: 4 });

      // Keys are in the store: a daemon killed and started again still knows them.
      client.close();
      await daemon.stop('SIGKILL');
      daemon = await startDaemon('serve-grpc', ['--store', store]);
      client = clients(daemon.url);
      expect(await client.publishOne(batch, 'order-1')).toMatchObject({ accepted: 2, rejected: 1, replayed: true });
      expect(await client.publishOne([delivered('key.example')], 'stream-2')).toMatchObject({ accepted: 1, replayed: true });
      expect(await client.get('key.example')).toMatchObject({ delivered: 4 });
      expect(await client.get('key2.example')).toMatchObject({ bounced: 1 });
    } finally {
      client.close();
      expect(await daemon.stop()).toBe(0);
    }
  });

  it('answers ABORTED while another process commits the key, and FAILED_PRECONDITION for a key used over HTTP', async () => {
    const store = join(dir.path, 'shared');
    // The first process commits slowly, so that the second finds the key claimed and not done.
    const slow = await startDaemon('serve-grpc', ['--store', store, '--flush-ms', '1s']);
    const other = await startDaemon('serve-grpc', ['--store', store]);
    const httpDaemon = await startDaemon('serve-http', ['--store', store]);
    const [first, second] = [clients(slow.url), clients(other.url)];
    try {
      const batch = [delivered('shared.example')];
      const pending = first.publishOne(batch, 'shared-1');
      await new Promise((resolve) => setTimeout(resolve, 300));
      await expect(second.publishOne(batch, 'shared-1')).rejects.toMatchObject({ code: grpc.status.ABORTED });
      expect(await pending).toMatchObject({ accepted: 1, replayed: false });
      // The other process learns the key's answer from the first one's journal, within its read lag.
      let replay: Ack | undefined;
      for (const deadline = Date.now() + 5_000; !replay && Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 100))) {
        replay = await second.publishOne(batch, 'shared-1').catch((error: grpc.ServiceError) => {
          if (error.code !== grpc.status.ABORTED) throw error;
          return undefined;
        });
      }
      expect(replay).toMatchObject({ accepted: 1, replayed: true });

      const put = await fetch(`${httpDaemon.url}/events/both.example/delivered`, { method: 'PUT', headers: { 'idempotency-key': 'both-1' } });
      expect(put.status).toBe(204);
      await expect(second.publishOne([delivered('both.example')], 'both-1')).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        details: 'this idempotency_key was used for another batch (other events)',
      });
    } finally {
      first.close();
      second.close();
      for (const daemon of [slow, other, httpDaemon]) expect(await daemon.stop(), daemon.output()).toBe(0);
    }
  });
});

const ferretdbBinary = inject('ferretdbBinary');

describe.skipIf(!ferretdbBinary)('svc serve-grpc when MongoDB goes away (FerretDB stopped and restarted)', () => {
  it('answers UNAVAILABLE while the store is down, acknowledges nothing of those batches, and recovers', async () => {
    const server = await startFerretDb(ferretdbBinary);
    const store = `${server.uri}/svc`;
    const daemon = await startDaemon('serve-grpc', ['--store', store, '--store-timeout', '1s']);
    const client = clients(daemon.url);
    try {
      expect(await client.publishOne([delivered('outage.example')])).toMatchObject({ accepted: 1 });
      await server.stop(true);
      await expect(client.publishOne([delivered('outage.example')])).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      await server.restart();
      // The driver reconnects on its own; the first batch after that is acknowledged.
      let ack: Ack | undefined;
      for (const deadline = Date.now() + 20_000; !ack && Date.now() < deadline; ) {
        ack = await client.publishOne([bounced('outage.example')]).catch(() => undefined);
        if (!ack) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(ack).toMatchObject({ accepted: 1 });
      // The refused batch may or may not have landed (a write the store applied before failing):
      // at least the acknowledged events, at most every event sent.
      const counted = await client.get('outage.example');
      expect(counted.bounced).toBe(1);
      expect([1, 2]).toContain(counted.delivered);
    } finally {
      client.close();
      await daemon.stop();
      await server.destroy();
    }
  }, 60_000);
});
