import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { goToolBinary } from './go-tool.js';

/** Builds (once; cached under .cache/) the pinned grpcurl and returns the binary's path. */
export function grpcurlBinary(): Promise<string> {
  return goToolBinary('grpcurl', 'grpcurl');
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
