import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const GENERATOR = fileURLToPath(new URL('../../scripts/generate-log.mjs', import.meta.url));

export type Counts = Record<string, { delivered: number; bounced: number }>;

/** Writes a challenge-shaped log with scripts/generate-log.mjs; resolves with its expected counts. */
export async function generateLog(out: string, events: number, options: { domains?: number; seed?: number } = {}): Promise<Counts> {
  const args = [GENERATOR, '--events', String(events), '--out', out, '--seed', String(options.seed ?? 1)];
  if (options.domains) args.push('--domains', String(options.domains));
  await promisify(execFile)(process.execPath, args);
  return JSON.parse(readFileSync(`${out}.expected.json`, 'utf8'));
}
