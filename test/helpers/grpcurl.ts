import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const BUILD_SCRIPT = fileURLToPath(new URL('../../scripts/grpcurl/build.sh', import.meta.url));

/** Builds (once; cached under .cache/) the pinned grpcurl and returns the binary's path. */
export async function grpcurlBinary(): Promise<string> {
  const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`building grpcurl failed (exit ${code})`);
  return stdout.trim().split('\n').pop()!;
}

/** Runs `grpcurl -plaintext <args>`; resolves with its output, rejects with it and its stderr when it fails. */
export async function grpcurl(binary: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(binary, ['-plaintext', '-max-time', '20', ...args]);
    return stdout;
  } catch (error) {
    const { stderr = '', stdout = '' } = error as { stderr?: string; stdout?: string };
    throw new Error(`grpcurl ${args.join(' ')} failed: ${stderr}${stdout}`);
  }
}
