import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { emptyStore, SVC_BIN } from './helpers/svc.js';

/** Runs svc with its standard output's reader gone before it writes, as in `svc … | head -0`. */
function runIntoClosedPipe(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SVC_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('svc writing into a pipe whose reader went away', () => {
  it('stops quietly with the exit code it had, as cat and git do', async () => {
    const store = await emptyStore();
    try {
      const domains = Array.from({ length: 5000 }, (_, i) => `d${i}.example.com`);
      for (const args of [['status', '--store', store.path, ...domains], ['replay', '--help'], ['--help']]) {
        expect(await runIntoClosedPipe(args), args[0]).toEqual({ code: 0, stderr: '' });
      }
      // An invalid domain still exits 2, and says why on standard error.
      const invalid = await runIntoClosedPipe(['status', '--store', store.path, 'ok.example', 'bad..example']);
      expect(invalid.code).toBe(2);
      expect(invalid.stderr).toContain('"bad..example": domain has an empty label');
    } finally {
      store.remove();
    }
  });
});
