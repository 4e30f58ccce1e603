import { describe, expect, it } from 'vitest';
import { CounterEngine } from '../src/core/counter-engine.js';
import { OverloadedError, ShuttingDownError, StoreUnavailableError } from '../src/core/errors.js';
import { ControlledStore, tick } from './helpers/controlled-store.js';

function track(promise: Promise<void>) {
  const state = { settled: false, error: undefined as unknown };
  promise.then(
    () => (state.settled = true),
    (error) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

describe('CounterEngine', () => {
  it('does not acknowledge an event before its batch is committed', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store);
    const ack = track(engine.add('a.com', 'delivered'));
    await tick();
    expect(store.commits).toHaveLength(1);
    expect(ack.settled).toBe(false);
    store.commits[0]!.resolve();
    await tick();
    expect(ack).toEqual({ settled: true, error: undefined });
    expect(store.counts.get('a.com')).toEqual({ delivered: 1, bounced: 0 });
  });

  it('aggregates events of one tick per domain into one batch', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store);
    for (let i = 0; i < 5; i++) void engine.add('a.com', 'delivered');
    void engine.add('a.com', 'bounced');
    void engine.add('b.com', 'delivered');
    await tick();
    expect(store.commits).toHaveLength(1);
    expect(Object.fromEntries(store.commits[0]!.deltas)).toEqual({
      'a.com': { delivered: 5, bounced: 1 },
      'b.com': { delivered: 1, bounced: 0 },
    });
  });

  it('fails exactly the requests of a failed batch', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store);
    const first = track(engine.add('a.com', 'delivered'));
    await tick();
    const second = track(engine.add('b.com', 'delivered'));
    await tick();
    store.commits[0]!.reject(new Error('disk on fire'));
    await tick();
    expect(first.error).toBeInstanceOf(StoreUnavailableError);
    expect(second.settled).toBe(false);
    expect(store.commits).toHaveLength(2);
    store.commits[1]!.resolve();
    await tick();
    expect(second).toEqual({ settled: true, error: undefined });
    expect(store.counts.has('a.com')).toBe(false);
    expect(engine.stats.pendingEvents).toBe(0);
  });

  it('grows the next batch while a commit is in flight', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store);
    void engine.add('first.com', 'delivered');
    await tick();
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 100; i++) void engine.add(`d${round}-${i}.com`, 'delivered');
      await tick();
    }
    // One commit in flight, everything else gathered into one waiting batch.
    expect(store.commits).toHaveLength(1);
    store.commits[0]!.resolve();
    await tick();
    expect(store.commits).toHaveLength(2);
    expect(store.commits[1]!.deltas.size).toBe(1000);
  });

  it('seals a batch at --max-batch distinct domains but keeps one request together', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store, { maxBatch: 3, maxInFlight: 10 });
    for (const d of ['a', 'b', 'c', 'd', 'e']) void engine.add(`${d}.com`, 'delivered');
    void engine.addAll([
      { domain: 'x.com', type: 'delivered' },
      { domain: 'y.com', type: 'bounced' },
    ]);
    await tick();
    expect(store.commits.map((c) => [...c.deltas.keys()])).toEqual([['a.com', 'b.com', 'c.com'], ['d.com', 'e.com'], ['x.com', 'y.com']]);
  });

  it('answers overloaded past --max-pending and recovers once commits drain', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store, { maxPending: 3 });
    for (let i = 0; i < 3; i++) void engine.add(`d${i}.com`, 'delivered');
    expect(() => engine.add('late.com', 'delivered')).toThrow(OverloadedError);
    await tick();
    store.commits[0]!.resolve();
    await tick();
    expect(() => engine.add('late.com', 'delivered')).not.toThrow();
  });

  it('waits --flush-ms before committing an idle batch', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store, { flushMs: 50 });
    void engine.add('a.com', 'delivered');
    await tick();
    expect(store.commits).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(store.commits).toHaveLength(1);
  });

  it('under load, begins commits no closer together than --commit-interval; an idle engine commits at once', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store, { commitIntervalMs: 60 });
    void engine.add('a.com', 'delivered');
    await tick();
    expect(store.commits).toHaveLength(1);
    void engine.add('b.com', 'delivered');
    store.commits[0]!.resolve();
    await tick();
    void engine.add('c.com', 'delivered');
    await tick();
    // The first commit is done and the next batch is ready, but the interval has not passed.
    expect(store.commits).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(store.commits).toHaveLength(2);
    expect([...store.commits[1]!.deltas.keys()]).toEqual(['b.com', 'c.com']);
  });

  it('commits a full batch without waiting for --commit-interval', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store, { commitIntervalMs: 10_000, maxBatch: 2 });
    void engine.add('a.com', 'delivered');
    await tick();
    store.commits[0]!.resolve();
    await tick();
    void engine.add('b.com', 'delivered');
    void engine.add('c.com', 'delivered');
    await tick();
    expect(store.commits).toHaveLength(2);
  });

  it('commits what is pending on close and then refuses new events', async () => {
    const store = new ControlledStore();
    const engine = new CounterEngine(store, { flushMs: 10_000 });
    const ack = track(engine.add('a.com', 'delivered'));
    const closed = engine.close();
    await tick();
    expect(() => engine.add('b.com', 'delivered')).toThrow(ShuttingDownError);
    store.commits[0]!.resolve();
    await closed;
    expect(ack).toEqual({ settled: true, error: undefined });
  });
});

describe('CounterEngine with keyedAlone (stores that dedupe where the counts are made: Kafka)', () => {
  it('gives each keyed request a batch of its own, and leaves the others batched together', async () => {
    const batches: Array<{ domains: string[]; keys: string[] }> = [];
    const store = {
      applyBatch: async (deltas: ReadonlyMap<string, unknown>, extras?: { keys?: Array<{ key: string }> }) => {
        batches.push({ domains: [...deltas.keys()].sort(), keys: (extras?.keys ?? []).map((k) => k.key) });
      },
    } as unknown as ConstructorParameters<typeof CounterEngine>[0];
    const engine = new CounterEngine(store, { keyedAlone: true, maxInFlight: 4 });
    const key = (name: string) => ({ key: name, fingerprint: 'f', claimedAt: 0, expiresAt: 1, status: 204, body: '' });
    const acks = [
      engine.add('a.com', 'delivered'),
      engine.addAll([{ domain: 'k1.com', type: 'delivered' }, { domain: 'b.com', type: 'bounced' }], key('one')),
      engine.add('c.com', 'delivered'),
      engine.add('k2.com', 'bounced', key('two')),
      engine.add('d.com', 'delivered'),
    ];
    await Promise.all(acks);
    expect(batches.filter((b) => b.keys.length > 0)).toEqual([
      { domains: ['b.com', 'k1.com'], keys: ['one'] },
      { domains: ['k2.com'], keys: ['two'] },
    ]);
    const unkeyed = batches.filter((b) => b.keys.length === 0).flatMap((b) => b.domains).sort();
    expect(unkeyed).toEqual(['a.com', 'c.com', 'd.com']);
  });
});
