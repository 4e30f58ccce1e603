import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeEvents, putEvents, tally } from './helpers/http.js';
import { emptyStore, logLines, runSvc, startDaemon, storedCounts, tempDir } from './helpers/svc.js';

/** Every command of `svc`, in the order --help lists them. */
const COMMANDS = ['serve-http', 'serve-read', 'serve-grpc', 'status', 'replay', 'setup', 'materialize', 'loadtest'];

describe('svc CLI', () => {
  it('lists every command in --help, and each has its own --help', async () => {
    const { code, stdout } = await runSvc(['--help']);
    expect(code).toBe(0);
    // The names that start the lines of the Commands section: a command added or dropped fails
    // this until the list (and docs/cli.md) says so.
    const listed = stdout
      .slice(stdout.indexOf('\nCommands:\n'))
      .split('\n')
      .map((line) => /^  ([a-z-]+)/.exec(line)?.[1])
      .filter((name) => name !== undefined);
    expect(listed).toEqual([...COMMANDS, 'help']);
    const helps = await Promise.all(COMMANDS.map((command) => runSvc([command, '--help'])));
    helps.forEach((help, i) => {
      expect(help.code, COMMANDS[i]).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: svc ${COMMANDS[i]}\\b`));
    });
  });

  it('documents each option with its environment variable', async () => {
    const stdout = (await runSvc(['serve-http', '--help'])).stdout.replace(/\s+/g, ' ');
    for (const env of ['SVC_PORT', 'SVC_HOST', 'SVC_STORE', 'SVC_WORKERS', 'SVC_MAX_BATCH', 'SVC_FLUSH_MS', 'SVC_MAX_PENDING', 'SVC_MAX_BODY', 'SVC_THRESHOLD']) {
      expect(stdout).toContain(`env: ${env}`);
    }
  });

  it('exits 2 on a usage error of every command, before opening anything', async () => {
    const dir = tempDir();
    try {
      const store = join(dir.path, 'store');
      const cases: [string[], RegExp][] = [
        [['no-such-command'], /unknown command/],
        ...COMMANDS.map((command): [string[], RegExp] => [[command, '--no-such-option'], /unknown option '--no-such-option'/]),
        // Out of range for every daemon, with a store that must not be created; not a number; negative.
        ...['serve-http', 'serve-read', 'serve-grpc'].map((command): [string[], RegExp] => [[command, '--store', store, '--port', '80000'], /--port/]),
        [['serve-http', '--store', store, '--port', 'eighty'], /--port/],
        [['serve-read', '--store', store, '--port', '-1'], /--port/],
        [['serve-grpc', '--store', store, '--port', '0', '--metrics-port', '70000'], /--metrics-port/],
        [['status', '--store', store], /missing required argument 'domain'/],
        [['status', 'a.example', '--store', store, '--threshold', 'many'], /--threshold/],
        [['replay', '--store', store], /missing required argument 'file'/],
        [['replay', 'x.ndjson', '--store', store, '--max-invalid', 'some'], /--max-invalid/],
        [['setup', '--store', store, '--store-timeout', 'soon'], /--store-timeout/],
        [['loadtest', '--rps', '0'], /--rps/],
        [['loadtest', '--duration', 'long'], /--duration/],
      ];
      // A command that starts instead of refusing is killed, and fails here with code null. The
      // bound is for a daemon that never exits, not a speed test: a loaded machine takes seconds.
      const results = await Promise.all(cases.map(([args]) => runSvc(args, { timeoutMs: 90_000 })));
      results.forEach((result, i) => {
        const [args, reason] = cases[i]!;
        expect({ args, code: result.code }).toEqual({ args, code: 2 });
        expect(result.stderr, args.join(' ')).toMatch(reason);
      });
      expect(existsSync(store)).toBe(false);
    } finally {
      dir.remove();
    }
  }, 120_000);

  it('reads options from SVC_* environment variables', async () => {
    const dir = await emptyStore();
    const daemon = await startDaemon('serve-read', [], { SVC_STORE: dir.path, SVC_THRESHOLD: '2' });
    try {
      const writer = await startDaemon('serve-http', ['--store', dir.path]);
      for (let i = 0; i < 3; i++) await fetch(`${writer.url}/events/env.example/delivered`, { method: 'PUT' });
      await writer.stop();
      const res = await fetch(`${daemon.url}/domains/env.example`);
      expect((await res.json()).status).toBe('catch-all');
    } finally {
      await daemon.stop();
      dir.remove();
    }
  });

  it('svc status: prints the valid domains, explains invalid ones and exits 2', async () => {
    const dir = await emptyStore();
    try {
      const result = await runSvc(['status', '--store', dir.path, 'ok.example', 'bad..example']);
      expect(result.code).toBe(2);
      expect(result.stdout).toMatch(/^ok\.example\s+unknown\s+delivered=0 bounced=0$/m);
      expect(result.stderr).toContain('"bad..example": domain has an empty label');
    } finally {
      dir.remove();
    }
  });

  it('svc status: exits 1 when the service cannot be reached', async () => {
    const result = await runSvc(['status', '--url', 'http://127.0.0.1:9', 'a.example']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('cannot reach the service');
  });

  it('svc status: answers hundreds of domains in one call, each with its own counts and status', async () => {
    const dir = tempDir();
    try {
      // Domain i: i % 4 deliveries, and a bounce when i % 7 is 0; with --threshold 2 that gives every
      // status, and domains never seen (0 and 0).
      const domains = Array.from({ length: 500 }, (_, i) => `many${i}.example`);
      const expected = domains.map((domain, i) => {
        const delivered = i % 4;
        const bounced = i % 7 === 0 ? 1 : 0;
        return { domain, status: bounced > 0 ? 'not catch-all' : delivered > 2 ? 'catch-all' : 'unknown', delivered, bounced };
      });
      const log = join(dir.path, 'events.ndjson');
      const lines = expected.flatMap(({ domain, delivered, bounced }) => [
        ...Array.from({ length: delivered }, () => JSON.stringify({ domain, type: 'delivered' })),
        ...Array.from({ length: bounced }, () => JSON.stringify({ domain, type: 'bounced' })),
      ]);
      writeFileSync(log, `${lines.join('\n')}\n`);
      const store = join(dir.path, 'store');
      const replay = await runSvc(['replay', log, '--store', store]);
      expect(replay.code, replay.stderr).toBe(0);

      const started = performance.now();
      // Asked in upper case: each answer is the normalised name's, in the order asked.
      const result = await runSvc(['status', '--store', store, '--threshold', '2', '--json', ...domains.map((domain) => domain.toUpperCase())]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.trim().split('\n').map((line) => JSON.parse(line))).toEqual(expected);
      // Not a speed test: a generous bound that only one request per domain in series would miss.
      expect(performance.now() - started).toBeLessThan(15_000);
    } finally {
      dir.remove();
    }
  });

  it('a daemon that cannot listen exits non-zero with a reason', async () => {
    const dir = tempDir();
    const first = await startDaemon('serve-http', ['--store', dir.path]);
    try {
      const port = new URL(first.url).port;
      const second = await runSvc(['serve-http', '--store', dir.path, '--port', port]);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain('EADDRINUSE');
      // The second one closed the store it had opened: its journal segment is gone with it.
      expect(await first.stop()).toBe(0);
      expect(readdirSync(join(dir.path, 'journal'))).toEqual([]);
    } finally {
      await first.stop();
      dir.remove();
    }
  });

  it('refuses a store URL whose scheme no store handles, creating nothing', async () => {
    const dir = tempDir();
    try {
      for (const url of ['rediss://127.0.0.1:6379', 'postgres://localhost/svc', 'mongodb+svr://typo.example/svc']) {
        for (const args of [['serve-http', '--store', url], ['status', 'a.example', '--store', url], ['replay', '-', '--store', url]]) {
          const result = await runSvc(args);
          expect(result.code, args.join(' ')).toBe(2);
          expect(result.stderr).toContain(`no store handles ${url.split('://')[0]}://`);
          expect(result.stderr).toContain('mongodb://, mongodb+srv://, kafka://, redis://, redis-cluster:// or a directory');
        }
        const bySetting = await runSvc(['status', 'a.example'], { env: { SVC_STORE: url } });
        expect(bySetting.code).toBe(2);
      }
      expect(existsSync('redis:') || existsSync('postgres:') || existsSync('mongodb+svr:')).toBe(false);
    } finally {
      dir.remove();
    }
  });

  it('reading commands refuse a store that does not exist, and create none', async () => {
    const dir = tempDir();
    try {
      const missing = join(dir.path, 'no', 'such', 'store');
      for (const args of [['status', 'a.example', '--store', missing], ['serve-read', '--port', '0', '--store', missing]]) {
        const result = await runSvc(args);
        expect(result.code, args[0]).toBe(2);
        expect(result.stderr).toContain(`no embedded store in ${missing} (serve-http, serve-grpc, replay or setup creates one)`);
      }
      expect(existsSync(join(dir.path, 'no'))).toBe(false);
      // An empty directory is no store either.
      const empty = await runSvc(['status', 'a.example', '--store', dir.path]);
      expect(empty.code).toBe(2);
      expect(readdirSync(dir.path)).toEqual([]);
    } finally {
      dir.remove();
    }
  });

  it('takes a --store directory whose name has a dot, and says which path is wrong and what to do', async () => {
    const dir = tempDir();
    try {
      // mktemp names its folders tmp.XXXXXXXXXX; lmdb-js takes a name with an extension for a file.
      const dotted = join(dir.path, 'counts.db');
      const daemon = await startDaemon('serve-http', ['--store', dotted]);
      expect((await fetch(`${daemon.url}/events/dot.example/bounced`, { method: 'PUT' })).status).toBe(204);
      expect(await daemon.stop()).toBe(0);
      const status = await runSvc(['status', 'dot.example', '--store', dotted]);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toMatch(/^dot\.example\s+not catch-all\s+delivered=0 bounced=1$/m);

      const file = join(dir.path, 'a-file.txt');
      writeFileSync(file, 'not a directory');
      const refused = await runSvc(['serve-http', '--store', file]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`cannot open the embedded store in ${file}`);
      expect(refused.stderr).toContain('--store must name a directory');
      const notRead = await runSvc(['status', 'dot.example', '--store', file]);
      expect(notRead.code).toBe(2);
      expect(notRead.stderr).toContain(`no embedded store in ${file}`);
    } finally {
      dir.remove();
    }
  });

  it('listens on 127.0.0.1 by default; --host and SVC_HOST choose another address', async () => {
    const dir = await emptyStore();
    // All of 127.0.0.0/8 is loopback on Linux: a socket bound to 127.0.0.1 refuses 127.0.0.2.
    const healthz = (host: string, port: string) => fetch(`http://${host}:${port}/healthz`).then((res) => res.status, () => 'refused');
    const daemons = await Promise.all([
      startDaemon('serve-read', ['--store', dir.path]),
      startDaemon('serve-read', ['--store', dir.path, '--host', '0.0.0.0']),
      startDaemon('serve-read', ['--store', dir.path], { SVC_HOST: '127.0.0.2' }),
    ]);
    try {
      const [byDefault, everywhere, byEnvironment] = daemons.map((daemon) => new URL(daemon.url).port);
      expect([await healthz('127.0.0.1', byDefault!), await healthz('127.0.0.2', byDefault!)]).toEqual([200, 'refused']);
      expect([await healthz('127.0.0.1', everywhere!), await healthz('127.0.0.2', everywhere!)]).toEqual([200, 200]);
      expect([await healthz('127.0.0.1', byEnvironment!), await healthz('127.0.0.2', byEnvironment!)]).toEqual(['refused', 200]);
    } finally {
      await Promise.all(daemons.map((daemon) => daemon.stop()));
      dir.remove();
    }
  });

  it('hands its options to the daemon: --fsync, --max-in-flight and durations in minutes, logged at debug level', async () => {
    const dir = tempDir();
    const args = ['--store', dir.path, '--fsync', '--max-in-flight', '3', '--request-timeout', '2m', '--shutdown-timeout', '1.5m', '--log-level', 'debug'];
    const daemon = await startDaemon('serve-http', args);
    try {
      const settings = logLines(daemon).find((line) => line.msg === 'settings');
      expect(settings).toMatchObject({ daemon: 'serve-http', fsync: true, maxInFlight: 3, requestTimeout: 120_000, shutdownTimeout: 90_000 });
      // Tokens nobody set are said to be unset, not left out.
      expect(settings).toMatchObject({ ingestToken: 'unset', readToken: 'unset' });
      // Several batches committed at once, each flushed to disk before its answer; then kill -9.
      const events = makeEvents(3000, 300, 17);
      expect(new Set(await putEvents(daemon.url, events, 48))).toEqual(new Set([204]));
      await daemon.stop('SIGKILL');
      const expected = tally(events);
      expect(await storedCounts(dir.path, [...expected.keys()])).toEqual(expected);
    } finally {
      await daemon.stop('SIGKILL');
      dir.remove();
    }
  });

  it('masks the password of a connection string in the settings it logs', async () => {
    // Nothing listens on port 9: a daemon starts without its store and says so.
    const daemon = await startDaemon('serve-read', ['--store', 'mongodb://reader:pa55-8d2f@127.0.0.1:9/svc', '--store-timeout', '1s', '--log-level', 'debug']);
    try {
      expect(logLines(daemon).find((line) => line.msg === 'settings')).toMatchObject({ store: 'mongodb://reader:***@127.0.0.1:9/svc' });
      expect(daemon.output()).not.toContain('pa55-8d2f');
    } finally {
      await daemon.stop();
    }
  });
});
