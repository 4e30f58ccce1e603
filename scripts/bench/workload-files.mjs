// Request lists for wrk (see wrk/svc.lua), drawn uniformly from the domains `svc loadtest` and the
// fill log name for seed 1, so that they hit the domains the filled store holds.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { domainName } from '../../dist/workload/domain-names.js';
import { Random } from '../../dist/workload/random.js';

/** `count` domain names drawn uniformly from the first `domains`, one per line. */
export async function writePaths(file, { count, domains, seed = 7 }) {
  const random = new Random(seed);
  await writeLines(file, count, () => domainName(1, random.below(domains)) + '\n');
}

/** `count` NDJSON bodies of `size` events (a tenth bounces) over the first `domains`, separated by form feeds. */
export async function writeBodies(file, { count, size, domains, seed = 8 }) {
  const random = new Random(seed);
  await writeLines(file, count, () => {
    let body = '';
    for (let i = 0; i < size; i++) {
      body += `{"domain":"${domainName(1, random.below(domains))}","type":"${random.below(10) === 0 ? 'bounced' : 'delivered'}"}\n`;
    }
    return body + '\f';
  });
}

async function writeLines(file, count, next) {
  const out = createWriteStream(file);
  for (let i = 0; i < count; i++) if (!out.write(next())) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}
