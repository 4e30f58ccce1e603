import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Runs `scripts/<tool>/build.sh`, which builds a pinned Go program once (cached under .cache/)
 * and prints the binary's path last; resolves with that path.
 */
export async function goToolBinary(tool: 'ferretdb' | 'grpcurl' | 'kafka', what: string): Promise<string> {
  const script = fileURLToPath(new URL(`../../scripts/${tool}/build.sh`, import.meta.url));
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`building ${what} failed (exit ${code})`);
  return stdout.trim().split('\n').pop()!;
}
