#!/usr/bin/env node
// Writes a seeded NDJSON event log shaped like the challenge's own generator (see
// src/workload/challenge.ts: a random count of events below 2,500 per domain, a bounce whenever
// i % floor(0.35 * count) == 0, no bounce for every 25th domain, mixed-case 14-letter names under
// net/com/org/io/gov, events of different domains interleaved) and, beside it, the counts every
// domain must end with: <out>.expected.json, keyed by normalised domain.
//
// --distinct instead writes one event for each of --events domains, named as `svc loadtest`
// names them for the same seed (so its reads find them), every tenth a bounce: the log that
// fills a store with that many domains. Its counts follow from the index, so no .expected.json.
//
//   node scripts/generate-log.mjs --events 10000000 --out /tmp/events.ndjson [--seed 1] [--gzip]
//   node scripts/generate-log.mjs --distinct --events 10000000 --out /tmp/fill.ndjson
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { domainName } from '../dist/workload/domain-names.js';
import { createWorkload } from '../dist/workload/workload.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    out: { type: 'string' },
    seed: { type: 'string', default: '1' },
    domains: { type: 'string' },
    distinct: { type: 'boolean', default: false },
  },
});
if (!values.out) {
  console.error('usage: generate-log.mjs --events N --out FILE[.gz] [--seed S] [--domains D]');
  process.exit(2);
}
const events = Number(values.events);
const seed = Number(values.seed);
const file = createWriteStream(values.out);
const out = values.out.endsWith('.gz') ? createGzip() : file;
if (out !== file) out.pipe(file);

if (values.distinct) {
  for (let start = 0; start < events; start += 10_000) {
    let lines = '';
    for (let i = start; i < Math.min(start + 10_000, events); i++) {
      lines += `{"domain":"${domainName(seed, i)}","type":"${i % 10 === 0 ? 'bounced' : 'delivered'}"}\n`;
    }
    if (!out.write(lines)) await once(out, 'drain');
  }
  out.end();
  await once(file, 'finish');
  console.error(`wrote ${events} events, one for each of ${events} domains, to ${values.out}`);
  process.exit(0);
}

// The challenge averages 1,250 events per domain; a few more domains than that make sure the
// log reaches the requested size before the generator runs dry.
const domains = Number(values.domains ?? Math.max(1, Math.ceil((events / 1250) * 1.2)));
const workload = createWorkload({ distribution: 'challenge', domains, seed, repeat: false });
const expected = new Map();
let written = 0;
let lines = [];
while (written < events) {
  const event = workload.next();
  if (!event) break;
  const name = workload.name(event.index);
  lines.push(`{"domain":"${name}","type":"${event.type}"}`);
  const key = name.toLowerCase();
  const counts = expected.get(key) ?? { delivered: 0, bounced: 0 };
  counts[event.type]++;
  expected.set(key, counts);
  written++;
  if (lines.length === 10_000) {
    if (!out.write(lines.join('\n') + '\n')) await once(out, 'drain');
    lines = [];
  }
}
if (lines.length > 0) out.write(lines.join('\n') + '\n');
out.end();
await once(file, 'finish');
await writeFile(`${values.out}.expected.json`, JSON.stringify(Object.fromEntries(expected)));
console.error(`wrote ${written} events over ${expected.size} domains to ${values.out} (expected counts in ${values.out}.expected.json)`);
