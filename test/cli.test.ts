import { describe, expect, it } from 'vitest';
import { runSvc, startDaemon, tempDir } from './helpers/svc.js';

describe('svc CLI', () => {
  it('lists every command in --help', async () => {
    const { code, stdout } = await runSvc(['--help']);
    expect(code).toBe(0);
    for (const command of ['serve-http', 'serve-read', 'status']) expect(stdout).toContain(command);
  });

  it('documents each option with its environment variable', async () => {
    const stdout = (await runSvc(['serve-http', '--help'])).stdout.replace(/\s+/g, ' ');
    for (const env of ['SVC_PORT', 'SVC_HOST', 'SVC_STORE', 'SVC_WORKERS', 'SVC_MAX_BATCH', 'SVC_FLUSH_MS', 'SVC_MAX_PENDING', 'SVC_MAX_BODY', 'SVC_THRESHOLD']) {
      expect(stdout).toContain(`env: ${env}`);
    }
  });

  it('exits 2 on a usage error', async () => {
    expect((await runSvc(['no-such-command'])).code).toBe(2);
    const badPort = await runSvc(['serve-http', '--port', 'eighty']);
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toContain('expected an integer');
  });

  it('reads options from SVC_* environment variables', async () => {
    const dir = tempDir();
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
    const dir = tempDir();
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

  it('svc status: answers hundreds of domains in one call', async () => {
    const dir = tempDir();
    try {
      const domains = Array.from({ length: 500 }, (_, i) => `many${i}.example`);
      const started = Date.now();
      const result = await runSvc(['status', '--store', dir.path, '--json', ...domains]);
      expect(result.code).toBe(0);
      expect(result.stdout.trim().split('\n')).toHaveLength(500);
      // Not a speed test: a generous bound that only one request per domain in series would miss.
      expect(Date.now() - started).toBeLessThan(15_000);
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
    } finally {
      await first.stop();
      dir.remove();
    }
  });
});
