import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runSvc } from './helpers/svc.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];
const text = (page: string) => readFileSync(join(root, page), 'utf8');

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsIn(page: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of text(page).split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = /^#{1,6} (.*)$/.exec(line);
    if (!fenced && heading) anchors.add(anchorOf(heading[1]!));
  }
  return anchors;
}

describe('the documentation', () => {
  it('keeps the README short: a newcomer reads it in five minutes', () => {
    expect(text('README.md').split('\n').length).toBeLessThanOrEqual(200);
  });

  it('links only to pages and headings that exist', () => {
    const broken: string[] = [];
    for (const page of pages) {
      for (const [, target] of text(page).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [path, anchor] = target!.split('#');
        const linked = path ? join(dirname(page), path) : page;
        let exists = true;
        try {
          readFileSync(join(root, linked));
        } catch {
          exists = false;
        }
        if (!exists) broken.push(`${page}: ${target}`);
        else if (anchor && linked.endsWith('.md') && !anchorsIn(linked).has(anchor)) broken.push(`${page}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('links every page from the README', () => {
    const readme = text('README.md');
    for (const page of pages.filter((page) => page !== 'README.md')) expect(readme, page).toContain(`](${page})`);
  });

  it('names every option that --help lists in the CLI page', async () => {
    const cli = text('docs/cli.md');
    const missing: string[] = [];
    for (const command of ['serve-http', 'serve-read', 'serve-grpc', 'status', 'setup', 'materialize', 'replay', 'loadtest']) {
      const help = (await runSvc([command, '--help'])).stdout;
      for (const [option] of help.matchAll(/--[a-z][a-z0-9-]*/g)) {
        if (option !== '--help' && !cli.includes(`\`${option}`)) missing.push(`${command} ${option}`);
      }
    }
    expect([...new Set(missing)]).toEqual([]);
  });
});
